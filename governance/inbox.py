"""`forgegov inbox`: the open requests one identity may act on, under the policy in force, oldest first.

Whether someone may approve or reject is the policy's to say, so each open request is previewed (`gate.preview`)
with the identity's approval, then its rejection, added as hypothetical new statements; a request is listed when the
policy would admit either. Nothing is signed or recorded. Requests the identity has already answered, for the evidence
as it is now, are left out: that is a fact of the signed statements, not a policy question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, GateRequest
from forgegov.foundation.vocabulary import DecisionResult, GateAction, RequestStatus
from forgegov.governance.gate import (
    DecisionSource,
    preview,
    verified_approvals,
    verify_open_request,
)
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.registry import check_recorded, label
from forgegov.governance.statements import evidence_digest_of

INBOX_VERSION = 1
# Stands for the reason an approver would give; only ever shown to the policy in a preview, never signed or stored.
_PLACEHOLDER = "a justification the approver will write when approving, stated here at the length any policy asks"


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
    justification_needed: bool = False  # an approval counts only with a reason (`--comment`)

    def to_dict(self) -> dict[str, Any]:
        return {"version": INBOX_VERSION, "subject": self.subject, "subject_digest": self.subject_digest,
                "gate": self.gate, "target": self.target, "request_id": self.request_id,
                "requested_by": self.requested_by, "requested_at": self.requested_at, "may": list(self.may),
                "approve_would": self.approve_would, "reasons": list(self.reasons), "missing": list(self.missing),
                "justification_needed": self.justification_needed}


def inbox(workspace: Workspace, engine: DecisionSource, name: str) -> list[InboxItem]:
    items: list[InboxItem] = []
    with read_session(workspace.database_url) as session:
        actor = get_identity(session, name)
        require_active(actor)
        rows = session.exec(select(GateRequest, Asset).join(Asset, GateRequest.asset_id == Asset.id)  # type: ignore[arg-type]
                            .where(GateRequest.status == RequestStatus.OPEN)
                            .order_by(GateRequest.requested_at, GateRequest.id)).all()
        for request, asset in rows:
            check_recorded(session, asset)
            verify_open_request(session, request, asset)
            approving = preview(workspace, engine, session, request.gate, GateAction.APPROVE, actor, asset, request)
            # Answered as the signed statements say, not as a row claims (a forged row must not empty an inbox); an
            # answer given for evidence that has changed since is asked for again, so it stays.
            current = evidence_digest_of(approving.document)
            if any(signed.signer == name and signed.payload.get("evidence_digest") in (None, current)
                   for signed, _revoked in verified_approvals(session, request)):
                continue
            needs_reason = False
            if approving.result is DecisionResult.DENY:
                # Some approvals must say why (a privacy officer's on personal data): ask again as if a reason were
                # given, so the one person who can complete the request is not left out of it.
                reasoned = preview(workspace, engine, session, request.gate, GateAction.APPROVE, actor, asset,
                                   request, justification=_PLACEHOLDER)
                if reasoned.result is not DecisionResult.DENY:
                    approving, needs_reason = reasoned, True
            rejecting = preview(workspace, engine, session, request.gate, GateAction.REJECT, actor, asset, request)
            may = tuple(action for action, seen in (("approve", approving), ("reject", rejecting))
                        if seen.result is not DecisionResult.DENY)
            if not may:
                continue
            items.append(InboxItem(
                subject=label(asset), subject_digest=asset.digest, gate=request.gate.value, target=request.target,
                request_id=request.id, requested_by=request.requested_by, requested_at=request.requested_at, may=may,
                approve_would=approving.result.value, reasons=approving.reasons, missing=approving.missing,
                justification_needed=needs_reason))
    return items
