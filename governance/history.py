"""What `forgegov show` reports for one subject: its record, requests, approvals, decisions and training run."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import SignatureInvalid, StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Approval, Asset, Decision, GateRequest, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, AuditAction
from forgegov.governance.policy import roles_under
from forgegov.governance.registry import label, recorded_asset, resolve
from forgegov.governance.statements import SignedStatement, check_admitted, verify_stored


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

        def signed(payload: str, signature: str, request_id: str, who: str) -> tuple[dict[str, Any], list[str]]:
            """The statement as its signer signed it and a gate decision admitted it, and the signer's roles under
            the policy of that decision; a row edited in the store (a justification rewritten, say) is refused."""
            statement = SignedStatement(json.loads(payload), signature)
            try:
                verify_stored(session, statement)
            except SignatureInvalid as exc:
                raise StoreTampered(f"the statement by {who} on request {request_id} does not verify: the store was "
                                    f"altered ({exc.message})", hint="run `forgegov audit verify`") from exc
            if statement.signer != who:
                raise StoreTampered(f"request {request_id}: the row names {who}, the signed statement "
                                    f"{statement.signer}", hint="run `forgegov audit verify`")
            check_admitted(session, statement, request_id)
            decision = session.exec(select(Decision).where(Decision.nonce == statement.payload["nonce"])).one()
            committed_payload(session, what=f"decision {decision.id}", decision_id=decision.id,
                              action=AuditAction.of_gate(decision.gate, decision.action),
                              subject_digest=decision.subject_digest, fields={"policy_digest": decision.policy_digest})
            if decision.policy_digest not in roles_by_policy:
                roles_by_policy[decision.policy_digest] = roles_under(session, decision.policy_digest)
            return statement.payload, list(roles_by_policy[decision.policy_digest].get(statement.signer, []))

        parent = None
        if asset.parent_digest is not None:
            parent = label(recorded_asset(session, AssetKind.CHECKPOINT, asset.parent_digest,
                                          f"the registration of {label(asset)}"))
        requests = []
        for request in session.exec(select(GateRequest).where(GateRequest.asset_id == asset.id)
                                    .order_by(GateRequest.requested_at)):
            opened, requester_roles = signed(request.payload, request.signature, request.id, request.requested_by)
            answers = []
            for a in session.exec(select(Approval).where(Approval.request_id == request.id).order_by(Approval.id)):
                answer, roles = signed(a.payload, a.signature, request.id, a.approver)
                answers.append({"approver": a.approver, "verdict": answer["action"], "signed_at": answer["signed_at"],
                                "key_id": answer["key_id"], "comment": answer.get("comment", ""), "roles": roles,
                                "evidence_digest": answer.get("evidence_digest")})
            requests.append({
                "id": request.id, "gate": request.gate.value, "target": request.target,
                "requested_by": request.requested_by, "requested_at": opened["signed_at"],
                "requester_roles": requester_roles, "comment": opened.get("comment", ""),
                "status": request.status.value, "closed_at": request.closed_at, "approvals": answers,
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
