"""The log's own signing key: it signs checkpoints, by itself and unattended, so it is a service key.

It is stored as PKCS#8 PEM readable only by its owner (0600), like any server key; its public half is pinned in
forgegov.toml and handed to witnesses, which is what lets a replaced key be noticed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from forgegov.foundation.config import AuditConfig, Workspace
from forgegov.foundation.crypto.signing import public_key_from_b64, public_key_to_b64, raw_public_key
from forgegov.foundation.errors import ForgegovError, KeyUnavailable


class LogKeyMismatch(ForgegovError):
    exit_code = 1


@dataclass(frozen=True)
class LogKey:
    origin: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def new_log_key() -> tuple[Ed25519PrivateKey, AuditConfig]:
    """A fresh key and the [audit] settings that pin it; its origin is derived from the key so it is unique."""
    key = Ed25519PrivateKey.generate()
    origin = "forgegov.local/log/" + hashlib.sha256(raw_public_key(key.public_key())).hexdigest()[:16]
    return key, AuditConfig(origin=origin, log_public_key=public_key_to_b64(key.public_key()))


def ensure_log_key(workspace: Workspace) -> Workspace:
    """Give a workspace made before the Merkle log its log key and pin; returns the workspace as now configured."""
    if workspace.config.audit.log_public_key:
        return workspace
    import tomli_w

    from forgegov.foundation.config import CONFIG_FILE

    key, audit = new_log_key()
    config = replace(workspace.config, audit=replace(audit, checkpoint_every=workspace.config.audit.checkpoint_every,
                                                    witnesses=workspace.config.audit.witnesses))
    write_log_key(workspace, key)
    (workspace.root / CONFIG_FILE).write_text(tomli_w.dumps(config.to_toml()), encoding="utf-8")
    return Workspace(workspace.root, config)


def write_log_key(workspace: Workspace, key: Ed25519PrivateKey) -> None:
    path = workspace.log_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


def pinned_public_key(workspace: Workspace) -> Ed25519PublicKey:
    audit = workspace.config.audit
    if not audit.log_public_key or not audit.origin:
        raise KeyUnavailable("this workspace pins no audit log key ([audit] in forgegov.toml)")
    return public_key_from_b64(audit.log_public_key)


def load_log_key(workspace: Workspace) -> LogKey:
    pinned = pinned_public_key(workspace)
    try:
        key = load_pem_private_key(workspace.log_key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise KeyUnavailable(f"the audit log key {workspace.log_key_path} is missing") from exc
    except (OSError, ValueError) as exc:
        raise KeyUnavailable(f"cannot read the audit log key {workspace.log_key_path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyUnavailable("the audit log key is not an Ed25519 key")
    if raw_public_key(key.public_key()) != raw_public_key(pinned):
        raise LogKeyMismatch(
            f"{workspace.log_key_path} is not the log key pinned in forgegov.toml "
            f"({base64.b64encode(raw_public_key(pinned)).decode()[:12]}…): refusing to sign with it",
            hint="restore the original key; a log key is never silently replaced",
        )
    return LogKey(workspace.config.audit.origin, key)
