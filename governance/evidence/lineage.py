"""What the promotion gate reads about a checkpoint: the training run whose candidate it is, as the log recorded it.

Facts only; the policy judges. A run is reported with its status, whether the run gate allowed it (the decision its
plan names, re-proved from that decision's audit entry) and whether its signed provenance verifies against the
platform key and the candidate's bytes now. A checkpoint no run produced (a hand-registered "candidate" with a
made-up parent) has `run: null`.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, StoreTampered, Tampered
from forgegov.foundation.store.models import Asset, AuditEntry, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, AssetState, AuditAction, Gate, GateAction, RunStatus
from forgegov.governance.registry import check_recorded, label
from forgegov.governance.runs.records import verify_run
from forgegov.governance.runs.spec import registered_recipe


def lineage_evidence(workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    row = session.exec(select(TrainingRun).where(TrainingRun.candidate_digest == asset.digest)).first()
    if row is None:
        return {"run": None}
    run = session.get(Asset, row.run_asset_id)
    if run is None:
        raise StoreTampered(f"training run {row.id} names run asset {row.run_asset_id}, which is not in the store",
                            hint="run `forgegov audit verify`")
    check_recorded(session, run)
    withdrawn: list[str] = []
    mixture: dict[str, Any] | None = None
    base_digest: str | None = None
    rewards: list[str] = []
    environment: str | None = None
    if row.status is RunStatus.COMPLETED:
        # The completion as the log recorded it: this candidate, this provenance, these inputs.
        completed = committed_payload(session, what=f"the completion of run {row.id}",
                                      action=AuditAction.RUN_COMPLETE, decision_id=row.decision_id,
                                      subject_digest=run.digest,
                                      fields={"run_id": row.id, "candidate_digest": asset.digest,
                                              "provenance_digest": row.provenance_digest})
        withdrawn = _withdrawn_inputs(session, completed)
        mixture = _mixture_by_role(completed)
        base_digest = completed.get("base")
        rewards = [str(digest) for digest in completed.get("rewards") or []]
        environment = completed.get("environment")
    return {"run": {"id": row.id, "run": label(run), "status": row.status.value,
                    "approved": _run_gate_allowed(session, row, run), "provenance": _provenance(workspace, row),
                    "withdrawn_inputs": withdrawn, "mixture": mixture, "base_digest": base_digest,
                    "method": _method(run), "rewards": rewards, "environment": environment}}


def _method(run: Asset) -> str | None:
    """The method of the run's registered recipe, its bytes re-hashed; None (a fact for the policy) when they no
    longer verify."""
    try:
        return registered_recipe(run).method.value
    except (BadInput, Tampered):
        return None


def _mixture_by_role(completed: dict[str, Any]) -> dict[str, Any]:
    """Planned and realised token shares per role, as the run's completion entry committed to them."""
    roles = (completed.get("mixture") or {}).get("roles")
    if not isinstance(roles, dict) or not all(
            isinstance(v, dict) and set(v) == {"planned_share", "realised_share"}
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
            for v in roles.values()):
        raise StoreTampered("the completion entry of the run records no mixture by role",
                            hint="a run completed before realised shares were recorded by role: train it again")
    return roles


def _withdrawn_inputs(session: Session, completed: dict[str, Any]) -> list[str]:
    """The run's base, datasets, reward functions and environment whose approval was withdrawn since, each row held
    against the log."""
    inputs = [(AssetKind.CHECKPOINT, completed.get("base")),
              *((AssetKind.DATASET, digest) for digest in completed.get("datasets") or []),
              *((AssetKind.REWARD, digest) for digest in completed.get("rewards") or []),
              *([(AssetKind.ENVIRONMENT, completed["environment"])] if completed.get("environment") else [])]
    withdrawn = []
    for kind, digest in inputs:
        found = session.exec(select(Asset).where(Asset.kind == kind, Asset.digest == digest)).first()
        if found is None:
            raise StoreTampered(f"run input {digest} is not a registered {kind.value}", hint="run `forgegov audit verify`")
        check_recorded(session, found)
        if found.state is AssetState.WITHDRAWN:
            withdrawn.append(label(found))
    return withdrawn


def _run_gate_allowed(session: Session, row: TrainingRun, run: Asset) -> bool:
    actions = [AuditAction.of_gate(Gate.RUN, action) for action in (GateAction.APPROVE, GateAction.REQUEST)]
    action = session.exec(select(AuditEntry.action).where(AuditEntry.decision_id == row.decision_id,
                                                          AuditEntry.action.in_(actions))).first()  # type: ignore[attr-defined]
    if action is None:
        return False
    payload = committed_payload(session, what=f"the run-gate decision of run {row.id}", action=AuditAction(action),
                                decision_id=row.decision_id, subject_digest=run.digest, fields={})
    return payload.get("result") == "allow"


def _provenance(workspace: Workspace, row: TrainingRun) -> dict[str, Any]:
    if row.status is not RunStatus.COMPLETED:
        return {"verified": False, "problem": f"the run is {row.status.value}: only a completed run has provenance"}
    try:
        verify_run(workspace, row.id)
    except (Tampered, BadInput) as exc:
        return {"verified": False, "problem": exc.message}
    return {"verified": True, "problem": None}
