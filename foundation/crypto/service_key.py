"""Service keys: the keys forgegov signs with unattended (the audit log key, the platform key, the keys to come).

They cannot sit behind a passphrase, so they are stored as PKCS#8 PEM readable only by their owner (0600), never
overwritten, never followed through a link, and their public half is pinned in `forgegov.toml`. A key file is used
only when it is the pinned key: signatures by a substituted key would be accepted by nobody who checks the pin, and
should not be produced in the first place. Every service key goes through this one class; what differs between
them (their file, where their pin lives in the config, what else is pinned with them) is the `ServiceKey` value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from forgegov.foundation.config import Workspace, WorkspaceConfig, fsync_dir, read_config, write_config
from forgegov.foundation.crypto.signing import public_key_from_b64, public_key_to_b64, raw_public_key
from forgegov.foundation.errors import AlreadyExists, KeyUnavailable, ServiceKeyMismatch


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
            key = load_pem_private_key(_read_no_follow(path), password=None)
        except FileNotFoundError as exc:
            raise KeyUnavailable(f"{self.title} {path} is missing",
                                 hint="restore it from backup; a new key would not match the pin") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise KeyUnavailable(f"cannot read {self.title} {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyUnavailable(f"{self.title} {path} is not an Ed25519 key")
        if raw_public_key(key.public_key()) != raw_public_key(pinned):
            raise ServiceKeyMismatch(
                f"{path} is not {self.title} pinned in forgegov.toml ({public_key_to_b64(pinned)[:12]}…): "
                "refusing to sign with it",
                hint=f"restore the original key; {self.title} is never silently replaced",
            )
        return key

    def write_new(self, workspace: Workspace) -> Ed25519PrivateKey:
        """A fresh key in its file (O_EXCL: an existing key is never overwritten; O_NOFOLLOW: nor written through a
        link someone planted). The caller pins its public half."""
        key = Ed25519PrivateKey.generate()
        path = self.path(workspace)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:
            raise AlreadyExists(f"{path} already exists; {self.title} is never overwritten") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
                handle.flush()
                # Durable before its pin is written: a pin that outlives an empty key file would block signing.
                os.fsync(handle.fileno())
            fsync_dir(path.parent)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
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
