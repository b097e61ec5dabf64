"""The verbs behind `request`, `approve`, `reject`, `promote`, `identity revoke|rotate`, `audit redact` and starting a
job: sign a statement as the actor, then pass the gate (or the administrative act's decision).

The CLI, the demo and the tests all call these; each takes an optional running `PolicyEngine` so that many
decisions can share one OPA.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from forgegov.foundation.canonical import check_digest
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import public_key_to_b64
from forgegov.foundation.errors import BadInput, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, GateRequest
from forgegov.foundation.vocabulary import AssetKind, Gate, GateAction, ReleaseStage, RequestStatus
from forgegov.governance.admin import (
    AdminAct,
    AdminOutcome,
    AdminStatement,
    carried_out,
    make_admin_statement,
    submit_admin,
)
from forgegov.governance.asset_kinds import KIND_OF_GATE, KINDS
from forgegov.governance.gate import GateOutcome, current_evidence_digest, submit
from forgegov.governance.identities import (
    abandon_rotation,
    enrolment_target,
    finish_rotation,
    get_identity,
    prepare_rotation,
    read_enrolment_request,
    unlock,
)
from forgegov.governance.job_entries import started
from forgegov.governance.policy import PolicyEngine, open_engine
from forgegov.governance.registry import label, resolve
from forgegov.governance.statements import SignedStatement, make_statement


@contextmanager
def policy_engine(workspace: Workspace) -> Iterator[PolicyEngine]:
    with read_session(workspace.database_url) as session:
        engine = open_engine(workspace, session)
    with engine:
        yield engine


def gate_for(asset: Asset, gate: Gate | None) -> Gate:
    """The gate `gate` asks for, or the kind's default one; refused unless it is one of the kind's gates."""
    allowed = KINDS[asset.kind].gates
    if gate is None:
        return allowed[0]
    if gate not in allowed:
        raise BadInput(f"{label(asset)} is a {asset.kind.value}; its gate is {' or '.join(g.value for g in allowed)}, "
                       f"not {gate.value}")
    return gate


def _subject_and_request(workspace: Workspace, subject: str, gate: Gate | None, *,
                         answering: bool = False) -> tuple[Asset, Gate, GateRequest | None]:
    """The asset SUBJECT means, the gate, and its open request. A gate names the kind (`promote` → checkpoints);
    an answer (`approve`, `reject`) means the asset that has an open request when a name is shared by several kinds
    (a run and the candidate it produced), and that request's gate when none is given."""
    with read_session(workspace.database_url) as session:
        def open_gates(asset: Asset) -> list[Gate]:
            query = select(GateRequest.gate).where(GateRequest.asset_id == asset.id,
                                                    GateRequest.status == RequestStatus.OPEN)
            if gate is not None:
                query = query.where(GateRequest.gate == gate)
            return list(session.exec(query))

        # A kind spelt out in SUBJECT is checked against the gate below, with the kind's own gates in the message.
        implied = KIND_OF_GATE[gate] if gate is not None and "/" not in subject else None
        asset = resolve(session, subject, implied, prefer=(lambda a: bool(open_gates(a))) if answering else None)
        opened = open_gates(asset) if answering and gate is None else []
        chosen = opened[0] if len(opened) == 1 else gate_for(asset, gate)
        request = session.exec(select(GateRequest).where(
            GateRequest.asset_id == asset.id, GateRequest.gate == chosen, GateRequest.status == RequestStatus.OPEN,
        )).first()
        session.expunge(asset)
        if request is not None:
            session.expunge(request)
        return asset, chosen, request


def _run(workspace: Workspace, engine: PolicyEngine | None, statement: SignedStatement) -> GateOutcome:
    if engine is not None:
        return submit(workspace, engine, statement)
    with policy_engine(workspace) as started:
        return submit(workspace, started, statement)


@dataclass(frozen=True)
class Prepared:
    """What a member signs a gate statement about, resolved from what they typed: the subject's kind and digest, the
    gate, the open request it answers and the evidence digest an answer is given for. The team server hands this to
    members (`POST /v1/prepare`); they sign it with their own key."""

    kind: AssetKind
    digest: str
    label: str
    gate: Gate
    request_id: str | None
    evidence_digest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "digest": self.digest, "label": self.label, "gate": self.gate.value,
                "request_id": self.request_id, "evidence_digest": self.evidence_digest}

    @classmethod
    def from_dict(cls, document: Any) -> Prepared:
        try:
            return cls(AssetKind(document["kind"]), check_digest(document["digest"]), str(document["label"]),
                       Gate(document["gate"]), document["request_id"], document["evidence_digest"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"the server's answer names no gate subject: {exc}") from exc


def prepare(workspace: Workspace, subject: str, action: GateAction, *, gate: Gate | None = None,
            target: ReleaseStage | None = None) -> Prepared:
    """Resolve SUBJECT for `action`; an answer (approve, reject) needs an open request and is given for the evidence
    the gate is shown now (what `forgegov review` prints): the gate refuses it if the evidence differs when it
    decides, and the policy stops counting it once the evidence changes."""
    answering = action in (GateAction.APPROVE, GateAction.REJECT)
    asset, chosen, open_request = _subject_and_request(workspace, subject, gate, answering=answering)
    if action is GateAction.REQUEST:
        if chosen is Gate.PROMOTION and target is None:
            raise BadInput("a promotion request needs --to staging|production")
        if chosen is not Gate.PROMOTION and target is not None:
            raise BadInput(f"--to applies to checkpoint promotion only, not to the {chosen.value} gate")
    if not answering:
        return Prepared(asset.kind, asset.digest, label(asset), chosen, None, None)
    if open_request is None:
        raise StateConflict(f"{label(asset)} has no open {chosen.value} request to {action.value}",
                            hint=f"the requester opens one with `forgegov request {label(asset)} --as NAME`")
    with read_session(workspace.database_url) as session:
        current = current_evidence_digest(workspace, session, chosen, resolve(session, asset.digest, asset.kind),
                                          open_request)
    return Prepared(asset.kind, asset.digest, label(asset), chosen, open_request.id, current)


def sign_prepared(signer: Signer, prepared: Prepared, action: GateAction, *, target: ReleaseStage | None = None,
                  comment: str = "", expect_digest: str | None = None) -> SignedStatement:
    """The statement `signer` makes about `prepared`; with `expect_digest`, nothing is signed unless the evidence is
    still the one reviewed."""
    if expect_digest is not None and prepared.evidence_digest != expect_digest:
        raise StateConflict(f"{prepared.label} changed since it was reviewed: its {prepared.gate.value} gate evidence "
                            f"now has digest {prepared.evidence_digest}, not {expect_digest}",
                            hint=f"review it again (`forgegov review {prepared.label}`) before signing")
    return make_statement(signer, prepared.gate, action, Asset(kind=prepared.kind, digest=prepared.digest),
                          request_id=prepared.request_id, target=target, comment=comment,
                          evidence_digest=prepared.evidence_digest)


def request(workspace: Workspace, subject: str, actor: str, passphrase: str, *, gate: Gate | None = None,
            target: ReleaseStage | None = None, comment: str = "", engine: PolicyEngine | None = None) -> GateOutcome:
    prepared = prepare(workspace, subject, GateAction.REQUEST, gate=gate, target=target)
    statement = sign_prepared(unlock(workspace, actor, passphrase), prepared, GateAction.REQUEST, target=target,
                              comment=comment)
    return _run(workspace, engine, statement)


def answer(workspace: Workspace, subject: str, actor: str, passphrase: str, action: GateAction, *,
           gate: Gate | None = None, comment: str = "", expect_digest: str | None = None,
           engine: PolicyEngine | None = None) -> GateOutcome:
    """Approve or reject SUBJECT's open request, for the evidence the gate is shown now (see `prepare`)."""
    prepared = prepare(workspace, subject, action, gate=gate)
    statement = sign_prepared(unlock(workspace, actor, passphrase), prepared, action, comment=comment,
                              expect_digest=expect_digest)
    return _run(workspace, engine, statement)


def withdraw(workspace: Workspace, subject: str, actor: str, passphrase: str, *, gate: Gate | None = None,
             comment: str = "", engine: PolicyEngine | None = None) -> GateOutcome:
    """Take SUBJECT's approval back at once, in one signed statement the policy decides (who may withdraw); runs and
    promotions that depend on it are refused from then on."""
    prepared = prepare(workspace, subject, GateAction.WITHDRAW, gate=gate)
    statement = sign_prepared(unlock(workspace, actor, passphrase), prepared, GateAction.WITHDRAW, comment=comment)
    return _run(workspace, engine, statement)


def promote(workspace: Workspace, checkpoint: str, target: ReleaseStage, actor: str, passphrase: str, *,
            comment: str = "", engine: PolicyEngine | None = None) -> GateOutcome:
    """Open a promotion request to TARGET; it applies at once if the policy needs no (more) approvals.

    A second open promotion request is refused by the gate itself, like any other duplicate request.
    """
    return request(workspace, checkpoint, actor, passphrase, gate=Gate.PROMOTION, target=target,
                   comment=comment, engine=engine)


def revoke(workspace: Workspace, name: str, reason: str, actor: str, passphrase: str, *,
           engine: PolicyEngine | None = None) -> AdminOutcome:
    """Revoke NAME as `actor`, who signs the act; the policy in force decides who may (`policies/admin/`)."""
    signer = unlock(workspace, actor, passphrase)
    return _admin(workspace, engine, make_admin_statement(signer, AdminAct.REVOKE, {"name": name}, reason))


def rotate(workspace: Workspace, name: str, new_passphrase: str, reason: str, actor: str, passphrase: str, *,
           engine: PolicyEngine | None = None, request: dict[str, Any] | None = None) -> AdminOutcome:
    """Bind a new key to NAME, as `actor` (NAME itself, or whom the policy allows when NAME's key is lost), who signs
    the act. The new key is the one in NAME's signed request (`request`, made where NAME holds it), or is made here,
    encrypted under `new_passphrase`, and replaces NAME's key file only once the rotation is decided and committed.
    Statements NAME signed before keep verifying under the old key; approvals by it that are still open no longer
    count (`key_revoked`), so they are signed again."""
    signer = unlock(workspace, actor, passphrase)
    if request is not None:
        requested = read_enrolment_request(request)
        if requested.name != name:
            raise BadInput(f"the request is {requested.name}'s, not {name}'s")
        return _admin(workspace, engine, make_admin_statement(
            signer, AdminAct.ROTATE, {"name": name, "public_key": requested.public_key}, reason))
    if actor != name:
        # Each admin would make a key of their own (no quorum could agree on one), and could sign as NAME with it.
        raise BadInput(f"{name}'s new key is made where {name} holds it, never by another",
                       hint=f"{name} runs `forgegov identity request {name} --contact ...`; then `forgegov identity "
                            f"rotate {name} --request FILE --as {actor} ...`")
    with read_session(workspace.database_url) as session:
        previous = get_identity(session, name).key_id
    public = prepare_rotation(workspace, name, new_passphrase)
    try:
        outcome = _admin(workspace, engine, make_admin_statement(
            signer, AdminAct.ROTATE, {"name": name, "public_key": public_key_to_b64(public)}, reason))
    except BaseException:
        with read_session(workspace.database_url) as session:
            committed = get_identity(session, name).key_id != previous
        if not committed:
            abandon_rotation(workspace, name)
            raise
        finish_rotation(workspace, name, previous)  # committed, its tree head unsigned: the key is NAME's now
        raise
    if outcome.waiting:
        abandon_rotation(workspace, name)  # the others sign the key in a request NAME makes (`identity request`)
    else:
        finish_rotation(workspace, name, previous)
    return outcome


def enrol(workspace: Workspace, request: dict[str, Any], reason: str, actor: str, passphrase: str, *,
          engine: PolicyEngine | None = None) -> AdminOutcome:
    """Bind the key in a member's signed enrolment request to their name, as `actor`, who signs the act; the policy
    in force decides who may, and whom (`policies/admin/`)."""
    requested = read_enrolment_request(request)
    return _admin(workspace, engine, make_admin_statement(unlock(workspace, actor, passphrase), AdminAct.ENROL,
                                                          enrolment_target(requested), reason))


def redact(workspace: Workspace, seq: int, reason: str, actor: str, passphrase: str, *,
           engine: PolicyEngine | None = None) -> AdminOutcome:
    """Erase audit entry SEQ's payload as `actor`, who signs the act; the policy in force decides."""
    signer = unlock(workspace, actor, passphrase)
    return _admin(workspace, engine, make_admin_statement(signer, AdminAct.REDACT, {"seq": seq}, reason))


def start_job(workspace: Workspace, job: dict[str, Any], reason: str, actor: str, passphrase: str, *,
              engine: PolicyEngine | None = None) -> AdminOutcome:
    """Ask, as `actor`, who signs the act, for the job JOB (`governance/jobs.py`: `run_job`, `evaluation_job`); the
    policy in force decides who may, and how often. The outcome's entry is the job, holding its orders."""
    return carried_out(_admin(workspace, engine, make_admin_statement(unlock(workspace, actor, passphrase),
                                                                      AdminAct.JOB_START, job, reason)))


def job_orders(workspace: Workspace, job: int) -> dict[str, Any]:
    """What job JOB does, as its start entry, committed to the log, holds it: exact versions the policy allowed."""
    with read_session(workspace.database_url) as session:
        return started(session, job)[2]


def _admin(workspace: Workspace, engine: PolicyEngine | None, statement: AdminStatement) -> AdminOutcome:
    if engine is not None:
        return submit_admin(workspace, engine, statement)
    with policy_engine(workspace) as started:
        return submit_admin(workspace, started, statement)
