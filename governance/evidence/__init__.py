"""The evidence a gate decides on besides signatures, gathered by forgegov inside the gate transaction.

Callers cannot hand evidence in: what OPA reads about an asset comes from records the audit log has committed to,
re-verified here, so a caller that skips a check or edits its result gets a denial rather than a pass.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import Gate
from forgegov.governance.evidence.data_quality import newest_check_evidence
from forgegov.governance.evidence.run import run_evidence


def gather(session: Session, gate: Gate, asset: Asset) -> dict[str, Any]:
    if gate is Gate.DATASET:
        data_quality = newest_check_evidence(session, asset)
        return {} if data_quality is None else {"data_quality": data_quality}
    if gate is Gate.RUN:
        return {"run": run_evidence(session, asset)}
    return {}
