"""What every verified-loading door shares: who loads what for which purpose, the re-hash that must pass before any
byte is handed out, and the audit entry for the load or for the refusal. A door (datasets, checkpoints, reward code,
environments)
adds only how its kind is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from forgegov.audit.recorder import EntryDraft, record
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, DigestMismatch, Tampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind, AuditAction
from forgegov.governance.asset_kinds import KINDS
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.registry import label, resolve

T = TypeVar("T")

# (loaded, refused) for each kind that has a door.
LOAD_ACTIONS: dict[AssetKind, tuple[AuditAction, AuditAction]] = {
    AssetKind.DATASET: (AuditAction.DATASET_LOAD, AuditAction.DATASET_LOAD_REFUSED),
    AssetKind.CHECKPOINT: (AuditAction.CHECKPOINT_LOAD, AuditAction.CHECKPOINT_LOAD_REFUSED),
    AssetKind.REWARD: (AuditAction.REWARD_LOAD, AuditAction.REWARD_LOAD_REFUSED),
    AssetKind.ENVIRONMENT: (AuditAction.ENVIRONMENT_LOAD, AuditAction.ENVIRONMENT_LOAD_REFUSED),
}


@dataclass(frozen=True)
class Use:
    workspace: Workspace
    asset: Asset
    facts: dict[str, Any]  # recorded with the load or the refusal

    @property
    def label(self) -> str:
        return label(self.asset)

    def verify(self, read: Callable[[], T]) -> T:
        """The result of `read`, the door's byte-for-byte check against the registered digest. A refusal (changed
        bytes, or files its kind may not hold) is recorded, naming the file where one is to blame, and raised."""
        try:
            return read()
        except (BadInput, Tampered) as refusal:
            changed = refusal if isinstance(refusal, DigestMismatch) else None
            record(self.workspace, EntryDraft(
                actor=self.facts["actor"], action=LOAD_ACTIONS[self.asset.kind][1], subject_digest=self.asset.digest,
                payload={**self.facts, "reason": refusal.message, "file": changed.file if changed else None,
                         "expected": changed.expected if changed else None,
                         "actual": changed.actual if changed else None},
            ))
            raise

    def loaded(self, **facts: Any) -> None:
        record(self.workspace, EntryDraft(actor=self.facts["actor"], action=LOAD_ACTIONS[self.asset.kind][0],
                                          subject_digest=self.asset.digest, payload={**self.facts, **facts}))


def open_for_use(workspace: Workspace, ref: str, kind: AssetKind, *, actor: str, purpose: str) -> Use:
    """The asset about to be loaded: the user must be active and say what for (both go into the log)."""
    if not purpose.strip():
        raise BadInput(f"say what the {kind.value} is loaded for (purpose): it is recorded with the load")
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, actor))
        asset = resolve(session, ref, kind)
        session.expunge(asset)
    facts = {"actor": actor, "label": label(asset), "purpose": purpose, "state": asset.state.value}
    if KINDS[kind].has_stage:
        facts["stage"] = asset.stage
    return Use(workspace, asset, facts)
