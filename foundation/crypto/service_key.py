"""Service keys: the keys forgegov signs with unattended (the audit log key, the platform key, the keys to come).

They are encrypted at rest like identity keys (scrypt, AES-256-GCM, the key's name and id bound into the cipher), under
the *service passphrase*, which is held outside the workspace: `FORGEGOV_SERVICE_PASSPHRASE`, a file named by
`FORGEGOV_SERVICE_PASSPHRASE_FILE` (a secret manager's or systemd's credential file), or else a random passphrase
made on first use in the user's own configuration folder (`~/.config/forgegov/service-passphrase`, 0600). Anyone who
can read a workspace's files — a copy, a backup, a shared project folder, another account — holds only ciphertext,
and cannot sign a tree head or a provenance statement; the user who runs forgegov can (see docs/threat-model.md).

Key files are readable only by their owner (0600), never overwritten, never followed through a link, and their
public half is pinned in `forgegov.toml`. A key file is used only when it is the pinned key: signatures by a
substituted key would be accepted by nobody who checks the pin, and should not be produced in the first place. Every
service key goes through this one class; what differs between them (their file, where their pin lives in the
config, what else is pinned with them) is the `ServiceKey` value.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forgegov.foundation.config import Workspace, WorkspaceConfig, fsync_dir, read_config, write_config
from forgegov.foundation.crypto.keys import KeyFile, decrypt_private_key, encrypt_private_key
from forgegov.foundation.crypto.signing import public_key_from_b64, public_key_to_b64, raw_public_key
from forgegov.foundation.errors import AlreadyExists, KeyUnavailable, ServiceKeyMismatch, WrongPassphrase

ENV_SERVICE_PASSPHRASE = "FORGEGOV_SERVICE_PASSPHRASE"
ENV_SERVICE_PASSPHRASE_FILE = "FORGEGOV_SERVICE_PASSPHRASE_FILE"
# Decrypted keys, by the exact bytes of their file: scrypt runs once per key and process, and a file changed on disk
# is decrypted (and checked against its pin) afresh.
_UNLOCKED: dict[bytes, Ed25519PrivateKey] = {}


@dataclass(frozen=True)
class ServiceKey:
    """One kind of service key. `pin` reads its pinned public key (base64, "" when none) from a config; `pinned`
    returns the config with a new key pinned (and whatever is derived from the key, such as the log's origin)."""

    title: str  # "the audit log key": how messages name it
    file_name: str  # in the workspace's keys/ folder
    pin: Callable[[WorkspaceConfig], str]
    pinned: Callable[[WorkspaceConfig, Ed25519PublicKey], WorkspaceConfig]
    setting: str  # where the pin lives in forgegov.toml, for messages

    def path(self, workspace: Workspace) -> Path:
        return workspace.keys_dir / self.file_name

    def public_key(self, workspace: Workspace) -> Ed25519PublicKey:
        """The key signatures must verify against: the pin, never the key file, since a replaced key file is
        exactly what the pin is there to catch."""
        pinned = self.pin(workspace.config)
        if not pinned:
            raise KeyUnavailable(f"this workspace pins no {self.title.removeprefix('the ')} ({self.setting} in "
                                 "forgegov.toml)", hint="`forgegov db upgrade` creates and pins one")
        return public_key_from_b64(pinned)

    def load(self, workspace: Workspace) -> Ed25519PrivateKey:
        pinned = self.public_key(workspace)
        path = self.path(workspace)
        try:
            stored = _read_no_follow(path)
        except FileNotFoundError as exc:
            raise KeyUnavailable(f"{self.title} {path} is missing",
                                 hint="restore it from backup; a new key would not match the pin") from exc
        except OSError as exc:
            raise KeyUnavailable(f"cannot read {self.title} {path}: {exc}") from exc
        cached = hashlib.sha256(stored).digest()
        key = _UNLOCKED.get(cached) or self._decrypt(path, stored)
        if raw_public_key(key.public_key()) != raw_public_key(pinned):
            raise ServiceKeyMismatch(
                f"{path} is not {self.title} pinned in forgegov.toml ({public_key_to_b64(pinned)[:12]}…): "
                "refusing to sign with it",
                hint=f"restore the original key; {self.title} is never silently replaced",
            )
        _UNLOCKED[cached] = key
        return key

    def _decrypt(self, path: Path, stored: bytes) -> Ed25519PrivateKey:
        if stored.startswith(b"-----BEGIN"):
            raise KeyUnavailable(f"{self.title} {path} is stored unencrypted (made by an earlier forgegov)",
                                 hint="initialise the workspace again with `forgegov init`")
        try:
            key_file = KeyFile.from_json(stored.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise KeyUnavailable(f"{self.title} {path} is not a key file") from exc
        if key_file.name != self.key_name:
            raise KeyUnavailable(f"{path} holds {key_file.name!r}, not {self.title}")
        try:
            return decrypt_private_key(key_file, service_passphrase())
        except WrongPassphrase as exc:
            raise KeyUnavailable(f"{self.title} {path} does not open with the service passphrase (or was altered)",
                                 hint=f"set {ENV_SERVICE_PASSPHRASE} (or {ENV_SERVICE_PASSPHRASE_FILE}) to the "
                                      "passphrase this workspace was made with") from exc

    @property
    def key_name(self) -> str:
        return f"service:{self.file_name}"

    def write_new(self, workspace: Workspace) -> Ed25519PrivateKey:
        """A fresh key in its file (O_EXCL: an existing key is never overwritten; O_NOFOLLOW: nor written through a
        link someone planted). The caller pins its public half."""
        key = Ed25519PrivateKey.generate()
        sealed = encrypt_private_key(self.key_name, key, service_passphrase(create=True)).to_json().encode()
        path = self.path(workspace)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:
            raise AlreadyExists(f"{path} already exists; {self.title} is never overwritten") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(sealed)
                handle.flush()
                # Durable before its pin is written: a pin that outlives an empty key file would block signing.
                os.fsync(handle.fileno())
            fsync_dir(path.parent)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        _UNLOCKED[hashlib.sha256(sealed).digest()] = key
        return key

    def ensure(self, workspace: Workspace) -> Workspace:
        """Give a workspace made before this key existed its key and pin; returns the workspace as now configured.
        Reads forgegov.toml afresh, so settings changed since `workspace` was loaded are kept."""
        config = read_config(workspace.root)
        current = Workspace(workspace.root, config)
        if self.pin(config):
            return current
        if os.path.lexists(self.path(current)):
            raise ServiceKeyMismatch(
                f"{self.path(current)} exists, but forgegov.toml pins no {self.title.removeprefix('the ')}: refusing "
                "to adopt or overwrite a key of unknown origin",
                hint=f"if it is this workspace's key, pin its public half as {self.setting}; otherwise move it away",
            )
        key = self.write_new(current)
        updated = self.pinned(config, key.public_key())
        try:
            write_config(workspace.root, updated)
        except BaseException:
            # An unpinned key would block the next attempt; this one was never used, so it can go.
            self.path(current).unlink(missing_ok=True)
            raise
        return Workspace(workspace.root, updated)


def _read_no_follow(path: Path) -> bytes:
    # A link planted where the key should be is refused, not followed to whatever it names.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def service_passphrase(*, create: bool = False) -> str:
    """The passphrase service keys are encrypted under, from outside the workspace (see the module's docstring).
    `create` makes the per-user passphrase file when no other source is configured (a workspace being made)."""
    given = os.environ.get(ENV_SERVICE_PASSPHRASE)
    if given:
        return given
    named = os.environ.get(ENV_SERVICE_PASSPHRASE_FILE)
    path = Path(named) if named else _default_passphrase_file()
    if not named and create and not os.path.lexists(path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass  # made meanwhile by another forgegov process of this user: use theirs
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "r", encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read().strip()
    except FileNotFoundError as exc:
        raise KeyUnavailable(f"the service passphrase file {path} is missing",
                             hint=f"set {ENV_SERVICE_PASSPHRASE} or {ENV_SERVICE_PASSPHRASE_FILE} to the passphrase "
                                  "this workspace's service keys were made with") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyUnavailable(f"cannot read the service passphrase file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # As ssh does with private keys: a secret others can read protects nothing.
        raise KeyUnavailable(f"the service passphrase file {path} can be read by others (mode {oct(mode & 0o777)})",
                             hint=f"chmod 600 {path}")
    if not text:
        raise KeyUnavailable(f"the service passphrase file {path} is empty")
    return text


def _default_passphrase_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "forgegov" / "service-passphrase"
