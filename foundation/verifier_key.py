"""C2SP signed-note verifier keys (`name+keyhash+base64(type || public key)`): how a witness is named and pinned.
Beside `config` rather than in `crypto`, which reads the configuration: the configuration validates these keys.

A witness's key is configured by whoever runs a log or verifies one, from the witness's operator, never taken from the
log server's word: a server that chose its members' witness keys could cosign its own split view.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from forgegov.foundation.errors import ConfigError

# The signature types a note key may have (C2SP signed-note): a log's Ed25519 key, a witness's cosignature/v1 key.
ED25519 = 0x01
COSIGNATURE = 0x04
_NAME = re.compile(r"[^\s+]+\Z")


@dataclass(frozen=True)
class VerifierKey:
    name: str
    kind: int
    public_key: Ed25519PublicKey

    def raw(self) -> bytes:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(name: str, kind: int, raw_public_key: bytes) -> bytes:
    """The 4-byte key id a signature line carries: SHA-256 of the name, a newline, the type and the key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + raw_public_key).digest()[:4]


def parse_verifier_key(text: str) -> VerifierKey:
    """A verifier key as C2SP writes it; ConfigError naming what is wrong otherwise."""
    name, _, rest = text.strip().partition("+")
    hash_hex, _, encoded = rest.partition("+")
    if not _NAME.match(name) or not re.fullmatch(r"[0-9a-f]{8}", hash_hex) or not encoded:
        raise ConfigError(f"{text!r} is not a verifier key (name+keyhash+base64, as the witness's operator gives it)")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"verifier key {name}: its key is not base64") from exc
    if len(blob) != 33 or blob[0] not in (ED25519, COSIGNATURE):
        raise ConfigError(f"verifier key {name}: not an Ed25519 or cosignature/v1 key (type {blob[:1].hex()})")
    if key_hash(name, blob[0], blob[1:]).hex() != hash_hex:
        raise ConfigError(f"verifier key {name}: its key hash {hash_hex} is not its name's and key's")
    return VerifierKey(name, blob[0], Ed25519PublicKey.from_public_bytes(blob[1:]))


def verifier_key(name: str, kind: int, public_key: Ed25519PublicKey) -> str:
    """The verifier key of NAME's PUBLIC_KEY, as a witness's operator publishes it."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{name}+{key_hash(name, kind, raw).hex()}+{base64.b64encode(bytes([kind]) + raw).decode()}"
