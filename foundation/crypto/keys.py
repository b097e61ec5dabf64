"""Private keys at rest: Ed25519 seeds encrypted with AES-256-GCM under a scrypt-derived key.

The key file names the identity and key id, and both are bound into the AEAD's associated data, so a key file
renamed or swapped onto another identity fails to open rather than signing as someone else.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from forgegov.foundation.crypto.signing import key_id_of
from forgegov.foundation.errors import KeyUnavailable, WrongPassphrase

KEY_FILE_VERSION = 1
ENV_PASSPHRASE = "FORGEGOV_PASSPHRASE"
# scrypt cost 2**15 (about 32 MiB and ~0.1 s): the interactive-login figure from the scrypt paper's guidance.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSPHRASE_LENGTH = 8


@dataclass(frozen=True)
class KeyFile:
    name: str
    key_id: str
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def to_json(self) -> str:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return json.dumps({
            "version": KEY_FILE_VERSION, "name": self.name, "key_id": self.key_id,
            "kdf": {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": b64(self.salt)},
            "cipher": {"name": "aes-256-gcm", "nonce": b64(self.nonce), "ciphertext": b64(self.ciphertext)},
        }, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyFile:
        try:
            doc = json.loads(text)
            if doc["version"] != KEY_FILE_VERSION or doc["kdf"]["name"] != "scrypt" \
                    or doc["cipher"]["name"] != "aes-256-gcm":
                raise ValueError("unsupported key file format")
            return cls(
                name=doc["name"], key_id=doc["key_id"], salt=base64.b64decode(doc["kdf"]["salt"]),
                nonce=base64.b64decode(doc["cipher"]["nonce"]),
                ciphertext=base64.b64decode(doc["cipher"]["ciphertext"]),
                n=int(doc["kdf"]["n"]), r=int(doc["kdf"]["r"]), p=int(doc["kdf"]["p"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyUnavailable(f"key file is corrupt: {exc}") from exc


@dataclass(frozen=True)
class Signer:
    """An identity's unlocked private key, held only for the duration of one command."""

    name: str
    key_id: str
    private_key: Ed25519PrivateKey


def _aad(name: str, key_id: str) -> bytes:
    return f"forgegov-key/v1\n{name}\n{key_id}".encode()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def encrypt_private_key(name: str, private_key: Ed25519PrivateKey, passphrase: str) -> KeyFile:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyUnavailable(f"passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")
    key_id = key_id_of(private_key.public_key())
    salt, nonce = os.urandom(16), os.urandom(12)
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ciphertext = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, seed, _aad(name, key_id))
    return KeyFile(name=name, key_id=key_id, salt=salt, nonce=nonce, ciphertext=ciphertext)


def decrypt_private_key(key_file: KeyFile, passphrase: str) -> Ed25519PrivateKey:
    key = _derive(passphrase, key_file.salt, key_file.n, key_file.r, key_file.p)
    try:
        seed = AESGCM(key).decrypt(key_file.nonce, key_file.ciphertext, _aad(key_file.name, key_file.key_id))
    except InvalidTag as exc:
        raise WrongPassphrase(
            f"wrong passphrase for identity {key_file.name!r} (or its key file was altered)",
            hint=f"set {ENV_PASSPHRASE} to {key_file.name}'s passphrase",
        ) from exc
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    if key_id_of(private_key.public_key()) != key_file.key_id:
        raise KeyUnavailable(f"key file for {key_file.name!r} does not hold the key it names")
    return private_key


def key_path(keys_dir: Path, name: str) -> Path:
    return keys_dir / f"{name}.key.json"


def write_key_file(keys_dir: Path, key_file: KeyFile) -> Path:
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = key_path(keys_dir, key_file.name)
    # O_EXCL: never overwrite someone's key; 0600: private keys are for their owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key_file.to_json())
    return path


def read_key_file(keys_dir: Path, name: str) -> KeyFile:
    path = key_path(keys_dir, name)
    try:
        return KeyFile.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyUnavailable(
            f"no private key for identity {name!r} at {path}",
            hint="signing needs the identity's own key file in this workspace's keys/ folder",
        ) from exc
    except OSError as exc:
        raise KeyUnavailable(f"cannot read key file {path}: {exc}") from exc
