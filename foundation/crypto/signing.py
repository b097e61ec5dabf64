"""Ed25519 signatures under purpose-specific contexts.

The signed message is `forgegov-sig/v1 <purpose>\\n` followed by the RFC 8785 bytes of the payload, so a signature made
for one purpose (an approval, say) can never be replayed as another (a checkpoint, an eval result).
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.errors import SignatureInvalid


class Purpose(StrEnum):
    GATE_ACTION = "gate-action"
    POLICY_ACTIVATION = "policy-activation"
    CHECKPOINT = "checkpoint"
    PROVENANCE = "provenance"
    EVAL_RESULT = "eval-result"
    DATA_QUALITY = "data-quality"
    ADMIN_ACT = "admin-act"
    API_REQUEST = "api-request"
    ENROLMENT = "enrolment"
    BACKUP = "backup"


def signed_message(purpose: Purpose, payload: Any) -> bytes:
    return f"forgegov-sig/v1 {purpose.value}\n".encode() + canonical_bytes(payload)


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The key id is the SHA-256 of the raw 32-byte public key, in hex: stable and independent of names."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def sign(private_key: Ed25519PrivateKey, purpose: Purpose, payload: Any) -> str:
    return base64.b64encode(private_key.sign(signed_message(purpose, payload))).decode()


def verify(public_key: Ed25519PublicKey, purpose: Purpose, payload: Any, signature_b64: str) -> None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as exc:
        raise SignatureInvalid("signature is not valid base64") from exc
    try:
        public_key.verify(signature, signed_message(purpose, payload))
    except InvalidSignature as exc:
        raise SignatureInvalid(f"{purpose.value} signature does not verify against key {key_id_of(public_key)[:16]}") from exc


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))


def public_key_to_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public_key(public_key)).decode()
