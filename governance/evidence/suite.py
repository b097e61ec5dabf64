"""What the suite gate reads about a suite: per task its metric, task kind and dataset, from the suite's registered
document (re-hashed against its digest), with each dataset's state now, and the state of the classifier that judges
a task's replies when one does, held against the log. Whether the data and judges are approved and each metric
measured the way policy says is the policy's to decide.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from forgegov.foundation.errors import StoreTampered
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.registry import check_recorded, label
from forgegov.governance.suites import registered_suite


def _recorded(session: Session, kind: AssetKind, digest: str) -> Asset:
    found = session.exec(select(Asset).where(Asset.kind == kind, Asset.digest == digest)).first()
    if found is None:
        raise StoreTampered(f"{kind.value} {digest} is named by a suite or an evaluation but is not registered",
                            hint="run `forgegov audit verify`")
    check_recorded(session, found)
    return found


def dataset_facts(session: Session, digest: str) -> dict[str, Any]:
    found = _recorded(session, AssetKind.DATASET, digest)
    return {"label": label(found), "digest": digest, "state": found.state.value, "dataset_kind": found.dataset_kind}


def judge_facts(session: Session, digest: str | None) -> dict[str, Any] | None:
    if digest is None:
        return None
    found = _recorded(session, AssetKind.CHECKPOINT, digest)
    return {"label": label(found), "digest": digest, "state": found.state.value, "stage": found.stage}


def suite_evidence(session: Session, asset: Asset) -> dict[str, Any]:
    suite = registered_suite(asset.manifest, asset.digest, label(asset))
    # Everything that decides which items count and how, so that the approver sees what they sign off.
    return {"tasks": [{"metric": t.metric, "task": t.task.value, "scorer": t.scorer, "options": t.options,
                       "input": t.input, "target": t.target, "where": t.where, "cluster": t.cluster,
                       "dataset": dataset_facts(session, t.dataset), "judge": judge_facts(session, t.judge)}
                      for t in suite.tasks]}
