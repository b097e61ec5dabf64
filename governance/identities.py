"""Identities: a name bound to an Ed25519 public key. Roles are not here: they live in policy data."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload, logged_string
from forgegov.audit.recorder import EntryDraft, TreeHeadUnsigned, audited_transaction
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace, fsync_dir
from forgegov.foundation.crypto.keys import (
    KeyFile,
    Signer,
    decrypt_private_key,
    encrypt_private_key,
    key_path,
    read_key_file,
    write_key_file,
)
from forgegov.foundation.crypto.signing import (
    Purpose,
    key_id_of,
    public_key_from_b64,
    public_key_to_b64,
    sign,
    verify,
)
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    KeyUnavailable,
    NotFound,
    RevokedIdentity,
    SignatureInvalid,
    StateConflict,
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
                                                             AuditEntry.actor == name)).first() is not None \
                or name in enrolments(session).values():
            raise AlreadyExists(f"identity {name!r} already exists (names are never reused, even after revocation)")
        if enrolments(session):
            raise StateConflict("this log enrols its members: since its first `identity.enrol`, a key is bound to a "
                                "name only by a policy owner's signed enrolment, never by `identity create`",
                                hint=f"{name} runs `forgegov identity request {name} --contact EMAIL` on their own "
                                     "machine; a policy owner enrols the request")
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
    """The identity `name`, once its row agrees with the audit log: the key is the one the log bound to the name last
    (its one `identity.create`, then any policy-decided `identity.rotate`), and it is revoked if an `identity.revoke`
    entry says so. A row edited or recreated in the database (a key swapped in, `revoked_at` cleared, a deleted name
    created again) is StoreTampered."""
    identity = session.exec(select(Identity).where(Identity.name == name)).first()
    if identity is None:
        known = list(session.exec(select(Identity.name)))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        # Never suggest creating the misspelt name: a typo in `--as` must not become a new identity.
        raise NotFound(f"no identity named {name!r}",
                       hint=f"did you mean {' or '.join(close)}?" if close
                       else "see `forgegov identity list`; a new member is added with `forgegov identity create`")
    bound = key_history(session, name)[-1]
    if (identity.key_id, identity.public_key) != (bound.key_id, bound.public_key):
        raise StoreTampered(f"identity {name!r}: its row holds key {identity.key_id[:16]}…, but the log (entry "
                            f"{bound.seq}) bound {bound.key_id[:16]}… to the name", hint="run `forgegov audit verify`")
    if identity.revoked_at is None:
        revoked = revocations(session).get(name)
        if revoked is not None:
            raise StoreTampered(f"identity {name!r} was revoked (audit entry {revoked}), but its row says it is "
                                "active", hint="run `forgegov audit verify`")
    return identity


@dataclass(frozen=True)
class BoundKey:
    """One key the log bound to a name: from entry `seq` until `superseded_at` (the rotation that replaced it)."""

    seq: int
    key_id: str
    public_key: str
    superseded_at: int | None = None


def key_history(session: Session, name: str, before: int | None = None) -> list[BoundKey]:
    """Every key the log bound to `name` (before entry `before`, if given), oldest first; the last one is current. A
    name is bound to its first key by its only `identity.create`; only an `identity.rotate` binds another, and only
    when it carries the act its actor signed, with a key the log had bound to that actor before. Whether the policy
    in force allowed that act is proven by re-asking it (`policy.prove_policy_acts`, every gate; `--replay`)."""
    created = [(seq, AuditAction.IDENTITY_CREATE) for seq in session.exec(select(AuditEntry.seq).where(
        AuditEntry.action == AuditAction.IDENTITY_CREATE, AuditEntry.actor == name))]
    created += [(seq, AuditAction.IDENTITY_ENROL) for seq, enrolled in enrolments(session).items() if enrolled == name]
    if len(created) != 1:
        raise StoreTampered(f"identity {name!r} has {len(created)} identity.create or identity.enrol entries in the "
                            "audit log, not one: a name is bound to its first key for good",
                            hint="run `forgegov audit verify`")
    (seq, action), = created
    if action is AuditAction.IDENTITY_CREATE and any(enrolled < seq for enrolled in enrolments(session)):
        raise StoreTampered(f"identity {name!r} was created (audit entry {seq}) after the log began enrolling its "
                            "members: only an enrolment binds a key from then on", hint="run `forgegov audit verify`")
    first = committed_payload(session, what=f"identity {name!r}", action=action, seq=seq, subject_digest=None,
                              fields={"name": name})
    if action is AuditAction.IDENTITY_ENROL:
        _check_act_signed(session, seq, name, first, [], AuditAction.IDENTITY_ENROL)
    keys = [BoundKey(seq, str(first.get("key_id")), str(first.get("public_key")))]
    query = select(AuditEntry.seq, AuditEntry.payload).where(AuditEntry.action == AuditAction.IDENTITY_ROTATE)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    for seq, payload in session.exec(query.order_by(AuditEntry.seq)):  # type: ignore[arg-type]
        if logged_string(seq, payload, AuditAction.IDENTITY_ROTATE, "name") != name:
            continue
        rotated = committed_payload(session, what=f"the key rotation of {name!r}", action=AuditAction.IDENTITY_ROTATE,
                                    seq=seq, subject_digest=None, fields={"name": name})
        _check_act_signed(session, seq, name, rotated, keys, AuditAction.IDENTITY_ROTATE)
        keys[-1] = BoundKey(keys[-1].seq, keys[-1].key_id, keys[-1].public_key, superseded_at=seq)
        keys.append(BoundKey(seq, str(rotated.get("key_id")), str(rotated.get("public_key"))))
    return keys


def enrolments(session: Session) -> dict[int, str]:
    """Every `identity.enrol` entry, with the name it bound."""
    return {seq: logged_string(seq, payload, AuditAction.IDENTITY_ENROL, "name")
            for seq, payload in session.exec(select(AuditEntry.seq, AuditEntry.payload).where(  # type: ignore[call-overload]
                AuditEntry.action == AuditAction.IDENTITY_ENROL))}


def _check_act_signed(session: Session, seq: int, name: str, rotated: dict[str, Any],
                      keys_so_far: list[BoundKey], act: AuditAction) -> None:
    """The rotation or enrolment at `seq` is the act its actor signed, under the key the log bound to them at the
    time (and an enrolment carries the request the new key signed): someone holding only the log key cannot bind a
    key of their own to another's name, nor enrol a name of their own."""
    statement, decision = rotated.get("statement"), rotated.get("decision")
    target = statement.get("target") if isinstance(statement, dict) else None
    try:
        if not isinstance(statement, dict) or not isinstance(target, dict) or not isinstance(decision, dict) \
                or statement.get("act") != act.value or target.get("name") != name \
                or target.get("public_key") != rotated.get("public_key") or decision.get("allow") is not True \
                or key_id_of(public_key_from_b64(str(rotated.get("public_key")))) != rotated.get("key_id"):
            raise SignatureInvalid("the entry is not the signed, allowed act it claims to record")
        signer = str(statement.get("signer"))
        if revocations(session).get(signer, seq) < seq:
            raise SignatureInvalid(f"{signer} had been revoked")
        history = keys_so_far if signer == name else key_history(session, signer, before=seq)
        if not history:
            raise SignatureInvalid(f"{signer} held no key then")
        current = history[-1]
        if statement.get("key_id") != current.key_id:
            raise SignatureInvalid(f"{signer} did not hold key {str(statement.get('key_id'))[:16]}… then")
        verify(public_key_from_b64(current.public_key), Purpose.ADMIN_ACT, statement, str(rotated.get("signature")))
        if act is AuditAction.IDENTITY_ENROL:
            requested = read_enrolment_request(target.get("request"))
            if (requested.name, requested.public_key, requested.contact) \
                    != (name, rotated.get("public_key"), rotated.get("contact")):
                raise SignatureInvalid("the enrolment request is for another name, key or contact")
    except (SignatureInvalid, BadInput, ValueError) as exc:
        message = exc.message if isinstance(exc, SignatureInvalid | BadInput) else str(exc)
        what = "key rotation" if act is AuditAction.IDENTITY_ROTATE else "enrolment"
        raise StoreTampered(f"the {what} of {name!r} (audit entry {seq}) does not rest on a signed act: "
                            f"{message}", hint="run `forgegov audit verify`") from exc


def signing_key(session: Session, name: str, key_id: str, *, before: int | None = None) -> BoundKey:
    """The key `name` signed with, if the log bound it to them (before entry `before`, when given: a statement stored
    before a rotation was signed with the key of its time); SignatureInvalid otherwise."""
    for bound in key_history(session, name, before=before):
        if bound.key_id == key_id:
            return bound
    raise SignatureInvalid(f"key {key_id[:16]}… was never {name!r}'s key")


def revocations(session: Session) -> dict[str, int]:
    """Every revoked name, with the audit entry that revoked it: whether a key was revoked when a decision was taken
    is a question of log order, not of what an identity row says now."""
    revoked: dict[str, int] = {}
    for seq, payload in session.exec(select(AuditEntry.seq, AuditEntry.payload)
                                     .where(AuditEntry.action == AuditAction.IDENTITY_REVOKE)
                                     .order_by(AuditEntry.seq)):  # type: ignore[arg-type]
        revoked.setdefault(logged_string(seq, payload, AuditAction.IDENTITY_REVOKE, "name"), seq)
    return revoked


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
    if key_file.key_id != identity.key_id and _pending_key_id(workspace, name) == identity.key_id:
        # A rotation committed, and the process was killed before it put the new key file in place.
        finish_rotation(workspace, name, key_file.key_id)
        key_file = read_key_file(workspace.keys_dir, name)
    if key_file.key_id != identity.key_id:
        raise KeyUnavailable(f"key file for {name!r} holds key {key_file.key_id[:16]}…, "
                             f"but {name!r} is registered with {identity.key_id[:16]}…")
    private_key = decrypt_private_key(key_file, passphrase)
    return Signer(name=name, key_id=identity.key_id, private_key=private_key)


def unlock_key_file(workspace: Workspace, name: str, passphrase: str) -> Signer:
    """NAME's key as this machine holds it, for a member of a team server: whether it is the key the log bound to
    NAME, and not revoked, is for the server to check when it receives what the key signed."""
    check_name(name)
    key_file = read_key_file(workspace.keys_dir, name)
    return Signer(name=name, key_id=key_file.key_id, private_key=decrypt_private_key(key_file, passphrase))


def create_key_file(workspace: Workspace, name: str, passphrase: str) -> Ed25519PublicKey:
    """A new key for NAME on this machine only (a member's, before enrolment binds it to NAME); its public half."""
    check_name(name)
    if os.path.lexists(key_path(workspace.keys_dir, name)):
        raise AlreadyExists(f"a key for {name!r} already exists in {workspace.keys_dir}",
                            hint="use it; a second key for one name is made only by a rotation")
    private_key = Ed25519PrivateKey.generate()
    write_key_file(workspace.keys_dir, encrypt_private_key(name, private_key, passphrase))
    return private_key.public_key()


# --- enrolment: a member's key, bound to their name by an admin's signed act, never first come --------------------------

ENROLMENT_VERSION = 1
_ENROLMENT_FIELDS = {"v", "name", "contact", "public_key", "key_id", "signed_at", "nonce"}
_CONTACT = re.compile(r"[^\x00-\x1f\x7f]{3,254}\Z")


@dataclass(frozen=True)
class EnrolmentRequest:
    """What a new member hands an admin: their name, how to reach them, and their new public key, signed with the
    key itself (they hold it: nobody can enrol a key in another's name and later disown it)."""

    name: str
    contact: str
    public_key: str
    key_id: str
    signed_at: str
    document: dict[str, Any]


def request_enrolment(workspace: Workspace, name: str, contact: str, passphrase: str) -> dict[str, Any]:
    """A new key for NAME on this machine, and the enrolment request it signs (to hand to an admin)."""
    check_contact(contact)
    public = create_key_file(workspace, name, passphrase)
    signer = unlock_key_file(workspace, name, passphrase)
    payload = {"v": ENROLMENT_VERSION, "name": name, "contact": contact, "public_key": public_key_to_b64(public),
               "key_id": key_id_of(public), "signed_at": now_rfc3339(), "nonce": os.urandom(16).hex()}
    return {"payload": payload, "signature": sign(signer.private_key, Purpose.ENROLMENT, payload)}


def check_contact(contact: str) -> str:
    if not isinstance(contact, str) or not _CONTACT.match(contact.strip()) or contact != contact.strip():
        raise BadInput(f"contact {contact!r} is not a way to reach a person (an e-mail address, say; 3 to 254 "
                       "printable characters)")
    return contact


def read_enrolment_request(document: Any) -> EnrolmentRequest:
    """The request, once it is well formed and signed by the key it names; SignatureInvalid otherwise."""
    payload = document.get("payload") if isinstance(document, dict) else None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(payload, dict) or set(payload) != _ENROLMENT_FIELDS or payload.get("v") != ENROLMENT_VERSION \
            or not isinstance(signature, str) or not all(isinstance(payload[k], str) for k in _ENROLMENT_FIELDS - {"v"}):
        raise SignatureInvalid("not a version-1 enrolment request (made by `forgegov identity request`)")
    check_name(payload["name"])
    check_contact(payload["contact"])
    public = public_key_from_b64(payload["public_key"])
    if key_id_of(public) != payload["key_id"]:
        raise SignatureInvalid("the enrolment request's key id is not its key's")
    verify(public, Purpose.ENROLMENT, payload, signature)
    return EnrolmentRequest(payload["name"], payload["contact"], payload["public_key"], payload["key_id"],
                            payload["signed_at"], {"payload": payload, "signature": signature})


def enrolment_target(requested: EnrolmentRequest) -> dict[str, Any]:
    """The target of the admin act that enrols `requested`, as the admin signs it."""
    return {"name": requested.name, "contact": requested.contact, "public_key": requested.public_key,
            "request": requested.document}


# --- rotating a key: the new key waits beside the current one until the rotation is decided --------------------------
# '+' never occurs in a name, so these files cannot be mistaken for another identity's key.

def _next_path(workspace: Workspace, name: str) -> Path:
    return workspace.keys_dir / f"{name}+next.key.json"


def _pending_key_id(workspace: Workspace, name: str) -> str | None:
    path = _next_path(workspace, name)
    if not os.path.lexists(path):
        return None
    try:
        return KeyFile.from_json(path.read_text(encoding="utf-8")).key_id
    except (OSError, UnicodeDecodeError, KeyUnavailable):
        return None


def prepare_rotation(workspace: Workspace, name: str, passphrase: str) -> Ed25519PublicKey:
    """A new key for NAME, encrypted under its (new) passphrase, written beside the current one; a leftover from a
    rotation that was never decided is replaced."""
    check_name(name)
    path = _next_path(workspace, name)
    path.unlink(missing_ok=True)
    private_key = Ed25519PrivateKey.generate()
    data = encrypt_private_key(name, private_key, passphrase).to_json()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return private_key.public_key()


def finish_rotation(workspace: Workspace, name: str, previous_key_id: str) -> None:
    """Once the rotation committed: the old key is kept, retired, and the new one takes its place."""
    current = key_path(workspace.keys_dir, name)
    retired = workspace.keys_dir / f"{name}+{previous_key_id[:16]}.retired.key.json"
    if os.path.lexists(current):
        os.replace(current, retired)
    os.replace(_next_path(workspace, name), current)
    fsync_dir(workspace.keys_dir)


def rotation_signer(workspace: Workspace, name: str, passphrase: str) -> Signer:
    """NAME's new key while a rotation is being decided (beside the current one), to read back what the server logged
    once it knows NAME by that key only."""
    try:
        key_file = KeyFile.from_json(_next_path(workspace, name).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyUnavailable(f"no new key for {name!r} is waiting in {workspace.keys_dir}") from exc
    return Signer(name=name, key_id=key_file.key_id, private_key=decrypt_private_key(key_file, passphrase))


def abandon_rotation(workspace: Workspace, name: str) -> None:
    _next_path(workspace, name).unlink(missing_ok=True)
