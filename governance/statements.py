"""Signed gate statements: every `request`, `approve` and `reject` is a payload signed with the actor's own key.

The payload binds the gate, the action, the subject's kind and digest, the request id, the promotion target, the
signer's name and key id, the signing time and a random nonce. Changing any of them breaks the signature; reusing
the nonce, or presenting the statement for another request, subject or gate, is refused as a replay.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import canonical_bytes, sha256_digest
from forgegov.foundation.clock import now, now_rfc3339, parse_rfc3339
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import Purpose, key_id_of, public_key_from_b64, sign, verify
from forgegov.foundation.errors import BadInput, SignatureInvalid, StoreTampered
from forgegov.foundation.store.models import Asset, AuditEntry, Decision, Identity
from forgegov.foundation.vocabulary import (
    QUORUM_WINDOW,
    AuditAction,
    DecisionResult,
    Gate,
    GateAction,
    ReleaseStage,
    Verdict,
)
from forgegov.governance.identities import BoundKey, key_history, public_key, revocations, signing_key

STATEMENT_VERSION = 1
# Version 2 adds `evidence_digest` to an approval or rejection: the digest of the gate evidence it is given for (what
# `forgegov review` shows). The gate refuses a new one whose evidence changed, and tells the policy whether each stored
# one still matches (`evidence_current`). Version 1 statements (no digest) stay valid.
EVIDENCE_VERSION = 2
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# A fresh statement must be signed within this window of the server's clock: a signature kept back and replayed
# later is refused even before its nonce is looked up.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_FIELDS = {"v", "gate", "action", "subject", "request_id", "target", "signer", "key_id", "signed_at", "nonce",
           "comment"}
_FIELDS_OF_VERSION = {STATEMENT_VERSION: _FIELDS, EVIDENCE_VERSION: _FIELDS | {"evidence_digest"}}


@dataclass(frozen=True)
class SignedStatement:
    payload: dict[str, Any]
    signature: str

    @property
    def gate(self) -> Gate:
        return Gate(self.payload["gate"])

    @property
    def action(self) -> GateAction:
        return GateAction(self.payload["action"])

    @property
    def signer(self) -> str:
        return str(self.payload["signer"])

    @property
    def request_id(self) -> str:
        return str(self.payload["request_id"])

    @property
    def target(self) -> ReleaseStage | None:
        return ReleaseStage(self.payload["target"]) if self.payload["target"] else None

    @property
    def subject_digest(self) -> str:
        return str(self.payload["subject"]["digest"])

    def canonical(self) -> str:
        return canonical_bytes(self.payload).decode()


def make_statement(signer: Signer, gate: Gate, action: GateAction, asset: Asset, *, request_id: str | None = None,
                   target: ReleaseStage | None = None, comment: str = "",
                   evidence_digest: str | None = None) -> SignedStatement:
    if action in (GateAction.REQUEST, GateAction.WITHDRAW):
        request_id = request_id or str(uuid.uuid4())
    elif not request_id:
        raise BadInput(f"a {action.value} statement must name the request it answers")
    payload = {
        "v": STATEMENT_VERSION, "gate": gate.value, "action": action.value,
        "subject": {"kind": asset.kind.value, "digest": asset.digest}, "request_id": request_id,
        "target": target.value if target else None, "signer": signer.name, "key_id": signer.key_id,
        "signed_at": now_rfc3339(), "nonce": secrets.token_hex(16), "comment": comment,
    }
    if evidence_digest is not None:
        if action not in (GateAction.APPROVE, GateAction.REJECT):
            raise BadInput(f"only an approval or a rejection is given for evidence, not a {action.value}")
        payload |= {"v": EVIDENCE_VERSION, "evidence_digest": evidence_digest}
    return SignedStatement(payload, sign(signer.private_key, Purpose.GATE_ACTION, payload))


def check_shape(statement: SignedStatement) -> None:
    payload = statement.payload
    version = payload.get("v") if isinstance(payload, dict) else None
    if type(version) is not int or set(payload) != _FIELDS_OF_VERSION.get(version):
        raise SignatureInvalid("statement payload is not a version-1 or version-2 gate statement")
    if version == EVIDENCE_VERSION and (payload.get("action") not in (GateAction.APPROVE.value, GateAction.REJECT.value)
                                        or not isinstance(payload["evidence_digest"], str)
                                        or not _DIGEST.match(payload["evidence_digest"])):
        raise SignatureInvalid("statement payload's evidence digest is malformed, or on a statement that answers "
                               "nothing")
    try:
        statement.gate, statement.action, statement.target, parse_rfc3339(payload["signed_at"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise SignatureInvalid(f"statement payload is malformed: {exc}") from exc
    if not isinstance(payload["subject"], dict) or set(payload["subject"]) != {"kind", "digest"}:
        raise SignatureInvalid("statement payload's subject is malformed")


def verify_statement(identity: Identity, statement: SignedStatement) -> None:
    """The signature verifies under the identity's registered key, and the payload names that same identity."""
    check_shape(statement)
    if statement.signer != identity.name or statement.payload["key_id"] != identity.key_id:
        raise SignatureInvalid(f"statement claims signer {statement.signer!r} with key "
                               f"{str(statement.payload['key_id'])[:16]}…, which is not {identity.name!r}'s key")
    verify(public_key(identity), Purpose.GATE_ACTION, statement.payload, statement.signature)


def verify_stored(session: Session, statement: SignedStatement, *, before: int | None = None) -> BoundKey:
    """A statement stored earlier verifies under the key its signer held when signing it, one the log bound to their
    name (before entry `before`, when given; a rotation since does not void it; whether it still counts is the
    policy's, through `key_revoked`)."""
    check_shape(statement)
    bound = signing_key(session, statement.signer, str(statement.payload["key_id"]), before=before)
    verify(public_key_from_b64(bound.public_key), Purpose.GATE_ACTION, statement.payload, statement.signature)
    return bound


def check_fresh(statement: SignedStatement) -> None:
    signed_at = parse_rfc3339(statement.payload["signed_at"])
    if abs(now() - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureInvalid(
            f"statement was signed at {statement.payload['signed_at']}, more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes from now: refused as a possible replay",
            hint="sign again now (re-run the command)",
        )


def evidence_digest_of(document: dict[str, Any]) -> str:
    """The digest an approval is given for: the canonical {gate, subject, request, evidence} of a gate input document
    (not the approvals, which others may add meanwhile, nor the time)."""
    return sha256_digest(canonical_bytes({key: document.get(key) for key in ("gate", "subject", "request", "evidence")}))


def approval_input(statement: SignedStatement, *, key_revoked: bool, new: bool,
                   evidence_digest: str) -> dict[str, Any]:
    """What the policy is told about one approval or rejection: all of it from the statement its approver signed, and,
    when it names the evidence it was given for, whether that is the evidence now (`evidence_digest`). A version 1
    statement names none and gets no `evidence_current`, so decisions recorded before version 2 read as they were."""
    signed_for = statement.payload.get("evidence_digest")
    return {
        "approver": statement.signer, "key_id": statement.payload["key_id"],
        "verdict": Verdict.APPROVE.value if statement.action is GateAction.APPROVE else Verdict.REJECT.value,
        "signed_at": statement.payload["signed_at"], "key_revoked": key_revoked, "new": new,
        "justification": statement.payload.get("comment", ""),
        **({} if signed_for is None else {"evidence_current": signed_for == evidence_digest}),
    }


def _carried(session: Session, item: Any, what: str, seq: int) -> SignedStatement:
    if not isinstance(item, dict) or not isinstance(item.get("statement"), dict) \
            or not isinstance(item.get("signature"), str):
        raise SignatureInvalid(f"the {what} is not carried as a signed statement")
    statement = SignedStatement(item["statement"], item["signature"])
    verify_stored(session, statement, before=seq)
    return statement


def check_signed_input(session: Session, seq: int, subject_digest: str, payload: dict[str, Any],
                       document: dict[str, Any], revoked: dict[str, int]) -> None:
    """The parts of the gate decision at entry `seq`, on `subject_digest`, that people signed are exactly what they
    signed: who acted, on what, the request (who made it, when, for which target) and every approval counted, each
    verified under a key the log had bound to its signer by then, the actor not revoked. `revoked` maps revoked names
    to the entry that revoked them, so an approval is marked revoked exactly when its key had been revoked (or
    rotated away) before entry `seq`. StoreTampered names the entry otherwise: a decision taken on approvals nobody
    signed, made up by someone holding only the log key."""
    try:
        statement = _carried(session, payload, "decision's own statement", seq)
        answers = statement.action in (GateAction.APPROVE, GateAction.REJECT)
        request = _carried(session, payload.get("signed_request"), "request", seq) if answers else statement
        carried = payload.get("signed_approvals", []) if answers else []
        if not isinstance(carried, list):
            raise SignatureInvalid("the approvals already on the request are not carried as a list")
        approvals = [_carried(session, item, "approval", seq) for item in carried]
        if signing_key(session, statement.signer, str(statement.payload["key_id"]), before=seq).superseded_at \
                is not None:
            raise SignatureInvalid(f"{statement.signer} signed with a key rotated away before this decision")
        if revoked.get(statement.signer, seq) < seq:
            raise SignatureInvalid(f"{statement.signer} had been revoked (audit entry {revoked[statement.signer]})")
        if statement.subject_digest != subject_digest:
            raise SignatureInvalid(f"the statement is about {statement.subject_digest}, the entry about "
                                   f"{subject_digest}")
    except (SignatureInvalid, KeyError, TypeError, ValueError) as exc:
        message = exc.message if isinstance(exc, SignatureInvalid) else str(exc)
        raise StoreTampered(f"audit entry {seq}: a statement the decision rests on does not verify ({message})",
                            hint="run `forgegov audit verify`") from exc

    def was_revoked(signed: SignedStatement) -> bool:
        # Revoked, or replaced by a rotation, before this decision: as the gate saw it then.
        superseded = signing_key(session, signed.signer, str(signed.payload["key_id"]), before=seq).superseded_at
        return revoked.get(signed.signer, seq) < seq or (superseded is not None and superseded < seq)

    current = evidence_digest_of(document)
    signed_for = statement.payload.get("evidence_digest")
    if signed_for is not None and signed_for != current:
        raise StoreTampered(f"audit entry {seq}: its decision admitted a statement given for evidence {signed_for}, "
                            f"but was decided on evidence {current}", hint="run `forgegov audit verify`")
    expected = {
        "gate": statement.gate.value, "action": statement.action.value,
        "actor": {"name": statement.signer, "key_id": statement.payload["key_id"]},
        "subject_digest": statement.subject_digest,
        "request": {"id": request.request_id, "requested_by": request.signer,
                    "requested_at": request.payload["signed_at"], "target": request.payload["target"]},
        "approvals": [approval_input(a, key_revoked=was_revoked(a), new=False, evidence_digest=current)
                      for a in approvals]
        + ([approval_input(statement, key_revoked=False, new=True, evidence_digest=current)] if answers else []),
    }
    subject = document.get("subject") if isinstance(document.get("subject"), dict) else {}
    recorded = {"gate": document.get("gate"), "action": document.get("action"), "actor": document.get("actor"),
                "subject_digest": subject.get("digest"), "request": document.get("request"),
                "approvals": document.get("approvals")}
    differing = sorted(name for name in expected if expected[name] != recorded[name])
    if request.action not in (GateAction.REQUEST, GateAction.WITHDRAW) or request.request_id != statement.request_id \
            or request.subject_digest != statement.subject_digest \
            or any(a.request_id != request.request_id or a.subject_digest != statement.subject_digest
                   for a in approvals):
        differing.append("request")
    if answers:
        for admitted in (request, *approvals):
            check_admitted(session, admitted, statement.request_id, before=seq)
    if differing:
        raise StoreTampered(f"audit entry {seq}: the input of its decision is not what its signers signed "
                            f"({', '.join(sorted(set(differing)))})", hint="run `forgegov audit verify --replay`")


# Acts whose target the policy is told is the signed references resolved in the store (`governance/jobs.py`,
# `governance/fetches.py`).
# The fields of each such act's signed target that are carried into the policy's target unchanged.
_RESOLVED_ACTS = {"job.start": ("kind",), "job.cancel": ("job",), "asset.fetch": ("subject", "kind")}


def check_admin_input(session: Session, seq: int, payload: dict[str, Any], action: str) -> dict[str, Any]:
    """The question an administrative act's entry says was put to the policy, once it is the act its actor signed:
    who acts, which act, why, and on what (a redaction's entry as the log has it; a rotation's key as signed).
    StoreTampered otherwise: an "allow" for a question nobody asked, made up beside a real signature."""
    decision, statement = payload.get("decision"), payload.get("statement")
    document = decision.get("input") if isinstance(decision, dict) else None
    if not isinstance(document, dict) or not isinstance(statement, dict):
        raise StoreTampered(f"audit entry {seq} ({action}) does not carry the question its decision answered",
                            hint="run `forgegov audit verify`")
    actor, target, signed = document.get("actor"), document.get("target"), statement.get("target")
    expected: dict[str, Any] = {}
    if isinstance(signed, dict):
        expected = {key: signed.get(key) for key in ("name", "seq", "contact") if key in signed}
        if "public_key" in signed:
            try:
                expected["key_id"] = key_id_of(public_key_from_b64(str(signed["public_key"])))
            except ValueError:
                expected["key_id"] = None
        if statement.get("act") == "audit.redact" and isinstance(signed.get("seq"), int):
            erased = session.get(AuditEntry, signed["seq"])
            expected["action"] = erased.action if erased is not None else None
    if statement.get("act") in _RESOLVED_ACTS and isinstance(signed, dict) and isinstance(target, dict):
        # What was signed directly (a job's kind, the job stopped, the asset fetched) must be what the policy was
        # told.
        compared = [key for key in _RESOLVED_ACTS[statement["act"]] if key in signed]
        expected, target = {key: signed[key] for key in compared}, {key: target.get(key) for key in compared}
    if not isinstance(actor, dict) or not isinstance(target, dict) \
            or (document.get("act"), actor.get("name"), actor.get("key_id"), document.get("reason")) \
            != (statement.get("act"), statement.get("signer"), statement.get("key_id"), statement.get("reason")) \
            or target != expected:
        raise StoreTampered(f"audit entry {seq} ({action}): the question put to the policy is not the act its actor "
                            "signed", hint="run `forgegov audit verify`")
    _check_cosigners(session, seq, document, statement)
    return document


def _check_cosigners(session: Session, seq: int, document: dict[str, Any], statement: dict[str, Any]) -> None:
    """Each earlier signer the decision counted toward a quorum waits in the log: an `admin.pending` entry before
    this one and within the quorum window, held to its leaf, logged as waiting, whose statement that signer signed
    (under the key the log bound to them, still theirs and not revoked at this entry) on the very act and target this
    entry's actor signed, and neither the actor nor counted twice. Otherwise an insider holding the log key makes a
    quorum of one."""
    listed = document.get("cosigners", [])
    if not isinstance(listed, list):
        raise StoreTampered(f"audit entry {seq}: the decision's cosigners are not a list",
                            hint="run `forgegov audit verify`")
    try:
        since = parse_rfc3339(str(document.get("now"))) - QUORUM_WINDOW
    except ValueError as exc:
        raise StoreTampered(f"audit entry {seq}: the decision's time is not RFC 3339",
                            hint="run `forgegov audit verify`") from exc
    counted = {str(statement.get("signer"))}
    revoked = revocations(session)
    for cosigner in listed:
        waiting_seq = cosigner.get("seq") if isinstance(cosigner, dict) else None
        if not isinstance(waiting_seq, int) or isinstance(waiting_seq, bool) or waiting_seq >= seq:
            raise StoreTampered(f"audit entry {seq}: a cosigner ({cosigner}) names no earlier entry",
                                hint="run `forgegov audit verify`")
        entry = session.get(AuditEntry, waiting_seq)
        waiting = committed_payload(session, what=f"the signature entry {seq} counted toward its quorum",
                                    action=AuditAction.ADMIN_PENDING,
                                    subject_digest=entry.subject_digest if entry is not None else None, fields={},
                                    seq=waiting_seq)
        signed, decided = waiting.get("statement") or {}, waiting.get("decision") or {}
        name = str(cosigner.get("name"))
        holds = entry is not None and entry.actor == name == signed.get("signer") and name not in counted \
            and signed.get("key_id") == cosigner.get("key_id") \
            and (signed.get("act"), signed.get("target")) == (statement.get("act"), statement.get("target")) \
            and decided.get("allow") is False and not decided.get("reasons") and bool(decided.get("missing")) \
            and parse_rfc3339(entry.time) >= since and revoked.get(name, seq) >= seq
        if holds:
            current = key_history(session, name, before=seq)[-1]
            holds = current.key_id == cosigner.get("key_id")
            try:
                verify(public_key_from_b64(current.public_key), Purpose.ADMIN_ACT, signed,
                       str(waiting.get("signature")))
            except SignatureInvalid:
                holds = False
        if not holds:
            raise StoreTampered(f"audit entry {seq}: the decision counted {name}'s signature (entry {waiting_seq}) "
                                "toward its quorum, but that entry is not a waiting act by them, under their key of "
                                "the time, on the act and target this one signs", hint="run `forgegov audit verify`")
        counted.add(name)


def check_admitted(session: Session, statement: SignedStatement, request_id: str, *, before: int | None = None) -> None:
    """`statement` (a request, or an approval on it) is the very statement a gate decision on request `request_id`
    admitted (allowed or left pending, never denied), that decision tied to its audit entry, made before entry
    `before` when given. A statement a decision denied, one only a refusal recorded, one re-signed under an admitted
    nonce, or one inserted into the store, is no part of any request."""
    decision = session.exec(select(Decision).where(Decision.nonce == statement.payload.get("nonce"))).first()
    what = f"the {statement.action.value} by {statement.signer} on request {request_id}"
    if decision is None or decision.result is DecisionResult.DENY or decision.request_id != request_id:
        raise StoreTampered(f"{what} was never admitted by a gate decision (denied, or inserted into the store)",
                            hint="run `forgegov audit verify`")
    action = AuditAction.of_gate(decision.gate, decision.action)
    payload = committed_payload(session, what=f"the decision that admitted {what}", action=action,
                                decision_id=decision.id, subject_digest=decision.subject_digest,
                                fields={"result": decision.result.value})
    if payload.get("statement") != statement.payload or payload.get("signature") != statement.signature:
        raise StoreTampered(f"{what} is not the statement its decision {decision.id} admitted",
                            hint="run `forgegov audit verify`")
    if before is not None:
        seq = session.exec(select(AuditEntry.seq).where(AuditEntry.decision_id == decision.id,
                                                        AuditEntry.action == action)).first()
        if seq is None or seq >= before:
            raise StoreTampered(f"{what} was admitted only after entry {before}", hint="run `forgegov audit verify`")
