"""Signed requests to the team server: who is asking is proven by their key, never by a header anyone could type.

The signature covers the server's log origin, the method, the path with its query, the SHA-256 of the body, the
caller's name and key id, the time and a nonce, under its own purpose (`api-request`), so a signed request cannot be
replayed as a statement nor a statement as a request, nor sent to another server (a restored twin, a staging copy),
and the server refuses one that is stale or whose nonce it has seen.

The server checks everything but the body before it reads the body (`read_request_signature`), so a stranger's
request costs it a header, and then the body against the digest signed (`check_body`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import Purpose, sign
from forgegov.foundation.errors import SignatureInvalid

HEADER = "Forgegov-Signature"
VERSION = 1
_FIELDS = {"v", "origin", "method", "path", "body_sha256", "signer", "key_id", "signed_at", "nonce"}
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class SignedRequest:
    payload: dict[str, Any]
    signature: str

    @property
    def signer(self) -> str:
        return str(self.payload["signer"])


def sign_request(signer: Signer, origin: str, method: str, path: str, body: bytes) -> str:
    """The header value for one request to the server whose log is ORIGIN: base64 of {payload, signature}."""
    payload = {"v": VERSION, "origin": origin, "method": method.upper(), "path": path, "body_sha256": hashlib.sha256(body).hexdigest(),
               "signer": signer.name, "key_id": signer.key_id, "signed_at": now_rfc3339(),
               "nonce": secrets.token_hex(16)}
    document = {"payload": payload, "signature": sign(signer.private_key, Purpose.API_REQUEST, payload)}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def read_request_signature(header: str | None, origin: str, method: str, path: str) -> SignedRequest:
    """The signed claim in `header`, checked to be about this server, method and path; whether the key is the
    signer's, fresh and unused is for the server to check (it knows the identities and the nonces), and whether the
    body is the one signed, once it has read it (`check_body`)."""
    if not header:
        raise SignatureInvalid("the request is not signed: the server answers members only",
                               hint="join with `forgegov init --join URL --as NAME` and act as an enrolled member")
    try:
        document = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("the request signature header is not base64 JSON") from exc
    payload = document.get("payload") if isinstance(document, dict) else None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(payload, dict) or set(payload) != _FIELDS or payload.get("v") != VERSION \
            or not isinstance(signature, str) or not all(isinstance(payload[k], str) for k in _FIELDS - {"v"}) \
            or not _HEX64.match(payload["body_sha256"]):
        raise SignatureInvalid("the request signature is not a version-1 signed request")
    if payload["origin"] != origin:
        raise SignatureInvalid("the request was signed for another server (its log origin differs)")
    if payload["method"] != method.upper() or payload["path"] != path:
        raise SignatureInvalid("the request signature was made for another request (method or path differ)")
    return SignedRequest(payload, signature)


def check_body(claim: SignedRequest, body: bytes) -> None:
    if claim.payload["body_sha256"] != hashlib.sha256(body).hexdigest():
        raise SignatureInvalid("the request signature was made for another request (the body differs)")
