"""Identities: a name bound to an Ed25519 public key. Roles are not here: they live in policy data."""

from __future__ import annotations

import json
import os
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.recorder import EntryDraft, TreeHeadUnsigned, audited_transaction
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import (
    Signer,
    decrypt_private_key,
    encrypt_private_key,
    key_path,
    read_key_file,
    write_key_file,
)
from forgegov.foundation.crypto.signing import key_id_of, public_key_from_b64, public_key_to_b64
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    KeyUnavailable,
    NotFound,
    RevokedIdentity,
    StoreTampered,
)
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, Identity
from forgegov.foundation.vocabulary import AuditAction

_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}\Z")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise BadInput(f"identity name {name!r} is invalid: use lowercase letters, digits, '.', '_' or '-', "
                       "starting with a letter (at most 64)")
    return name


def create_identity(workspace: Workspace, name: str, passphrase: str) -> Identity:
    check_name(name)
    url = workspace.database_url
    with read_session(url) as session:
        if session.exec(select(Identity).where(Identity.name == name)).first() is not None \
                or session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.IDENTITY_CREATE,
                                                             AuditEntry.actor == name)).first() is not None:
            raise AlreadyExists(f"identity {name!r} already exists (names are never reused, even after revocation)")
    path = key_path(workspace.keys_dir, name)
    orphan = os.path.lexists(path)
    if orphan:
        # A create killed between writing the key and committing the identity leaves this key behind. It is the
        # caller's own if it opens with their passphrase: the create resumes with it rather than blocking the name.
        try:
            private_key = decrypt_private_key(read_key_file(workspace.keys_dir, name), passphrase)
        except KeyUnavailable as exc:
            raise AlreadyExists(f"a key file for {name!r} already exists at {path}, and no identity of that name: "
                                "it does not open with this passphrase",
                                hint="if an interrupted `identity create` left it, use the same passphrase; "
                                     "otherwise move it away") from exc
    else:
        private_key = Ed25519PrivateKey.generate()
        path = write_key_file(workspace.keys_dir, encrypt_private_key(name, private_key, passphrase))
    public = private_key.public_key()
    identity = Identity(name=name, key_id=key_id_of(public), public_key=public_key_to_b64(public),
                        created_at=now_rfc3339())
    try:
        with audited_transaction(workspace) as tx:
            session = tx.session
            if session.exec(select(Identity).where(Identity.name == name)).first() is not None:
                raise AlreadyExists(f"identity {name!r} already exists")
            session.add(identity)
            tx.append(EntryDraft(actor=name, action=AuditAction.IDENTITY_CREATE,
                                       payload={"name": name, "key_id": identity.key_id,
                                                "public_key": identity.public_key}))
            session.flush()
            session.refresh(identity)
            session.expunge(identity)
    except TreeHeadUnsigned:
        raise  # committed: the identity exists, and its key must stay with it
    except BaseException:
        if not orphan:
            path.unlink(missing_ok=True)
        raise
    return identity


def get_identity(session: Session, name: str) -> Identity:
    """The identity `name`, once its row agrees with the audit log: the key is the one its (only) `identity.create`
    entry bound to the name, and it is revoked if an `identity.revoke` entry says so. A row edited or recreated in
    the database (a key swapped in, `revoked_at` cleared, a deleted name created again) is StoreTampered."""
    identity = session.exec(select(Identity).where(Identity.name == name)).first()
    if identity is None:
        raise NotFound(f"no identity named {name!r}", hint="create it with `forgegov identity create NAME`")
    created = session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.IDENTITY_CREATE,
                                                        AuditEntry.actor == name).order_by(AuditEntry.seq)).all()
    if len(created) != 1:
        raise StoreTampered(f"identity {name!r} has {len(created)} identity.create entries in the audit log, not one: "
                            "a name is bound to its first key for good", hint="run `forgegov audit verify`")
    committed_payload(session, what=f"identity {name!r}", action=AuditAction.IDENTITY_CREATE, seq=created[0],
                      subject_digest=None, fields={"name": name, "key_id": identity.key_id,
                                                   "public_key": identity.public_key})
    if identity.revoked_at is None:
        revoked = revocations(session).get(name)
        if revoked is not None:
            raise StoreTampered(f"identity {name!r} was revoked (audit entry {revoked}), but its row says it is "
                                "active", hint="run `forgegov audit verify`")
    return identity


def revocations(session: Session) -> dict[str, int]:
    """Every revoked name, with the audit entry that revoked it: whether a key was revoked when a decision was taken
    is a question of log order, not of what an identity row says now."""
    revoked: dict[str, int] = {}
    for seq, payload in session.exec(select(AuditEntry.seq, AuditEntry.payload)
                                     .where(AuditEntry.action == AuditAction.IDENTITY_REVOKE)):
        name = _payload_name(seq, payload)
        revoked.setdefault(name, seq)
    return revoked


def _payload_name(seq: int, payload: str | None) -> str:
    try:
        name = json.loads(payload or "").get("name")
    except (ValueError, AttributeError) as exc:
        raise StoreTampered(f"audit entry {seq} (identity.revoke) holds no readable payload",
                            hint="run `forgegov audit verify`") from exc
    if not isinstance(name, str):
        raise StoreTampered(f"audit entry {seq} (identity.revoke) names no identity", hint="run `forgegov audit verify`")
    return name


def public_key(identity: Identity) -> Ed25519PublicKey:
    return public_key_from_b64(identity.public_key)


def require_active(identity: Identity) -> None:
    if identity.revoked_at is not None:
        raise RevokedIdentity(
            f"identity {identity.name!r} was revoked at {identity.revoked_at}; its new signatures are refused",
            hint="act as another identity; a revoked name cannot be reused",
        )


def list_identities(workspace: Workspace) -> list[Identity]:
    with read_session(workspace.database_url) as session:
        return list(session.exec(select(Identity).order_by(Identity.name)))


def unlock(workspace: Workspace, name: str, passphrase: str) -> Signer:
    """Decrypt NAME's key and check it is the key the store has registered for NAME, and not revoked."""
    with read_session(workspace.database_url) as session:
        identity = get_identity(session, name)
    require_active(identity)
    key_file = read_key_file(workspace.keys_dir, name)
    if key_file.key_id != identity.key_id:
        raise KeyUnavailable(f"key file for {name!r} holds key {key_file.key_id[:16]}…, "
                             f"but {name!r} is registered with {identity.key_id[:16]}…")
    private_key = decrypt_private_key(key_file, passphrase)
    return Signer(name=name, key_id=identity.key_id, private_key=private_key)
