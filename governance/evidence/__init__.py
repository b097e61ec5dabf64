"""The evidence a gate decides on besides signatures, gathered by forgegov inside the gate transaction.

Callers cannot hand evidence in: what OPA reads about an asset comes from records the audit log has committed to,
re-verified by the provider (see `audit/commitments.py`), so a caller that skips a check or edits its result gets a
denial or a refusal rather than a pass. One provider per gate, in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import Gate
from forgegov.governance.environments import golden_evidence as environment_golden
from forgegov.governance.evidence.data_quality import checks_evidence
from forgegov.governance.evidence.evaluation import evaluation_evidence
from forgegov.governance.evidence.golden import golden_evidence_of
from forgegov.governance.evidence.lineage import lineage_evidence
from forgegov.governance.evidence.policy_change import policy_change_evidence
from forgegov.governance.evidence.run import run_evidence
from forgegov.governance.evidence.suite import suite_evidence
from forgegov.governance.rewards import golden_evidence as reward_golden

Provider = Callable[[Workspace, Session, Asset], dict[str, Any]]


def _data_quality(_workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    # No check yet is a fact for the policy (it denies), not an error here.
    return {"data_quality": checks_evidence(session, asset)}


def _run(_workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    return {"run": run_evidence(session, asset)}


def _promotion(workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    return {"lineage": lineage_evidence(workspace, session, asset),
            "evaluation": evaluation_evidence(workspace, session, asset)}


def _reward(workspace: Workspace, _session: Session, asset: Asset) -> dict[str, Any]:
    return {"reward": golden_evidence_of(workspace, asset, reward_golden)}


def _environment(workspace: Workspace, _session: Session, asset: Asset) -> dict[str, Any]:
    return {"environment": golden_evidence_of(workspace, asset, environment_golden)}


def _suite(_workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    return {"suite": suite_evidence(session, asset)}


def _policy(_workspace: Workspace, session: Session, asset: Asset) -> dict[str, Any]:
    return {"policy_change": policy_change_evidence(session, asset)}


def _none(_workspace: Workspace, _session: Session, _asset: Asset) -> dict[str, Any]:
    return {}


# Every gate has a row, so that a new gate is a decision about its evidence rather than a silent empty one.
PROVIDERS: dict[Gate, Provider] = {
    Gate.DATASET: _data_quality,
    Gate.RUN: _run,
    Gate.REWARD: _reward,
    Gate.ENVIRONMENT: _environment,
    Gate.BASE: _none,
    Gate.PROMOTION: _promotion,
    Gate.POLICY: _policy,
    Gate.SUITE: _suite,
}


def gather(workspace: Workspace, session: Session, gate: Gate, asset: Asset) -> dict[str, Any]:
    return PROVIDERS[gate](workspace, session, asset)
