"""DSSE envelopes (the in-toto/Sigstore signing envelope): sign bytes with their payload type, verify strictly.

Key ids are `sha256:` + the hex SHA-256 of the raw 32-byte public key. `signing.key_id_of` uses the bare hex; the
prefix is added here because a DSSE key id travels without context and should say which hash it is. A key id is only
a hint (DSSE does not sign it): verification always checks the signature with the key the caller trusts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forgegov.foundation.crypto.signing import raw_public_key
from forgegov.foundation.errors import BadInput, SignatureInvalid

_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def dsse_key_id(public_key: Ed25519PublicKey) -> str:
    """Derived from the key itself, so a key id can neither be chosen to collide with another key's nor go stale."""
    return "sha256:" + hashlib.sha256(raw_public_key(public_key)).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the signature covers the payload type too, with lengths so that no
    (type, payload) pair can be re-split into another."""
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(encoded_type), encoded_type, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any, what: str) -> bytes:
    # DSSE lets producers use standard or URL-safe base64, padded or not; a verifier has to accept all four.
    if not isinstance(value, str):
        raise SignatureInvalid(f"DSSE envelope: {what} is not a base64 string")
    text = value.translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid(f"DSSE envelope: {what} is not valid base64") from exc


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    # Two parsers that keep different copies of a repeated key would read different documents from the same bytes.
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: str | bytes, what: str, error: type[SignatureInvalid]) -> Any:
    try:
        return json.loads(data, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc


def sign_envelope(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> dict:
    """A DSSE envelope over `payload`. The payload type is part of what is signed, so an envelope cannot be passed
    off as another kind of document."""
    if not isinstance(payload, bytes):
        raise BadInput("a DSSE payload is bytes")
    if not isinstance(payload_type, str) or not payload_type:
        raise BadInput("a DSSE envelope needs a payload type")
    signature = key.sign(pae(payload_type, payload))
    return {"payload": _b64(payload), "payloadType": payload_type,
            "signatures": [{"keyid": dsse_key_id(key.public_key()), "sig": _b64(signature)}]}


def verify_envelope(envelope: Mapping | str | bytes, public_key: Ed25519PublicKey, payload_type: str) -> bytes:
    """The payload of `envelope`, once a signature by `public_key` over it and `payload_type` verifies.

    Returns the bytes rather than a verdict so that nothing unverified is ever at hand to parse by mistake; every
    failure raises SignatureInvalid. The envelope's shape is checked strictly (no unknown fields, every signature
    entry well formed) because anything in it that is not signed should not be there to be misread. Signatures with
    another key id are skipped; one without a key id is tried, since DSSE makes the key id optional.
    """
    if isinstance(envelope, str | bytes):
        envelope = strict_json(envelope, "DSSE envelope", SignatureInvalid)
    if not isinstance(envelope, Mapping) or set(envelope) != _ENVELOPE_FIELDS:
        raise SignatureInvalid("not a DSSE envelope: expected exactly payload, payloadType and signatures")
    found_type = envelope["payloadType"]
    if not isinstance(found_type, str):
        raise SignatureInvalid("DSSE envelope: payloadType is not a string")
    if found_type != payload_type:
        raise SignatureInvalid(f"DSSE envelope holds {found_type!r}, expected {payload_type!r}")
    payload = _b64decode(envelope["payload"], "payload")
    entries = envelope["signatures"]
    if not isinstance(entries, list) or not entries:
        raise SignatureInvalid("DSSE envelope carries no signatures")
    key_id = dsse_key_id(public_key)
    candidates: list[bytes] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "sig" not in entry or not set(entry) <= _SIGNATURE_FIELDS:
            raise SignatureInvalid("DSSE envelope: a signature entry must have sig and, optionally, keyid only")
        hint = entry.get("keyid", "")
        if not isinstance(hint, str):
            raise SignatureInvalid("DSSE envelope: a keyid is not a string")
        signature = _b64decode(entry["sig"], "sig")
        if not hint or hint == key_id:
            candidates.append(signature)
    if not candidates:
        raise SignatureInvalid(f"DSSE envelope has no signature by key {key_id}",
                               hint="verify with the key pinned in the signing workspace's forgegov.toml")
    message = pae(found_type, payload)
    for signature in candidates:
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            continue
        return payload
    raise SignatureInvalid(f"DSSE envelope: the signature by key {key_id} does not verify; the payload or its type "
                           f"was changed after signing, or it was signed by another key")
