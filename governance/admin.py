"""Administrative acts: enrolling a member, revoking an identity, rotating its key, redacting an audit entry's payload,
starting and stopping a job (`governance/jobs.py`), fetching an asset's bytes (`governance/fetches.py`). Each is a statement its actor signs, decided by the policy in force (`policies/admin/`), in one transaction, top to bottom like a gate:

    statement → actor and signature → OPA → the act and its audit entry (statement, signature, decision)

1. the log extends every witness's newest tree head (a rolled-back store decides nothing);
2. the actor is an active identity, the statement verifies under the key the log bound to their name, is fresh, and
   its nonce was never used (who acted is never a `--by` flag anyone could type);
3. the policy in force decides, on the act, the actor, the target and who else signed the same act on the same
   target lately and is still waiting (`cosigners`, each one proved by its entry in the log): one person holding a
   role cannot hand out authority alone where policy data asks for a quorum;
4. an allowed act is carried out and logged with its statement, signature and decision; one still short of its
   quorum is logged as `admin.pending`, and a denied one as `admin.denied` with the policy's reasons; in both cases
   nothing else changes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.operations import entry_action, redact_entry
from forgegov.audit.recorder import AuditedTransaction, EntryDraft, audited_transaction
from forgegov.audit.tree_heads import check_against_witnesses
from forgegov.foundation.clock import now, now_rfc3339, parse_rfc3339, rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import Purpose, key_id_of, public_key_from_b64, sign, verify
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    DecisionUnavailable,
    PolicyDenied,
    ReplayedApproval,
    SignatureInvalid,
    StateConflict,
    StoreTampered,
)
from forgegov.foundation.store.models import AuditEntry, Identity
from forgegov.foundation.vocabulary import ADMIN_ACTIONS, QUORUM_WINDOW, AuditAction
from forgegov.governance.fetches import fetch_target, fetched_asset, fetched_files
from forgegov.governance.identities import (
    enrolments,
    get_identity,
    public_key,
    read_enrolment_request,
    require_active,
)
from forgegov.governance.job_entries import subject_of
from forgegov.governance.jobs import cancel_target, start_target
from forgegov.governance.policy import PolicyEngine, policy_in_force
from forgegov.governance.statements import MAX_CLOCK_SKEW

STATEMENT_VERSION = 1
INPUT_VERSION = 1
_FIELDS = {"v", "act", "target", "reason", "signer", "key_id", "signed_at", "nonce"}


class AdminAct(StrEnum):
    REVOKE = "identity.revoke"
    ROTATE = "identity.rotate"
    REDACT = "audit.redact"
    ENROL = "identity.enrol"
    JOB_START = "job.start"
    JOB_CANCEL = "job.cancel"
    FETCH = "asset.fetch"


@dataclass(frozen=True)
class AdminStatement:
    payload: dict[str, Any]
    signature: str

    @property
    def act(self) -> AdminAct:
        return AdminAct(self.payload["act"])


@dataclass(frozen=True)
class AdminOutcome:
    """An act carried out, or (`waiting` non-empty: the policy's messages) signed and logged, waiting for more
    signers before anything changes."""

    act: AdminAct
    actor: str
    audit_seq: int
    target: dict[str, Any]
    waiting: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"act": self.act.value, "actor": self.actor, "audit_seq": self.audit_seq, "target": self.target,
                "waiting": list(self.waiting)}


def make_admin_statement(signer: Signer, act: AdminAct, target: dict[str, Any], reason: str) -> AdminStatement:
    if not reason.strip():
        raise BadInput(f"{act.value} needs a reason (--reason)")
    payload = {"v": STATEMENT_VERSION, "act": act.value, "target": target, "reason": reason, "signer": signer.name,
               "key_id": signer.key_id, "signed_at": now_rfc3339(), "nonce": secrets.token_hex(16)}
    return AdminStatement(payload, sign(signer.private_key, Purpose.ADMIN_ACT, payload))


def submit_admin(workspace: Workspace, engine: PolicyEngine, statement: AdminStatement) -> AdminOutcome:
    """Decide and carry out one administrative act; PolicyDenied (after logging it) when the policy refuses; an
    outcome with `waiting` when it was logged to wait for the quorum's other signers."""
    with audited_transaction(workspace, tree_head=True) as tx:
        outcome, reasons = _decide_and_act(workspace, tx, engine, statement)
    if reasons is not None:
        raise PolicyDenied(f"{statement.act.value} by {outcome.actor} was denied", reasons)
    return outcome


def carried_out(outcome: AdminOutcome) -> AdminOutcome:
    """The outcome of an act its caller goes on to act upon (a job started, a fetch served): one still waiting for
    the other signers its quorum asks for allows nothing yet, so it is refused here, logged as waiting."""
    if outcome.waiting:
        raise PolicyDenied(f"{outcome.act.value} by {outcome.actor} waits for more signers (audit entry "
                           f"{outcome.audit_seq}); nothing was done", list(outcome.waiting))
    return outcome


def _decide_and_act(workspace: Workspace, tx: AuditedTransaction, engine: PolicyEngine,
                    statement: AdminStatement) -> tuple[AdminOutcome, list[str] | None]:
    session = tx.session
    # 1. The log extends every witness.
    check_against_witnesses(workspace, session)
    # 2. Who acts, proven by their signature.
    payload = statement.payload
    if not isinstance(payload, dict) or set(payload) != _FIELDS or payload.get("v") != STATEMENT_VERSION \
            or not isinstance(payload.get("target"), dict):
        raise SignatureInvalid("statement is not a version-1 administrative act")
    actor = get_identity(session, str(payload["signer"]))
    require_active(actor)
    if payload["key_id"] != actor.key_id:
        raise SignatureInvalid(f"statement names key {str(payload['key_id'])[:16]}…, not {actor.name}'s key")
    verify(public_key(actor), Purpose.ADMIN_ACT, payload, statement.signature)
    try:
        act, signed_at = statement.act, parse_rfc3339(payload["signed_at"])
    except (ValueError, TypeError) as exc:
        raise BadInput(f"the administrative act is malformed: {exc}") from exc
    if abs(now() - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureInvalid("the administrative act was signed too long ago: refused as a possible replay",
                               hint="sign it again now (re-run the command)")
    spent = session.exec(select(AuditEntry.seq).where(
        AuditEntry.action.in_(ADMIN_ACTIONS),  # type: ignore[attr-defined]
        AuditEntry.payload.contains(str(payload["nonce"]), autoescape=True))).first()  # type: ignore[union-attr]
    if spent is not None:
        raise ReplayedApproval(f"this signed act was already used (audit entry {spent}): refused as a replay")
    # 3. The policy in force decides.
    at = now()  # the decision's time, and the end of the window of recent starts a job's quota counts
    target = _target(tx, act, payload["target"], actor.name, at)
    in_force = policy_in_force(session)
    if in_force.digest != engine.pinned_digest:
        raise StateConflict(f"policy {in_force.revision} was put in force after this OPA started",
                            hint="run the command again")
    document = {"version": INPUT_VERSION, "act": act.value, "now": rfc3339(at),
                "actor": {"name": actor.name, "key_id": actor.key_id}, "target": target,
                "reason": payload["reason"],
                "cosigners": cosigners(session, act, payload["target"], actor.name, at)}
    try:
        answer = engine.decide_admin(document)
        allowed, reasons, missing = answer.allow, list(answer.deny), list(answer.missing)
        opa_decision_id = answer.decision_id
    except DecisionUnavailable as exc:
        allowed, reasons, missing, opa_decision_id = False, [exc.message], [], None
    # The input goes with the decision, so that `audit verify --replay` can ask the same policy the same question.
    decision = {"allow": allowed, "reasons": reasons, "missing": missing, "opa_decision_id": opa_decision_id,
                "policy_digest": engine.pinned_digest, "policy_revision": engine.pinned_revision, "input": document}
    signed = {"statement": payload, "signature": statement.signature, "decision": decision}
    # 4. The act, the record of its refusal, or of its waiting for the others a quorum needs.
    if not allowed:
        waits = not reasons and bool(missing)
        seq = tx.append(EntryDraft(actor=actor.name,
                                   action=AuditAction.ADMIN_PENDING if waits else AuditAction.ADMIN_DENIED,
                                   policy_revision=engine.pinned_revision,
                                   payload={"act": act.value, "target": target, **signed})).seq
        if waits:
            return AdminOutcome(act, actor.name, seq, target, tuple(missing)), None
        return AdminOutcome(act, actor.name, seq, target), reasons or ["the policy neither allowed nor denied"]
    seq = _CARRY_OUT[act](tx, payload, target, actor.name, signed)
    return AdminOutcome(act, actor.name, seq, target), None


def cosigners(session: Session, act: AdminAct, signed_target: dict[str, Any], actor: str,
              at: datetime) -> list[dict[str, Any]]:
    """Who else signed this very act on this very target (the target as each signer signed it, never as the server
    recorded it) within the quorum window, and waits: their `admin.pending` entries, each held to its leaf in the
    log, its statement verifying under the key the log binds to its signer now (a revoked or rotated signer no
    longer counts), and none counted by an earlier decision already. The policy decides whose signatures make the
    quorum."""
    since = rfc3339(at - QUORUM_WINDOW)
    rows = session.exec(select(AuditEntry).where(
        AuditEntry.action == AuditAction.ADMIN_PENDING,
        AuditEntry.time >= since).order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    if not rows:
        return []  # the common case (every fetch and job start asks): no admin entry of the window is read
    used = {cosigner.get("seq") for cosigner in _counted_before(session, since)}
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        payload = committed_payload(session, what=f"the {act.value} waiting in entry {row.seq}",
                                    action=AuditAction.ADMIN_PENDING, subject_digest=row.subject_digest, fields={},
                                    seq=row.seq)
        statement = payload.get("statement") or {}
        signer = str(statement.get("signer"))
        if statement.get("act") != act.value or statement.get("target") != signed_target or signer == actor \
                or signer in found or row.seq in used or row.actor != signer:
            continue
        identity = get_identity(session, signer)
        if identity.revoked_at is not None or statement.get("key_id") != identity.key_id:
            continue
        verify(public_key(identity), Purpose.ADMIN_ACT, statement, str(payload.get("signature")))
        found[signer] = {"name": signer, "key_id": identity.key_id, "seq": row.seq}
    return list(found.values())


def _counted_before(session: Session, since: str) -> list[dict[str, Any]]:
    """The cosigners earlier allowed acts in the window counted: a waiting signature makes one act, once."""
    counted: list[dict[str, Any]] = []
    rows = session.exec(select(AuditEntry.seq, AuditEntry.payload).where(
        AuditEntry.action.in_(ADMIN_ACTIONS),  # type: ignore[attr-defined]
        AuditEntry.action.not_in([AuditAction.ADMIN_PENDING, AuditAction.ADMIN_DENIED]),  # type: ignore[attr-defined]
        AuditEntry.time >= since, AuditEntry.payload.contains('"cosigners"'))).all()  # type: ignore[union-attr]
    for seq, text in rows:
        try:
            listed = json.loads(text or "")["decision"]["input"].get("cosigners") or []
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreTampered(f"audit entry {seq} holds no readable decision: which waiting signatures it counted "
                                "cannot be told", hint="run `forgegov audit verify`") from exc
        counted += [c for c in listed if isinstance(c, dict)]
    return counted


def _target(tx: AuditedTransaction, act: AdminAct, target: dict[str, Any], actor: str,
            at: datetime) -> dict[str, Any]:
    """What the policy is told about the act's target, read from the store (never from the statement alone)."""
    if act is AdminAct.JOB_START:
        return start_target(tx.session, actor, target, at)
    if act is AdminAct.JOB_CANCEL:
        return cancel_target(tx.session, target)
    if act is AdminAct.FETCH:
        return fetch_target(tx.session, target)
    if act is AdminAct.REVOKE:
        identity = get_identity(tx.session, str(target.get("name")))
        require_active(identity)
        return {"name": identity.name}
    if act is AdminAct.ROTATE:
        identity = get_identity(tx.session, str(target.get("name")))
        require_active(identity)
        new_key = _new_key_id(tx, target.get("public_key"))
        return {"name": identity.name, "key_id": new_key}
    if act is AdminAct.ENROL:
        return _enrolment_target(tx, target)
    seq = target.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadInput("audit.redact names the entry by its number")
    return {"seq": seq, "action": entry_action(tx, seq)}


def _revoke(tx: AuditedTransaction, name: str, reason: str, by: str, signed: dict[str, Any]) -> int:
    session = tx.session
    identity = get_identity(session, name)
    identity.revoked_at = now_rfc3339()
    identity.revoked_by = by
    identity.revoke_reason = reason
    session.add(identity)
    return tx.append(EntryDraft(actor=by, action=AuditAction.IDENTITY_REVOKE,
                                payload={"name": name, "key_id": identity.key_id, "reason": reason, **signed})).seq


def _new_key_id(tx: AuditedTransaction, public: Any) -> str:
    """The key id of a key a rotation would bind: an Ed25519 public key no name was ever bound to (a key shared by
    two names would let one's signatures pass as the other's)."""
    try:
        key_id = key_id_of(public_key_from_b64(str(public)))
    except (SignatureInvalid, ValueError, TypeError) as exc:
        raise BadInput("identity.rotate names no Ed25519 public key (base64)") from exc
    bound = tx.session.exec(select(AuditEntry.seq).where(
        AuditEntry.action.in_([AuditAction.IDENTITY_CREATE, AuditAction.IDENTITY_ROTATE,  # type: ignore[attr-defined]
                               AuditAction.IDENTITY_ENROL]),
        AuditEntry.payload.contains(key_id, autoescape=True))).first()  # type: ignore[union-attr]
    if bound is not None:
        raise BadInput(f"key {key_id[:16]}… was already bound to an identity (audit entry {bound}); a rotation binds a "
                       "new key")
    return key_id


def _rotate(tx: AuditedTransaction, name: str, public: str, reason: str, by: str, signed: dict[str, Any]) -> int:
    session = tx.session
    identity = get_identity(session, name)
    previous = identity.key_id
    identity.key_id, identity.public_key = key_id_of(public_key_from_b64(public)), public
    session.add(identity)
    return tx.append(EntryDraft(actor=by, action=AuditAction.IDENTITY_ROTATE,
                                payload={"name": name, "key_id": identity.key_id, "public_key": public,
                                         "previous_key_id": previous, "reason": reason, **signed})).seq


def _job_start(tx: AuditedTransaction, target: dict[str, Any], by: str, signed: dict[str, Any]) -> int:
    """The entry that is the job: its number names it, and the job process takes its orders from the target the
    policy allowed, which it carries (`governance/jobs.started`)."""
    return tx.append(EntryDraft(actor=by, action=AuditAction.JOB_START, subject_digest=subject_of(target),
                                payload={"kind": target["kind"], **signed})).seq


def _job_cancel(tx: AuditedTransaction, target: dict[str, Any], by: str, signed: dict[str, Any]) -> int:
    return tx.append(EntryDraft(actor=by, action=AuditAction.JOB_CANCEL,
                                payload={"job": target["job"], **signed})).seq


def _fetch(tx: AuditedTransaction, target: dict[str, Any], by: str, signed: dict[str, Any]) -> int:
    """The record of who read which files of which asset, and why: what lets the store serve those files to them."""
    asset = fetched_asset(tx.session, target)
    return tx.append(EntryDraft(actor=by, action=AuditAction.ASSET_FETCH, subject_digest=asset.digest,
                                payload={"subject": target["subject"], "files": fetched_files(asset),
                                         **signed})).seq


MAX_ENROLMENT_AGE = timedelta(days=14)


def _enrolment_target(tx: AuditedTransaction, target: dict[str, Any]) -> dict[str, Any]:
    """An enrolment names the request the new member signed with their new key (they hold it), as the admin signed
    it: the same name, contact and key; the request is recent; the name was never used and the key never bound."""
    if set(target) != {"name", "contact", "public_key", "request"}:
        raise BadInput("identity.enrol names the member's name, contact, public key and signed request")
    requested = read_enrolment_request(target["request"])
    if (requested.name, requested.contact, requested.public_key) \
            != (target["name"], target["contact"], target["public_key"]):
        raise SignatureInvalid("the act enrols another name, contact or key than the member's signed request asks")
    try:
        age = now() - parse_rfc3339(requested.signed_at)
    except ValueError as exc:
        raise BadInput("the enrolment request's signing time is not RFC 3339") from exc
    if age > MAX_ENROLMENT_AGE or age < -MAX_CLOCK_SKEW:
        raise BadInput(f"the enrolment request was signed at {requested.signed_at}: more than "
                       f"{MAX_ENROLMENT_AGE.days} days ago, or in the future",
                       hint=f"ask {requested.name} for a new one (`forgegov identity request`)")
    session = tx.session
    taken = session.exec(select(AuditEntry.seq).where(
        AuditEntry.action == AuditAction.IDENTITY_CREATE, AuditEntry.actor == requested.name)).first()
    if taken is not None or requested.name in enrolments(session).values():
        raise AlreadyExists(f"identity {requested.name!r} already exists (names are never reused, even after "
                            "revocation)", hint="the member asks again under another name")
    return {"name": requested.name, "key_id": _new_key_id(tx, requested.public_key), "contact": requested.contact}


def _enrol(tx: AuditedTransaction, target: dict[str, Any], by: str, signed: dict[str, Any]) -> int:
    requested = read_enrolment_request(target["request"])
    tx.session.add(Identity(name=requested.name, key_id=requested.key_id, public_key=requested.public_key,
                            created_at=now_rfc3339()))
    return tx.append(EntryDraft(actor=by, action=AuditAction.IDENTITY_ENROL,
                                payload={"name": requested.name, "key_id": requested.key_id,
                                         "public_key": requested.public_key, "contact": requested.contact,
                                         **signed})).seq


# What each allowed act does, given (transaction, signed payload, the policy's target, actor, signed record): the
# number of the entry it appended.
_CARRY_OUT = {
    AdminAct.REVOKE: lambda tx, payload, target, by, signed: _revoke(tx, target["name"], payload["reason"], by, signed),
    AdminAct.ROTATE: lambda tx, payload, target, by, signed: _rotate(
        tx, target["name"], payload["target"]["public_key"], payload["reason"], by, signed),
    AdminAct.ENROL: lambda tx, payload, target, by, signed: _enrol(tx, payload["target"], by, signed),
    AdminAct.REDACT: lambda tx, payload, target, by, signed: redact_entry(
        tx, target["seq"], by, {"reason": payload["reason"], **signed}),
    AdminAct.JOB_START: lambda tx, payload, target, by, signed: _job_start(tx, target, by, signed),
    AdminAct.JOB_CANCEL: lambda tx, payload, target, by, signed: _job_cancel(tx, target, by, signed),
    AdminAct.FETCH: lambda tx, payload, target, by, signed: _fetch(tx, target, by, signed),
}
