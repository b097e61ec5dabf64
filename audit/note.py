"""Signed tree heads as C2SP signed notes (tlog-checkpoint), and witness cosignatures (tlog-cosignature).

A checkpoint body is three lines: the log's origin, the tree size in decimal, the base64 root hash. Each signature
line is `— <key name> <base64(key id ‖ signature)>`, where the 4-byte key id is the start of
SHA-256(name ‖ 0x0A ‖ type ‖ public key): type 0x01 for the log's Ed25519 signature over the body, 0x04 for a
witness cosignature, which signs `cosignature/v1\\ntime <t>\\n` followed by the body and carries t (8 bytes,
big-endian) between key id and signature.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forgegov.foundation.crypto.signing import raw_public_key
from forgegov.foundation.errors import Tampered

SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
_DASH = "\u2014 "


class NoteError(Tampered):
    """A signed note is malformed, not signed by the log's key, or a witness refuses it (another key, a rollback)."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    blob: bytes


def note_key_id(name: str, public_key: Ed25519PublicKey, kind: int) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + raw_public_key(public_key)).digest()[:4]


def _line(name: str, blob: bytes) -> str:
    return f"{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def sign_checkpoint(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    key_id = note_key_id(name, key.public_key(), SIG_ED25519)
    return body + "\n" + _line(name, key_id + key.sign(body.encode()))


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosign(note: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    body, _ = parse_note(note)
    key_id = note_key_id(name, key.public_key(), SIG_COSIGNATURE)
    signature = key.sign(_cosigned_message(body, timestamp))
    return note + _line(name, key_id + struct.pack(">Q", timestamp) + signature)


def parse_note(note: str) -> tuple[str, list[SignatureLine]]:
    body, separator, signatures = note.partition("\n\n")
    if not separator or not body or not signatures.endswith("\n"):
        raise NoteError("not a signed note: body, blank line and signature lines are required")
    lines = []
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line: {line[:40]!r}")
        name, _, b64 = line[len(_DASH):].rpartition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except ValueError as exc:
            raise NoteError("signature line is not base64") from exc
        if not name or len(blob) < 5:
            raise NoteError(f"malformed signature line: {line[:40]!r}")
        lines.append(SignatureLine(name, blob[:4], blob[4:]))
    return body + "\n", lines


def parse_checkpoint(body: str) -> Checkpoint:
    parts = body.split("\n")
    if len(parts) < 4 or parts[-1] != "" or not parts[1].isdigit() or (parts[1] != "0" and parts[1].startswith("0")):
        raise NoteError("checkpoint body must be origin, decimal size and base64 root, one a line")
    try:
        root = base64.b64decode(parts[2], validate=True)
    except ValueError as exc:
        raise NoteError("checkpoint root is not base64") from exc
    if len(root) != 32:
        raise NoteError("checkpoint root is not a SHA-256 hash")
    return Checkpoint(parts[0], int(parts[1]), root)


def open_checkpoint(note: str, name: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint, if `note` carries a valid signature by the log key `name`/`public_key`; else NoteError."""
    body, signatures = parse_note(note)
    key_id = note_key_id(name, public_key, SIG_ED25519)
    for line in signatures:
        if line.name == name and line.key_id == key_id:
            try:
                public_key.verify(line.blob, body.encode())
            except InvalidSignature as exc:
                raise NoteError("checkpoint signature by the log key does not verify") from exc
            checkpoint = parse_checkpoint(body)
            if checkpoint.origin != name:
                raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the log's {name!r}")
            return checkpoint
    names = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in signatures) or "none"
    raise NoteError(f"checkpoint is not signed by the log key {name} ({key_id.hex()}); signed by: {names}")


def verify_cosignature(note: str, name: str, public_key: Ed25519PublicKey) -> int:
    """The cosignature time, if `note` carries a valid cosignature by witness `name`; else NoteError."""
    body, signatures = parse_note(note)
    key_id = note_key_id(name, public_key, SIG_COSIGNATURE)
    for line in signatures:
        if line.name == name and line.key_id == key_id:
            if len(line.blob) != 8 + 64:
                raise NoteError(f"cosignature by {name} has the wrong length")
            (timestamp,) = struct.unpack(">Q", line.blob[:8])
            try:
                public_key.verify(line.blob[8:], _cosigned_message(body, timestamp))
            except InvalidSignature as exc:
                raise NoteError(f"cosignature by witness {name} does not verify") from exc
            return timestamp
    raise NoteError(f"checkpoint carries no cosignature by witness {name}")
