"""What the promotion gate reads about a checkpoint's drift evaluations: every result the log holds for these bytes,
each re-verified (governance/evaluations.py), summarised to the facts the policy judges. Which results count (made
against the checkpoint's parent, under the design and margins in force, on data still approved) and whether they
pass is the policy's to decide, not this module's. A judge that classified replies is listed with its state, as data.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.evaluations import EvalRecord, job_of, verified_results
from forgegov.governance.registry import recorded_asset

_METRIC_FACTS = ("verdict", "kind", "margin", "planning_spread", "cluster_spread", "difference", "interval", "n",
                 "clusters", "power", "required", "adjusted_p", "base_mean", "candidate_mean", "task", "suite",
                 "suite_digest", "noise_floor")


def evaluation_evidence(workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    counted: set[int] = set()  # jobs whose result is already listed: a job counts once, for its first result
    records = sorted(verified_results(workspace, session, asset.digest), key=lambda record: record.seq)
    return {"parent_digest": asset.parent_digest, "results": [_summary(session, record, counted) for record in records]}


def _state_of(session: Session, kind: AssetKind, digest: str) -> str:
    return recorded_asset(session, kind, digest, "an evaluation").state.value


def _summary(session: Session, record: EvalRecord, counted: set[int]) -> dict[str, Any]:
    predicate = record.predicate
    datasets = {m["dataset"]["digest"]: m["dataset"]["label"] for m in predicate["metrics"]}
    judges = {j["digest"]: j["label"] for m in predicate["metrics"] if (j := (m.get("scorer") or {}).get("judge"))}
    return {
        "id": record.id, "seq": record.seq, "time": record.time, "actor": record.actor,
        "job": job_of(session, record, counted),
        "base_digest": predicate["base"]["digest"], "policy_digest": predicate["policy"]["digest"],
        "design": predicate["design"],
        "datasets": [{"label": name, "digest": digest, "state": _state_of(session, AssetKind.DATASET, digest)}
                     for digest, name in sorted(datasets.items())],
        "judges": [{"label": name, "digest": digest, "state": _state_of(session, AssetKind.CHECKPOINT, digest)}
                   for digest, name in sorted(judges.items())],
        # A result made before suites had a gate names none: its suite state is null, which policy reads as stale.
        "metrics": {m["metric"]: {**{k: m.get(k) for k in _METRIC_FACTS},
                                  "suite_state": _state_of(session, AssetKind.SUITE, m["suite_digest"])
                                  if m.get("suite_digest") else None}
                    for m in predicate["metrics"]},
    }
