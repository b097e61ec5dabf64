"""What `forgegov show` reports for one subject: its record, requests, approvals, decisions and training run."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Approval, Asset, Decision, GateRequest, TrainingRun
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.policy import roles_under
from forgegov.governance.registry import label, recorded_asset, resolve


def asset_record(asset: Asset) -> dict[str, Any]:
    return {
        "kind": asset.kind.value, "name": asset.name, "version": asset.version, "digest": asset.digest,
        "owner": asset.owner, "state": asset.state.value, "stage": asset.stage, "release": asset.release,
        "parent_digest": asset.parent_digest, "dataset_kind": asset.dataset_kind, "classification": asset.classification, "records": asset.records,
        "registered_by": asset.registered_by, "registered_at": asset.registered_at, "source_path": asset.source_path,
    }


def subject_history(workspace: Workspace, ref: str) -> dict[str, Any]:
    with read_session(workspace.database_url) as session:
        asset = resolve(session, ref)
        roles_by_policy: dict[str, dict[str, list[str]]] = {}

        def roles_when(payload: str) -> list[str]:
            """The signer's roles under the policy of the decision that admitted their statement."""
            statement = json.loads(payload)
            decision = session.exec(select(Decision).where(Decision.nonce == statement.get("nonce"))).first()
            if decision is None:
                return []
            if decision.policy_digest not in roles_by_policy:
                roles_by_policy[decision.policy_digest] = roles_under(session, decision.policy_digest)
            return list(roles_by_policy[decision.policy_digest].get(str(statement.get("signer")), []))

        parent = None
        if asset.parent_digest is not None:
            parent = label(recorded_asset(session, AssetKind.CHECKPOINT, asset.parent_digest,
                                          f"the registration of {label(asset)}"))
        requests = []
        for request in session.exec(select(GateRequest).where(GateRequest.asset_id == asset.id)
                                    .order_by(GateRequest.requested_at)):
            approvals = session.exec(select(Approval).where(Approval.request_id == request.id).order_by(Approval.id))
            requests.append({
                "id": request.id, "gate": request.gate.value, "target": request.target,
                "requested_by": request.requested_by, "requested_at": request.requested_at,
                "requester_roles": roles_when(request.payload),
                "comment": json.loads(request.payload).get("comment", ""),
                "status": request.status.value, "closed_at": request.closed_at,
                "approvals": [{"approver": a.approver, "verdict": a.verdict.value, "signed_at": a.signed_at,
                               "key_id": a.key_id, "comment": json.loads(a.payload).get("comment", ""),
                               "roles": roles_when(a.payload)}
                              for a in approvals],
            })
        decisions = [{
            "id": d.id, "opa_decision_id": d.opa_decision_id, "gate": d.gate.value, "action": d.action.value,
            "actor": d.actor, "result": d.result.value, "reasons": json.loads(d.reasons),
            "missing": json.loads(d.missing), "policy_revision": d.policy_revision, "policy_digest": d.policy_digest,
            "input_digest": d.input_digest, "decided_at": d.decided_at,
        } for d in session.exec(select(Decision).where(Decision.subject_digest == asset.digest)
                                .order_by(Decision.decided_at))]
        # The training run behind a candidate checkpoint, or the one a run spec started: the lineage record.
        run = session.exec(select(TrainingRun).where(
            (TrainingRun.candidate_digest == asset.digest) if asset.kind is AssetKind.CHECKPOINT
            else (TrainingRun.run_asset_id == asset.id))).first()
        return {
            "asset": asset_record(asset),
            "parent": parent,
            "manifest": json.loads(asset.manifest),
            "requests": requests,
            "decisions": decisions,
            "training_run": None if run is None else {"run_id": run.id, "status": run.status.value,
                                                      "candidate_digest": run.candidate_digest},
        }
