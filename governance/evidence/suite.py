"""What the suite gate reads about a suite: per task its metric, task kind and dataset, from the suite's registered
document (re-hashed against its digest), with each dataset's state now, and the state of the classifier that judges
a task's replies when one does, held against the log. Whether the data and judges are approved and each metric
measured the way policy says is the policy's to decide.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.registry import label, recorded_asset
from forgegov.governance.suites import registered_suite


def dataset_facts(session: Session, digest: str) -> dict[str, Any]:
    found = recorded_asset(session, AssetKind.DATASET, digest, "a suite or an evaluation")
    return {"label": label(found), "digest": digest, "state": found.state.value, "dataset_kind": found.dataset_kind}


def judge_facts(session: Session, digest: str | None) -> dict[str, Any] | None:
    if digest is None:
        return None
    found = recorded_asset(session, AssetKind.CHECKPOINT, digest, "a suite")
    return {"label": label(found), "digest": digest, "state": found.state.value, "stage": found.stage}


def suite_evidence(session: Session, asset: Asset) -> dict[str, Any]:
    suite = registered_suite(asset.manifest, asset.digest, label(asset))
    # Everything that decides which items count and how, so that the approver sees what they sign off.
    return {"tasks": [{"metric": t.metric, "task": t.task.value, "scorer": t.scorer, "options": t.options,
                       "input": t.input, "target": t.target, "where": t.where, "cluster": t.cluster,
                       "dataset": dataset_facts(session, t.dataset), "judge": judge_facts(session, t.judge)}
                      for t in suite.tasks]}
