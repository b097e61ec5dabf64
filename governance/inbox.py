"""`forgegov inbox`: the open requests one identity may act on, under the policy in force, oldest first.

Whether someone may approve or reject is the policy's to say, so each open request is previewed (`gate.preview`)
with the identity's approval, then its rejection, added as hypothetical new statements; a request is listed when the
policy would admit either. Nothing is signed or recorded. Requests the identity has already answered are left out:
that is a fact of the store, not a policy question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Approval, Asset, GateRequest
from forgegov.foundation.vocabulary import DecisionResult, GateAction, RequestStatus
from forgegov.governance.gate import DecisionSource, preview
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.registry import check_recorded, label

INBOX_VERSION = 1


@dataclass(frozen=True)
class InboxItem:
    subject: str
    subject_digest: str
    gate: str
    target: str | None
    request_id: str
    requested_by: str
    requested_at: str
    may: tuple[str, ...]  # "approve" and/or "reject"
    approve_would: str  # allow (your approval completes it), pending (more are needed) or deny
    reasons: tuple[str, ...]  # why an approval would be denied (a failing check, say): what to reject it for
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"version": INBOX_VERSION, "subject": self.subject, "subject_digest": self.subject_digest,
                "gate": self.gate, "target": self.target, "request_id": self.request_id,
                "requested_by": self.requested_by, "requested_at": self.requested_at, "may": list(self.may),
                "approve_would": self.approve_would, "reasons": list(self.reasons), "missing": list(self.missing)}


def inbox(workspace: Workspace, engine: DecisionSource, name: str) -> list[InboxItem]:
    items: list[InboxItem] = []
    with read_session(workspace.database_url) as session:
        actor = get_identity(session, name)
        require_active(actor)
        rows = session.exec(select(GateRequest, Asset).join(Asset, GateRequest.asset_id == Asset.id)  # type: ignore[arg-type]
                            .where(GateRequest.status == RequestStatus.OPEN)
                            .order_by(GateRequest.requested_at, GateRequest.id)).all()
        for request, asset in rows:
            answered = session.exec(select(Approval.id).where(Approval.request_id == request.id,
                                                              Approval.approver == name)).first()
            if answered is not None:
                continue
            check_recorded(session, asset)
            approving = preview(workspace, engine, session, request.gate, GateAction.APPROVE, actor, asset, request)
            rejecting = preview(workspace, engine, session, request.gate, GateAction.REJECT, actor, asset, request)
            may = tuple(action for action, seen in (("approve", approving), ("reject", rejecting))
                        if seen.result is not DecisionResult.DENY)
            if not may:
                continue
            items.append(InboxItem(
                subject=label(asset), subject_digest=asset.digest, gate=request.gate.value, target=request.target,
                request_id=request.id, requested_by=request.requested_by, requested_at=request.requested_at, may=may,
                approve_would=approving.result.value, reasons=approving.reasons, missing=approving.missing))
    return items
