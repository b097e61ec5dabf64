"""The plan a run is held to: what the run gate's allowing decision saw, read back from the decision record.

A recipe names datasets and its base by reference (`claims`, `ref-post@1`); between approval and start a new version
could be registered under the same name. The run therefore never resolves references again: it uses the digests in
the input OPA allowed, after proving that record is the one the audit log committed to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.errors import StateConflict, StoreTampered
from forgegov.foundation.store.models import Asset, Decision
from forgegov.foundation.vocabulary import AssetState, AuditAction, DecisionResult, Gate
from forgegov.governance.registry import label

PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedSource:
    label: str
    digest: str
    role: str
    share: float

    def to_document(self) -> dict[str, Any]:
        return {"label": self.label, "digest": self.digest, "role": self.role, "share": self.share}


@dataclass(frozen=True)
class PlannedReward:
    label: str
    digest: str
    weight: float
    endpoint: dict[str, str] | None = None  # an external endpoint: url, identity, version (digest: of those three)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"label": self.label, "digest": self.digest, "weight": self.weight}
        if self.endpoint is not None:
            document["endpoint"] = dict(self.endpoint)
        return document


@dataclass(frozen=True)
class PlannedEnvironment:
    label: str
    digest: str
    weight: float

    def to_document(self) -> dict[str, Any]:
        return {"label": self.label, "digest": self.digest, "weight": self.weight}


@dataclass(frozen=True)
class RunPlan:
    run_label: str
    run_digest: str
    recipe_digest: str
    decision_id: str
    policy_revision: str
    policy_digest: str
    base_label: str
    base_digest: str
    sources: tuple[PlannedSource, ...]
    requested_by: str = ""  # who asked the gate, as the allowing decision's committed input names them
    rewards: tuple[PlannedReward, ...] = ()  # grpo: the reward functions, by the digests the gate saw approved
    environment: PlannedEnvironment | None = None  # grpo: the environment, by the digest the gate saw approved
    version: int = PLAN_VERSION

    def to_document(self) -> dict[str, Any]:
        document = {"version": self.version, "run": self.run_label, "run_digest": self.run_digest,
                    "recipe_digest": self.recipe_digest, "decision_id": self.decision_id,
                    "policy_revision": self.policy_revision, "policy_digest": self.policy_digest,
                    "base": {"label": self.base_label, "digest": self.base_digest},
                    "sources": [s.to_document() for s in self.sources]}
        if self.rewards:
            document["rewards"] = [r.to_document() for r in self.rewards]
        if self.environment is not None:
            document["environment"] = self.environment.to_document()
        return document


def _planned_reward(evidence: dict[str, Any]) -> PlannedReward:
    if "endpoint" in evidence:
        endpoint = {"url": evidence["endpoint"], "identity": evidence["identity"], "version": evidence["version"]}
        return PlannedReward(f"endpoint {evidence['endpoint']}", evidence["digest"], float(evidence["weight"]),
                             endpoint)
    return PlannedReward(evidence["label"], evidence["digest"], float(evidence["weight"]))


def approved_plan(session: Session, run: Asset) -> RunPlan:
    """The plan of the approved run asset `run`; StateConflict if it is not approved, StoreTampered if the
    allowing decision was altered in the store."""
    if run.state is not AssetState.APPROVED:
        raise StateConflict(f"{label(run)} is {run.state.value}: a run starts only once the run gate approved it",
                            hint=f"forgegov request {label(run)} --gate run --as NAME")
    decision = session.exec(
        select(Decision).where(Decision.gate == Gate.RUN, Decision.subject_digest == run.digest,
                               Decision.result == DecisionResult.ALLOW)
        .order_by(Decision.decided_at.desc())  # type: ignore[attr-defined]
    ).first()
    if decision is None:
        raise StoreTampered(f"{label(run)} is approved but no allowing run-gate decision is recorded: the store "
                            "was altered", hint="run `forgegov audit verify`")
    document = json.loads(decision.input)
    if digest_of(document) != decision.input_digest:
        raise StoreTampered(f"decision {decision.id} no longer matches its input digest: the store was altered")
    # The entry the gate appended for this decision (the run's own entries carry the same decision id, with other
    # actions).
    committed_payload(session, what=f"run-gate decision {decision.id} of {label(run)}",
                      action=AuditAction.of_gate(decision.gate, decision.action), decision_id=decision.id,
                      subject_digest=run.digest, fields={"input_digest": decision.input_digest})
    evidence = document.get("evidence", {}).get("run", {})
    recipe, base = evidence.get("recipe", {}), evidence.get("base", {})
    if recipe.get("valid") is not True or base.get("found") is not True:
        # OPA allowed an input without a usable recipe or base: that is a policy defect, and running would be
        # running something nobody approved.
        raise StateConflict(f"decision {decision.id} allowed {label(run)} without a resolved recipe and base; "
                            "refusing to run it", hint="report the policy defect; request the run gate again")
    return RunPlan(
        run_label=label(run), run_digest=run.digest, recipe_digest=recipe["digest"], decision_id=decision.id,
        policy_revision=decision.policy_revision or "", policy_digest=decision.policy_digest or "",
        base_label=base["label"], base_digest=base["digest"],
        sources=tuple(PlannedSource(s["label"], s["digest"], s["role"], float(s["share"]))
                      for s in evidence.get("sources", [])),
        requested_by=str(document.get("request", {}).get("requested_by", "")),
        rewards=tuple(_planned_reward(r) for r in evidence.get("rewards", [])),
        environment=(PlannedEnvironment(evidence["environment"]["label"], evidence["environment"]["digest"],
                                        float(evidence["environment"]["weight"]))
                     if "environment" in evidence else None),
    )
