"""Signed tree heads as C2SP signed notes (tlog-checkpoint), and witness cosignatures (tlog-cosignature).

A checkpoint body is three lines: the log's origin, the tree size in decimal, the base64 root hash. Each signature
line is `— <key name> <base64(key id ‖ signature)>`, where the 4-byte key id is the start of
SHA-256(name ‖ 0x0A ‖ type ‖ public key): type 0x01 for the log's Ed25519 signature over the body, 0x04 for a
witness cosignature, which signs `cosignature/v1\\ntime <t>\\n` followed by the body and carries t (8 bytes,
big-endian) between key id and signature.

Parsing is as strict as the C2SP signed-note and tlog-checkpoint specs and Go's `golang.org/x/mod/sumdb/note`: the
text is UTF-8 without control characters other than newline (so a CRLF note is refused, not normalised), it ends at
the note's last blank line, key names hold no white space and no '+', a note carries at most 100 signatures, a size is
ASCII decimal without leading zeros below 2^63, and a cosignature time is below 2^63. Two parsers that read the same
bytes differently are how a split view gets past a witness, so anything off the grammar is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forgegov.foundation.crypto.signing import raw_public_key
from forgegov.foundation.errors import Tampered
from forgegov.foundation.verifier_key import key_hash

SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
_DASH = "\u2014 "
MAX_SIGNATURES = 100
MAX_INT63 = (1 << 63) - 1
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z", re.ASCII)


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
    return key_hash(name, kind, raw_public_key(public_key))


def _line(name: str, blob: bytes) -> str:
    return f"{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def sign_checkpoint(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    key_id = note_key_id(name, key.public_key(), SIG_ED25519)
    return body + "\n" + _line(name, key_id + key.sign(body.encode()))


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosign(note: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    if not _valid_name(name):
        raise NoteError(f"witness name {name!r} must hold no white space and no '+'")
    if not 0 <= timestamp <= MAX_INT63:
        raise NoteError(f"cosignature time {timestamp} is outside 0..2^63-1")
    body, _ = parse_note(note)
    key_id = note_key_id(name, key.public_key(), SIG_COSIGNATURE)
    signature = key.sign(_cosigned_message(body, timestamp))
    return note + _line(name, key_id + struct.pack(">Q", timestamp) + signature)


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def parse_note(note: str) -> tuple[str, list[SignatureLine]]:
    if any(ord(c) < 0x20 and c != "\n" for c in note) or any(0xD800 <= ord(c) <= 0xDFFF for c in note):
        raise NoteError("not a signed note: control characters (a CR, say) or invalid UTF-8 in the text")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("not a signed note: body, blank line and signature lines are required")
    body, signatures = note[:split + 1], note[split + 2:]
    if body == "\n" or not signatures.endswith("\n"):
        raise NoteError("not a signed note: body, blank line and signature lines are required")
    raw_lines = signatures[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note carries at most {MAX_SIGNATURES} signatures, this one {len(raw_lines)}")
    lines = []
    for line in raw_lines:
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line: {line[:40]!r}")
        name, space, b64 = line[len(_DASH):].partition(" ")
        if not space or not _valid_name(name):
            raise NoteError(f"malformed signature line (the key name holds no spaces or '+'): {line[:40]!r}")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"signature line of {name!r} is not base64") from exc
        if len(blob) < 5:
            raise NoteError(f"malformed signature line: {line[:40]!r}")
        lines.append(SignatureLine(name, blob[:4], blob[4:]))
    return body, lines


def parse_checkpoint(body: str) -> Checkpoint:
    parts = body.split("\n")
    if len(parts) < 4 or parts[-1] != "" or not parts[0] or not _DECIMAL.match(parts[1]) \
            or int(parts[1]) > MAX_INT63:
        raise NoteError("checkpoint body must be origin, size (ASCII decimal below 2^63, no leading zeros) and "
                        "base64 root, one a line")
    try:
        root = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError) as exc:
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
            if timestamp > MAX_INT63:
                raise NoteError(f"cosignature by {name} carries time {timestamp}, above 2^63-1")
            try:
                public_key.verify(line.blob[8:], _cosigned_message(body, timestamp))
            except InvalidSignature as exc:
                raise NoteError(f"cosignature by witness {name} does not verify") from exc
            return timestamp
    raise NoteError(f"checkpoint carries no cosignature by witness {name}")
