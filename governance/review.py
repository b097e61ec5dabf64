"""`forgegov review`: what a gate will be shown about a subject, for the person about to sign, and the digest of it.

The evidence comes from the gate's own providers (`governance.evidence`), gathered and built into the gate's own input
(`gate.build_input`) by the same code the decision uses, so there is no second account of a subject that could
disagree with the one the policy reads. An approval that carries the review digest is refused by the gate when the
evidence it gathers differs (`gate.py`, step 2a).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, Decision, GateRequest
from forgegov.foundation.vocabulary import AssetKind, AuditAction, DecisionResult, Gate, RequestStatus
from forgegov.governance.asset_kinds import KIND_OF_GATE, KINDS
from forgegov.governance.evidence import gather
from forgegov.governance.evidence.data_quality import checks_evidence
from forgegov.governance.gate import (
    evidence_digest_for,
    request_input,
    verified_approvals,
    verify_open_request,
)
from forgegov.governance.policy import data_in_force, policy_in_force
from forgegov.governance.registry import label, recorded_asset, resolve

REVIEW_VERSION = 1
# The sections of policies/data/data.json a gate's policy reads besides `gates.<gate>`: what a reviewer is shown as
# the bar the evidence is held to (the data-quality thresholds for the dataset gate).
EXTRA_SETTINGS: dict[Gate, tuple[str, ...]] = {Gate.DATASET: ("data_quality",)}


@dataclass(frozen=True)
class Review:
    version: int
    subject: str
    subject_digest: str
    gate: Gate
    state: str
    release: str | None
    request: dict[str, Any] | None  # the open request, as its requester signed it
    signed: list[dict[str, Any]]  # approvals and rejections already on it, re-verified, with the signer's roles now
    still_required: list[str]  # what the last decision admitting a statement on the request said was missing
    as_of_decision: str | None
    evidence: dict[str, Any]
    settings: dict[str, Any]  # the policy's settings for this gate: quorum, thresholds, floors
    holders: dict[str, list[str]]  # who holds each role the gate's settings name, under the policy in force
    policy: dict[str, str]
    context: dict[str, Any]  # shown beside the evidence, not read by this gate's policy (a run's sources' checks)
    digest: str | None  # the evidence digest an approval signs (`approve --expect-digest`); None without a request

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "subject": self.subject, "subject_digest": self.subject_digest,
                "gate": self.gate.value, "state": self.state, "release": self.release, "request": self.request,
                "signed": self.signed, "still_required": self.still_required, "as_of_decision": self.as_of_decision,
                "evidence": self.evidence, "settings": self.settings, "holders": self.holders, "policy": self.policy,
                "context": self.context, "digest": self.digest}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Review:
        """A review as the team server sent it (`to_dict`)."""
        try:
            fields = {name: document[name] for name in cls.__dataclass_fields__}
            return cls(**{**fields, "gate": Gate(document["gate"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"the server's answer is not a review: {exc}") from exc


def gate_of(asset: Asset, gate: Gate | None, session: Session) -> Gate:
    """The gate asked for, else the gate of the subject's open request, else the kind's own gate."""
    allowed = KINDS[asset.kind].gates
    if gate is not None:
        if gate not in allowed:
            raise BadInput(f"{label(asset)} is a {asset.kind.value}; its gates are "
                                f"{', '.join(g.value for g in allowed)}, not {gate.value}")
        return gate
    open_gates = [row.gate for row in session.exec(select(GateRequest).where(
        GateRequest.asset_id == asset.id, GateRequest.status == RequestStatus.OPEN))]
    return open_gates[0] if len(open_gates) == 1 else allowed[0]


def review(workspace: Workspace, ref: str, gate: Gate | None = None) -> Review:
    with read_session(workspace.database_url) as session:
        kind = KIND_OF_GATE[gate] if gate is not None and "/" not in ref else None

        def has_open_request(asset: Asset) -> bool:  # as `approve` resolves a shared name
            return session.exec(select(GateRequest.id).where(GateRequest.asset_id == asset.id,
                                                             GateRequest.status == RequestStatus.OPEN)).first() is not None

        asset = resolve(session, ref, kind, prefer=has_open_request)
        return review_in(workspace, session, asset, gate_of(asset, gate, session))


def review_in(workspace: Workspace, session: Session, asset: Asset, gate: Gate) -> Review:
    request = session.exec(select(GateRequest).where(
        GateRequest.asset_id == asset.id, GateRequest.gate == gate, GateRequest.status == RequestStatus.OPEN)).first()
    evidence = gather(workspace, session, gate, asset)
    data = data_in_force(session)
    roles = _roles(data)
    settings = _settings(data, gate)
    in_force = policy_in_force(session)
    signed: list[dict[str, Any]] = []
    still_required: list[str] = []
    as_of: str | None = None
    opened: dict[str, Any] | None = None
    digest: str | None = None
    if request is not None:
        # The same checks the gate makes before it counts anything: the request is the one its requester signed,
        # every approval on it verifies.
        verify_open_request(session, request, asset)
        opened = {**request_input(request), "gate": gate.value,
                  "comment": json.loads(request.payload).get("comment", "")}
        for statement, revoked in verified_approvals(session, request):
            signed.append({"signer": statement.signer, "verdict": statement.action.value,
                           "roles": roles.get(statement.signer, []), "signed_at": statement.payload["signed_at"],
                           "justification": statement.payload.get("comment", ""), "key_revoked": revoked})
        last = session.exec(select(Decision).where(Decision.request_id == request.id,
                                                   Decision.result != DecisionResult.DENY)
                            .order_by(Decision.decided_at.desc())).first()  # type: ignore[attr-defined]
        if last is not None:
            # As the log committed to it: a Decision row edited to say nothing is missing is caught here.
            committed = committed_payload(session, what=f"decision {last.id} on {label(asset)}",
                                          action=AuditAction.of_gate(last.gate, last.action), decision_id=last.id,
                                          subject_digest=asset.digest, fields={"missing": json.loads(last.missing),
                                                                               "request_id": request.id})
            still_required, as_of = list(committed["missing"]), last.id
        digest = evidence_digest_for(gate, asset, request, evidence)
    return Review(
        version=REVIEW_VERSION, subject=label(asset), subject_digest=asset.digest, gate=gate,
        state=asset.state.value, release=asset.release, request=opened, signed=signed,
        still_required=still_required, as_of_decision=as_of, evidence=evidence, settings=settings,
        holders=_holders(roles, settings),
        policy={"revision": in_force.revision, "digest": in_force.digest}, context=_context(session, gate, evidence),
        digest=digest,
    )


def _context(session: Session, gate: Gate, evidence: dict[str, Any]) -> dict[str, Any]:
    """What an approver of a run also wants to see: each source's newest data-quality check (counts, rates and
    locations, never values), from the dataset gate's own evidence provider."""
    if gate is not Gate.RUN:
        return {}
    checks = {}
    for source in (evidence.get("run") or {}).get("sources") or []:
        if source.get("found"):
            dataset = recorded_asset(session, AssetKind.DATASET, source["digest"], "the run's evidence")
            newest = checks_evidence(session, dataset)
            checks[source["label"]] = newest[0] if newest else None
    return {"source_checks": checks}


def gate_holders(session: Session, gate: Gate) -> dict[str, list[str]]:
    """Who holds each role the gate's settings name, under the policy in force: the people a denial or a missing
    approval sends you to. Read for people, never decided on: the policy itself judges every role."""
    data = data_in_force(session)
    return _holders(_roles(data), _settings(data, gate))


def _settings(data: dict[str, Any], gate: Gate) -> dict[str, Any]:
    gates = data.get("gates") if isinstance(data.get("gates"), dict) else {}
    return {gate.value: gates.get(gate.value, {}), "approvals": data.get("approvals", {}),
            **{section: data.get(section, {}) for section in EXTRA_SETTINGS.get(gate, ())}}


def _roles(data: dict[str, Any]) -> dict[str, list[str]]:
    roles = data.get("roles")
    return roles if isinstance(roles, dict) else {}


def _holders(roles: dict[str, list[str]], settings: Any) -> dict[str, list[str]]:
    return {role: sorted(name for name, held in roles.items() if isinstance(held, list) and role in held)
            for role in sorted(_roles_named(settings))}


def _roles_named(settings: Any) -> set[str]:
    """Every role a gate's settings name (requesters, quorum, rejecters, withdrawers, per-target quorums)."""
    found: set[str] = set()
    if isinstance(settings, dict):
        for key, value in settings.items():
            if key in ("requesters", "rejecters", "withdrawers", "checkers") and isinstance(value, list):
                found |= {str(role) for role in value}
            elif key == "quorum" and isinstance(value, dict):
                found |= {str(role) for role in value}
            else:
                found |= _roles_named(value)
    return found
