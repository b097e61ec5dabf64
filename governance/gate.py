"""The gate transaction: the one door through which any asset changes state.

    request → evidence → OPA decision → signatures → audit append → state change

`submit` runs every step for one signed statement inside one serialised database transaction, then signs a tree head
and gives it to every configured witness. A step that fails before OPA is asked (a log behind a witness, unknown
subject, bad or replayed signature, revoked key, no open request) raises and changes nothing; refusals of signatures
are still written to the audit log on their own. Once OPA is asked, the decision
is recorded whatever it is; the state changes only when it allows. OPA unreachable or a malformed answer is a
denial (fail closed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlmodel import Session, select

from forgegov.audit.recorder import AuditedTransaction, EntryDraft, TreeHeadUnsigned, audited_transaction, record
from forgegov.audit.tree_heads import check_against_witnesses
from forgegov.foundation.canonical import canonical_bytes, sha256_digest
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import (
    BadInput,
    DecisionUnavailable,
    NotFound,
    PolicyDenied,
    ReplayedApproval,
    RevokedIdentity,
    SignatureInvalid,
    StateConflict,
    StoreTampered,
    Tampered,
)
from forgegov.foundation.store.models import Approval, Asset, AuditEntry, Decision, GateRequest, Identity
from forgegov.foundation.vocabulary import (
    AssetState,
    AuditAction,
    DecisionResult,
    Gate,
    GateAction,
    RequestStatus,
    Verdict,
)
from forgegov.governance.asset_kinds import KIND_OF_GATE
from forgegov.governance.evidence import gather as gather_evidence
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.opa.client import OpaAnswer
from forgegov.governance.policy import policy_in_force
from forgegov.governance.policy_adoption import put_in_force
from forgegov.governance.registry import check_recorded, label
from forgegov.governance.statements import (
    SignedStatement,
    approval_input,
    check_admitted,
    check_fresh,
    check_shape,
    evidence_digest_of,
    verify_statement,
    verify_stored,
)

INPUT_VERSION = 1
Effect = Callable[[AuditedTransaction, Asset, Decision, SignedStatement], None]
# Per gate, what an approval does besides approving its subject; a gate absent here only changes state.
ON_APPROVAL: dict[Gate, tuple[Effect, ...]] = {Gate.POLICY: (put_in_force,)}


class DecisionSource(Protocol):
    pinned_digest: str
    pinned_revision: str

    def decide(self, gate: Gate, input_document: dict[str, Any]) -> OpaAnswer: ...


@dataclass(frozen=True)
class GateOutcome:
    decision_id: str
    opa_decision_id: str | None
    gate: Gate
    action: GateAction
    result: DecisionResult
    reasons: tuple[str, ...]
    missing: tuple[str, ...]
    request_id: str
    subject: str
    subject_digest: str
    state: str | None
    release: str | None
    policy_revision: str
    audit_seq: int
    evidence_digest: str | None = None  # the evidence an approval or rejection was given for, when it names it
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id, "opa_decision_id": self.opa_decision_id, "gate": self.gate.value,
            "action": self.action.value, "result": self.result.value, "reasons": list(self.reasons),
            "missing": list(self.missing), "request_id": self.request_id, "subject": self.subject,
            "subject_digest": self.subject_digest, "state": self.state, "release": self.release,
            "policy_revision": self.policy_revision, "audit_seq": self.audit_seq,
            "evidence_digest": self.evidence_digest,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> GateOutcome:
        """An outcome as the team server reported it (`to_dict`)."""
        try:
            return cls(document["decision_id"], document["opa_decision_id"], Gate(document["gate"]),
                       GateAction(document["action"]), DecisionResult(document["result"]),
                       tuple(document["reasons"]), tuple(document["missing"]), document["request_id"],
                       document["subject"], document["subject_digest"], document["state"], document["release"],
                       document["policy_revision"], document["audit_seq"], document.get("evidence_digest"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"the server's answer is not a gate outcome: {exc}") from exc


def subject_input(asset: Asset) -> dict[str, Any]:
    return {"kind": asset.kind.value, "name": asset.name, "version": asset.version, "digest": asset.digest,
            "owner": asset.owner, "state": asset.state.value, "stage": asset.stage, "release": asset.release,
            "dataset_kind": asset.dataset_kind, "classification": asset.classification, "records": asset.records}


def request_input(request: GateRequest) -> dict[str, Any]:
    return {"id": request.id, "requested_by": request.requested_by, "requested_at": request.requested_at,
            "target": request.target}


def evidence_digest_for(gate: Gate, asset: Asset, request: GateRequest, evidence: dict[str, Any]) -> str:
    """The digest an approval is given for, from the same parts `build_input` puts in the document."""
    return evidence_digest_of({"gate": gate.value, "subject": subject_input(asset), "request": request_input(request),
                               "evidence": evidence})


def current_evidence_digest(workspace: Workspace, session: Session, gate: Gate, asset: Asset,
                            request: GateRequest) -> str:
    """The evidence digest as the gate would compute it now (what `approve` signs and `review` prints)."""
    return evidence_digest_for(gate, asset, request, gather_evidence(workspace, session, gate, asset))


def build_input(gate: Gate, action: GateAction, actor: Identity, asset: Asset, request: GateRequest,
                approvals: list[dict[str, Any]], evidence: dict[str, Any]) -> dict[str, Any]:
    """The document OPA decides on. The gate, `forgegov review` and the previews behind `inbox` and
    `run start --dry-run` all build it here, so what a person reviews is what the policy is shown."""
    return {
        "version": INPUT_VERSION, "gate": gate.value, "action": action.value, "now": now_rfc3339(),
        "actor": {"name": actor.name, "key_id": actor.key_id},
        "subject": subject_input(asset),
        "request": request_input(request),
        "approvals": approvals,
        "evidence": evidence,
    }


def submit(workspace: Workspace, engine: DecisionSource, statement: SignedStatement) -> GateOutcome:
    """Run the gate for one signed statement. Raises PolicyDenied (after recording it) when OPA denies."""
    try:
        with audited_transaction(workspace, tree_head=True) as tx:
            outcome = _decide_and_apply(workspace, tx, engine, statement)
    except TreeHeadUnsigned:
        raise  # the decision is committed; only its tree head is missing: not a refusal
    except (Tampered, RevokedIdentity) as refusal:
        _log_refusal(workspace, statement, refusal)
        raise
    if outcome.result is DecisionResult.DENY:
        raise PolicyDenied(
            f"{outcome.gate.value} gate denied {outcome.action.value} on {outcome.subject}",
            list(outcome.reasons), decision_id=outcome.decision_id, outcome=outcome.to_dict(),
        )
    return outcome


def _decide_and_apply(workspace: Workspace, tx: AuditedTransaction, engine: DecisionSource,
                      statement: SignedStatement) -> GateOutcome:
    session = tx.session
    # 0. The log itself: it must extend every configured witness's newest tree head, so a store rolled back (a
    #    database file restored from a copy) or a log rewritten with the log key does not get to decide.
    check_against_witnesses(workspace, session)
    # 1. The request: which subject, and which open request this statement opens or answers.
    check_shape(statement)
    gate, action = statement.gate, statement.action
    asset, request = _subject_and_open_request(session, gate, statement.subject_digest)
    if action is GateAction.REQUEST:
        if request is not None:
            raise StateConflict(
                f"{label(asset)} already has an open {gate.value} request ({request.id}) by {request.requested_by}",
                hint="approvers answer it with `forgegov approve`/`reject`",
            )
        if gate is Gate.PROMOTION and statement.target is None:
            raise StateConflict("a promotion request needs a target stage (--to staging|production)")
        request = GateRequest(
            id=statement.request_id, gate=gate, asset_id=asset.id, target=statement.payload["target"],
            requested_by=statement.signer, requested_at=statement.payload["signed_at"],
            payload=statement.canonical(), signature=statement.signature,
        )
    elif action is GateAction.WITHDRAW:
        # Decided at once, on its own signature: no request is opened, none is answered. The statement's request id
        # names the decision's request; nothing else is stored under it.
        request = GateRequest(
            id=statement.request_id, gate=gate, asset_id=asset.id, target=None, requested_by=statement.signer,
            requested_at=statement.payload["signed_at"], payload=statement.canonical(),
            signature=statement.signature,
        )
    else:
        if request is None:
            raise StateConflict(f"{label(asset)} has no open {gate.value} request to {action.value}",
                                hint=f"open one with `forgegov request {label(asset)} --gate {gate.value}`")
        if statement.request_id != request.id:
            raise ReplayedApproval(f"statement was signed for request {statement.request_id}, "
                                   f"not the open request {request.id}: refused as a replay")

    # 2. Evidence: the actor's identity and signature, every approval already on the request, and what forgegov
    #    itself recorded about the subject (data-quality checks, ...), each re-verified.
    actor = get_identity(session, statement.signer)
    require_active(actor)
    verify_statement(actor, statement)
    check_fresh(statement)
    _refuse_replay(session, statement)
    answers = action in (GateAction.APPROVE, GateAction.REJECT)
    if answers:
        verify_open_request(session, request, asset)
    stored_approvals = verified_approvals(session, request) if answers else []
    evidence = gather_evidence(workspace, session, gate, asset)
    current = evidence_digest_for(gate, asset, request, evidence)
    # 2a. What each approval was given for: a new one whose evidence changed since its signer was shown it is refused
    #     (nothing is recorded); a stored one is reported to the policy as current or not (`evidence_current`), and
    #     the policy stops counting it, so a held-back or early approval never counts for evidence its signer did not
    #     see (a failing check added later, an input withdrawn).
    signed_for = statement.payload.get("evidence_digest")
    if signed_for is not None and signed_for != current:
        raise StateConflict(f"{label(asset)} changed since {actor.name} signed for it: the {gate.value} gate's evidence "
                            f"is no longer the one with digest {signed_for}",
                            hint=f"review it again (`forgegov review {label(asset)}`) and sign what it shows now")
    approvals = [approval_input(carried, key_revoked=revoked, new=False, evidence_digest=current)
                 for carried, revoked in stored_approvals]
    if answers:
        approvals.append(approval_input(statement, key_revoked=False, new=True, evidence_digest=current))

    # 3. The OPA decision, from the policy the log says is in force (a policy_activation row inserted, or a policy
    #    adopted since this engine started, must not decide). Anything but a clear, well-formed answer is a denial.
    in_force = policy_in_force(session)
    if in_force.digest != engine.pinned_digest:
        raise StateConflict(f"policy {in_force.revision} was put in force after this OPA started with "
                            f"{engine.pinned_revision}", hint="run the command again")
    input_document = build_input(gate, action, actor, asset, request, approvals, evidence)
    try:
        answer = engine.decide(gate, input_document)
        reasons, missing, opa_decision_id = answer.deny, answer.missing, answer.decision_id
        result = (DecisionResult.ALLOW if answer.allow
                  else DecisionResult.DENY if answer.deny else DecisionResult.PENDING)
    except DecisionUnavailable as exc:
        reasons, missing, opa_decision_id = (exc.message,), (), None
        result = DecisionResult.DENY

    # 4. The signatures that get stored: the request's own, and the new approval or rejection.
    decided_at = now_rfc3339()
    if result is not DecisionResult.DENY and action is not GateAction.WITHDRAW:
        session.add(request)
        if answers:
            session.add(Approval(
                request_id=request.id, approver=actor.name, key_id=actor.key_id,
                verdict=Verdict.APPROVE if action is GateAction.APPROVE else Verdict.REJECT,
                payload=statement.canonical(), signature=statement.signature, nonce=statement.payload["nonce"],
                signed_at=statement.payload["signed_at"], recorded_at=decided_at,
            ))

    # 5. The decision record and its audit entry.
    input_bytes = canonical_bytes(input_document)
    decision = Decision(
        id=str(uuid.uuid4()), opa_decision_id=opa_decision_id, gate=gate, action=action, request_id=request.id,
        subject_digest=asset.digest, actor=actor.name, input_digest=sha256_digest(input_bytes),
        input=input_bytes.decode(), result=result,
        reasons=json.dumps(list(reasons)), missing=json.dumps(list(missing)),
        policy_revision=engine.pinned_revision, policy_digest=engine.pinned_digest, decided_at=decided_at,
        nonce=statement.payload["nonce"],
    )
    session.add(decision)

    # 6. The state change, only when the policy allows it.
    if result is DecisionResult.ALLOW:
        _apply(asset, request, action, decided_at)
    elif result is DecisionResult.PENDING and action is GateAction.REQUEST and gate is not Gate.PROMOTION:
        asset.state = AssetState.PENDING
    session.add(asset)
    entry = tx.append(EntryDraft(
        actor=actor.name, action=AuditAction.of_gate(gate, action), subject_digest=asset.digest,
        decision_id=decision.id, policy_revision=engine.pinned_revision,
        payload={
            "result": result.value, "reasons": list(reasons), "missing": list(missing),
            "opa_decision_id": opa_decision_id, "input_digest": decision.input_digest,
            "policy_digest": engine.pinned_digest, "request_id": request.id, "subject": label(asset),
            "statement": statement.payload, "signature": statement.signature,
            "state": asset.state.value, "release": asset.release,
            # What an answer was decided with, signed: the request and the approvals already on it. The log key
            # alone cannot make up a quorum (`audit verify`, `--replay`).
            **({"signed_request": {"statement": json.loads(request.payload), "signature": request.signature},
                "signed_approvals": [{"statement": carried.payload, "signature": carried.signature}
                                     for carried, _ in stored_approvals]} if answers else {}),
        },
    ))
    # 7. What an allowing decision sets in motion beyond the subject's state (a policy put in force).
    if result is DecisionResult.ALLOW and action in (GateAction.REQUEST, GateAction.APPROVE):
        for effect in ON_APPROVAL.get(gate, ()):
            effect(tx, asset, decision, statement)
    return GateOutcome(
        decision_id=decision.id, opa_decision_id=opa_decision_id, gate=gate, action=action, result=result,
        reasons=tuple(reasons), missing=tuple(missing), request_id=request.id, subject=label(asset),
        subject_digest=asset.digest, state=asset.state.value, release=asset.release,
        policy_revision=engine.pinned_revision, audit_seq=entry.seq, evidence_digest=signed_for,
    )


@dataclass(frozen=True)
class Preview:
    """What the policy in force would answer, asked without acting: nothing is signed, stored or logged."""

    result: DecisionResult
    reasons: tuple[str, ...]
    missing: tuple[str, ...]
    document: dict[str, Any]


def preview(workspace: Workspace, engine: DecisionSource, session: Session, gate: Gate, action: GateAction,
            actor: Identity, asset: Asset, request: GateRequest, *, stored: bool = True,
            justification: str = "") -> Preview:
    """Ask the policy what it would decide if `actor` took `action` now, through the same steps as `submit` minus
    the signature: the approvals already on a stored request (re-verified), plus `actor`'s as a new, hypothetical one
    when the action answers the request, and the evidence gathered as the gate gathers it. For `inbox` and
    `run start --dry-run`; never a decision (a preview is not evidence of anything)."""
    in_force = policy_in_force(session)
    if in_force.digest != engine.pinned_digest:
        raise StateConflict(f"policy {in_force.revision} was put in force after this OPA started with "
                            f"{engine.pinned_revision}", hint="run the command again")
    evidence = gather_evidence(workspace, session, gate, asset)
    current = evidence_digest_for(gate, asset, request, evidence)
    approvals: list[dict[str, Any]] = []
    if stored:
        verify_open_request(session, request, asset)
        approvals = [approval_input(carried, key_revoked=revoked, new=False, evidence_digest=current)
                     for carried, revoked in verified_approvals(session, request)]
    if action in (GateAction.APPROVE, GateAction.REJECT):
        approvals.append({"approver": actor.name, "key_id": actor.key_id,
                          "verdict": Verdict.APPROVE.value if action is GateAction.APPROVE else Verdict.REJECT.value,
                          "signed_at": now_rfc3339(), "key_revoked": False, "new": True,
                          "justification": justification, "evidence_current": True})
    document = build_input(gate, action, actor, asset, request, approvals, evidence)
    try:
        answer = engine.decide(gate, document)
    except DecisionUnavailable as exc:
        return Preview(DecisionResult.DENY, (exc.message,), (), document)
    result = DecisionResult.ALLOW if answer.allow else DecisionResult.DENY if answer.deny else DecisionResult.PENDING
    return Preview(result, tuple(answer.deny), tuple(answer.missing), document)


def _apply(asset: Asset, request: GateRequest, action: GateAction, at: str) -> None:
    if action is GateAction.WITHDRAW:
        asset.state = AssetState.WITHDRAWN
        return
    request.closed_at = at
    if action is GateAction.REJECT:
        request.status = RequestStatus.REJECTED
        if request.gate is not Gate.PROMOTION:
            asset.state = AssetState.REJECTED
        return
    request.status = RequestStatus.APPROVED
    if request.gate is Gate.PROMOTION:
        asset.release = request.target
    else:
        asset.state = AssetState.APPROVED


def _subject_and_open_request(session: Session, gate: Gate, digest: str) -> tuple[Asset, GateRequest | None]:
    kind = KIND_OF_GATE[gate]
    row = session.exec(
        select(Asset, GateRequest)
        .outerjoin(GateRequest, (GateRequest.asset_id == Asset.id) & (GateRequest.gate == gate)  # type: ignore[arg-type]
                   & (GateRequest.status == RequestStatus.OPEN))
        .where(Asset.kind == kind, Asset.digest == digest)
    ).first()
    if row is None:
        raise NotFound(f"no registered {kind.value} with digest {digest}")
    check_recorded(session, row[0])
    return row[0], row[1]


def _refuse_replay(session: Session, statement: SignedStatement) -> None:
    """A nonce is spent once, by any decision on its statement, allowed, pending or denied (a statement denied while
    OPA was down must not be submitted again once it is up); a request statement's id is spent with its request."""
    nonce = statement.payload["nonce"]
    spent = [select(Decision.id).where(Decision.nonce == nonce), select(Approval.id).where(Approval.nonce == nonce),
             # One a gate refused (the store was tampered with, say) is never submitted again either.
             select(AuditEntry.seq).where(AuditEntry.action == AuditAction.GATE_REFUSED,
                                          AuditEntry.payload.contains(str(nonce), autoescape=True))]  # type: ignore[union-attr]
    if statement.action is GateAction.REQUEST:
        # A request id is spent by its request and by every decision on it: reusing one (its request row deleted)
        # would let the approvals given to the old request count again.
        spent += [select(GateRequest.id).where(GateRequest.id == statement.request_id),
                  select(Decision.id).where(Decision.request_id == statement.request_id)]
    if any(session.exec(query).first() is not None for query in spent):
        raise ReplayedApproval("this signed statement was already used: refused as a replay",
                               hint="sign a new statement (re-run the command)")


def verify_open_request(session: Session, request: GateRequest, asset: Asset) -> None:
    """The open request is the one its requester signed: who requested (separation of duties rests on it), for which
    gate, subject and target. A row edited in the database (requested_by, say) stops the gate."""
    statement = SignedStatement(_stored_json(request.payload, f"open request {request.id}"), request.signature)
    try:
        verify_stored(session, statement)
    except SignatureInvalid as exc:
        raise StoreTampered(f"open request {request.id} on {label(asset)} is not the statement {request.requested_by} "
                            f"signed: the store was altered ({exc.message})",
                            hint="run `forgegov audit verify`") from exc
    signed = (statement.signer, statement.request_id, statement.gate, statement.action, statement.subject_digest,
              statement.payload.get("target"))
    stored = (request.requested_by, request.id, request.gate, GateAction.REQUEST, asset.digest, request.target)
    if signed != stored:
        raise StoreTampered(f"open request {request.id} on {label(asset)} differs from the statement that opened it "
                            f"(signed by {statement.signer}; the row says requested by {request.requested_by})",
                            hint="run `forgegov audit verify`")
    # Open as the log has it: a request an allowing decision closed stays closed, whatever its row says.
    closing = session.exec(select(Decision.id).where(Decision.request_id == request.id,
                                                     Decision.result == DecisionResult.ALLOW)).first()
    if closing is not None:
        raise StoreTampered(f"request {request.id} on {label(asset)} was closed by decision {closing}, but its row "
                            "says it is open: the store was altered", hint="run `forgegov audit verify`")
    check_admitted(session, statement, request.id)


def verified_approvals(session: Session, request: GateRequest) -> list[tuple[SignedStatement, bool]]:
    """Re-verify every stored approval: a row edited in the database must not count towards a quorum. With each, whether
    its key has been revoked or replaced by a rotation since it signed (the policy decides what that means)."""
    verified: list[tuple[SignedStatement, bool]] = []
    stored = session.exec(select(Approval).where(Approval.request_id == request.id)
                          .order_by(Approval.id))  # type: ignore[arg-type]
    for approval in stored.all():
        statement = SignedStatement(_stored_json(approval.payload, f"stored approval {approval.id}"),
                                    approval.signature)
        try:
            # Under the key the log bound to the approver's name when they signed, not as the identity row says now.
            bound = verify_stored(session, statement)
        except SignatureInvalid as exc:
            raise SignatureInvalid(f"stored approval {approval.id} by {approval.approver} on request "
                                   f"{request.id} does not verify: the store was altered ({exc.message})") from exc
        if statement.signer != approval.approver or statement.request_id != request.id \
                or statement.action.value != approval.verdict.value:
            raise SignatureInvalid(f"stored approval {approval.id} does not match its signed statement")
        check_admitted(session, statement, request.id)
        signer = get_identity(session, approval.approver)
        verified.append((statement, signer.revoked_at is not None or bound.superseded_at is not None))
    return verified


def _stored_json(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StoreTampered(f"{what} is not JSON: the store was altered", hint="run `forgegov audit verify`") from exc
    if not isinstance(document, dict):
        raise StoreTampered(f"{what} is not a JSON object: the store was altered", hint="run `forgegov audit verify`")
    return document


def _log_refusal(workspace: Workspace, statement: SignedStatement, refusal: Exception) -> None:
    payload = statement.payload if isinstance(statement.payload, dict) else {}
    subject = payload.get("subject")
    record(workspace, EntryDraft(
        actor=str(payload.get("signer", "?")), action=AuditAction.GATE_REFUSED,
        subject_digest=subject.get("digest") if isinstance(subject, dict) else None,
        payload={"reason": str(refusal), "statement": payload, "signature": statement.signature},
    ))
