"""`forgegov lineage`: what went into a checkpoint and who approved it, back to the first base, in one tree.

Each node is an asset held against the log (`check_recorded`). A checkpoint a run produced names that run as its
run's completion entry committed to it: the recipe digest, the realised mixture, the base and the datasets by digest.
Every node carries the decisions that admitted it (allowed at one of its gates, or withdrew it), each tied to its
audit entry and to the exact gate input it was decided on (the entry commits to the input's digest), with the
requester and every signed approval in that input, the role each signer held under the policy that decided (its
stored bundle, by digest), the justification they signed, and the policy revision and digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import sha256_digest
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry, Decision, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, AuditAction, DecisionResult, GateAction, RunStatus
from forgegov.governance.asset_kinds import KINDS
from forgegov.governance.policy import roles_under
from forgegov.governance.registry import check_recorded, label, recorded_asset, resolve

LINEAGE_VERSION = 1
_HINT = "run `forgegov audit verify`"


@dataclass
class _Walk:
    session: Session
    roles_by_policy: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def roles(self, policy_digest: str) -> dict[str, list[str]]:
        if policy_digest not in self.roles_by_policy:
            self.roles_by_policy[policy_digest] = roles_under(self.session, policy_digest)
        return self.roles_by_policy[policy_digest]


def lineage_report(workspace: Workspace, ref: str) -> dict[str, Any]:
    with read_session(workspace.database_url) as session:
        walk = _Walk(session)
        return {"version": LINEAGE_VERSION, "checkpoint": _checkpoint(walk, resolve(session, ref, AssetKind.CHECKPOINT))}


def _checkpoint(walk: _Walk, asset: Asset) -> dict[str, Any]:
    if asset.digest in walk.seen:
        # Registration names only parents that already exist, so a loop means the store was edited.
        raise StoreTampered(f"the lineage of {label(asset)} loops back on itself: the store was altered", hint=_HINT)
    walk.seen.add(asset.digest)
    node = _node(walk, asset)
    node["produced_by"], base_digest = _run(walk, asset)
    if base_digest is None:
        base_digest = asset.parent_digest
    elif base_digest != asset.parent_digest:
        raise StoreTampered(f"{label(asset)} names parent {asset.parent_digest}, but the run that produced it trained "
                            f"on {base_digest}", hint=_HINT)
    node["base"] = (_checkpoint(walk, recorded_asset(walk.session, AssetKind.CHECKPOINT, base_digest,
                                                     f"the lineage of {label(asset)}"))
                    if base_digest is not None else None)
    return node


def _run(walk: _Walk, candidate: Asset) -> tuple[dict[str, Any] | None, str | None]:
    session = walk.session
    row = session.exec(select(TrainingRun).where(TrainingRun.candidate_digest == candidate.digest,
                                                 TrainingRun.status == RunStatus.COMPLETED)).first()
    if row is None:
        # No run row: then no completion entry may name this candidate (a deleted row must not hide the run).
        for payload in session.exec(select(AuditEntry.payload).where(
                AuditEntry.action == AuditAction.RUN_COMPLETE,
                AuditEntry.payload.contains(candidate.digest, autoescape=True))):  # type: ignore[union-attr]
            if json.loads(payload or "{}").get("candidate_digest") == candidate.digest:
                raise StoreTampered(f"the log records the run that produced {label(candidate)}, but the store has "
                                    "no record of it", hint=_HINT)
        return None, None
    run = session.get(Asset, row.run_asset_id)
    if run is None:
        raise StoreTampered(f"training run {row.id} names a run asset that is not in the store", hint=_HINT)
    check_recorded(session, run)
    completed = committed_payload(session, what=f"the completion of run {row.id}", action=AuditAction.RUN_COMPLETE,
                                  decision_id=row.decision_id, subject_digest=run.digest,
                                  fields={"run_id": row.id, "candidate_digest": candidate.digest})
    datasets = completed.get("datasets")
    if not isinstance(datasets, list):
        raise StoreTampered(f"the completion entry of run {row.id} names no datasets", hint=_HINT)
    return {
        **_node(walk, run), "run_id": row.id, "recipe_digest": completed.get("recipe_digest"),
        "steps": completed.get("steps"), "mixture": completed.get("mixture"),
        "datasets": [_node(walk, recorded_asset(session, AssetKind.DATASET, digest, f"run {row.id}"))
                     for digest in datasets],
        "rewards": [_node(walk, recorded_asset(session, AssetKind.REWARD, digest, f"run {row.id}"))
                    for digest in completed.get("rewards") or []],
        "environment": (_node(walk, recorded_asset(session, AssetKind.ENVIRONMENT, completed["environment"],
                                                   f"run {row.id}")) if completed.get("environment") else None),
    }, completed.get("base")


def _node(walk: _Walk, asset: Asset) -> dict[str, Any]:
    return {"label": label(asset), "kind": asset.kind.value, "digest": asset.digest, "owner": asset.owner,
            "state": asset.state.value, "stage": asset.stage, "release": asset.release,
            "dataset_kind": asset.dataset_kind, "classification": asset.classification,
            "registered_by": asset.registered_by, "registered_at": asset.registered_at,
            "decisions": _admitting(walk, asset)}


def _admitting(walk: _Walk, asset: Asset) -> list[dict[str, Any]]:
    """The allowing decisions on `asset` (requests, approvals, withdrawals at any of its kind's gates), oldest first,
    found from the audit log rather than the decision table, so a decision row deleted from the store is missed
    loudly, not silently; each row held to its entry and to the input digest it committed to."""
    session = walk.session
    actions = [AuditAction.of_gate(gate, action) for gate in KINDS[asset.kind].gates
               for action in (GateAction.REQUEST, GateAction.APPROVE, GateAction.WITHDRAW)]
    entries = session.exec(select(AuditEntry.seq, AuditEntry.action, AuditEntry.decision_id).where(
        AuditEntry.subject_digest == asset.digest, AuditEntry.action.in_(actions))  # type: ignore[attr-defined]
        .order_by(AuditEntry.seq)).all()
    found = []
    for seq, action, decision_id in entries:
        what = f"audit entry {seq} on {label(asset)}"
        payload = committed_payload(session, what=what, action=AuditAction(action), seq=seq,
                                    subject_digest=asset.digest, fields={})
        if payload.get("result") != DecisionResult.ALLOW.value:
            continue
        decision = session.get(Decision, decision_id) if decision_id else None
        if decision is None or (decision.input_digest, decision.policy_digest) != (
                payload.get("input_digest"), payload.get("policy_digest")):
            raise StoreTampered(f"the decision of {what} is missing from the store or differs from its entry",
                                hint=_HINT)
        if sha256_digest(decision.input.encode()) != decision.input_digest:
            raise StoreTampered(f"the stored input of decision {decision.id} is not the one {what} committed to",
                                hint=_HINT)
        document = json.loads(decision.input)
        roles = walk.roles(decision.policy_digest)
        request = document.get("request") or {}
        found.append({
            "gate": decision.gate.value, "action": decision.action.value, "decision_id": decision.id,
            "decided_at": decision.decided_at, "audit_seq": seq, "target": request.get("target"),
            "policy": {"revision": decision.policy_revision, "digest": decision.policy_digest},
            "requested_by": request.get("requested_by"),
            "requester_roles": roles.get(str(request.get("requested_by")), []),
            "signatures": [{"signer": a.get("approver"), "verdict": a.get("verdict"),
                            "roles": roles.get(str(a.get("approver")), []), "signed_at": a.get("signed_at"),
                            "justification": a.get("justification", "")}
                           for a in document.get("approvals") or []],
        })
    return found
