"""The log's own signing key: it signs tree heads, by itself and unattended, so it is a service key.

Its public half is pinned in forgegov.toml and handed to witnesses, which is what lets a replaced key be noticed; the
log's origin is derived from it, so two logs never share a name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forgegov.foundation.config import Workspace, WorkspaceConfig
from forgegov.foundation.crypto.service_key import ServiceKey
from forgegov.foundation.crypto.signing import public_key_to_b64, raw_public_key
from forgegov.foundation.errors import KeyUnavailable


def origin_of(public_key: Ed25519PublicKey) -> str:
    return "forgegov.local/log/" + hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def _pinned(config: WorkspaceConfig, public_key: Ed25519PublicKey) -> WorkspaceConfig:
    return replace(config, audit=replace(config.audit, origin=origin_of(public_key),
                                         log_public_key=public_key_to_b64(public_key)))


LOG_KEY = ServiceKey(title="the audit log key", file_name="log.key", pin=lambda c: c.audit.log_public_key,
                     pinned=_pinned, setting="[audit] log_public_key")


@dataclass(frozen=True)
class LogKey:
    origin: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def pinned_public_key(workspace: Workspace) -> Ed25519PublicKey:
    if not workspace.config.audit.origin:
        raise KeyUnavailable("this workspace names no audit log origin ([audit] origin in forgegov.toml)")
    return LOG_KEY.public_key(workspace)


def load_log_key(workspace: Workspace) -> LogKey:
    pinned_public_key(workspace)
    return LogKey(workspace.config.audit.origin, LOG_KEY.load(workspace))
