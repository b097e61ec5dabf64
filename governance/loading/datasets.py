"""The one door through which training and evaluation code gets a dataset.

An approval is worth only as much as the guarantee that the approved bytes are the bytes used, so data is never
opened by path: it is resolved in the registry, must be approved, and is read by `read_verified`, which hands out
nothing unless every byte still matches the approved manifest. Both outcomes go into the audit log, so who used
which data for what, and every attempt to use data that had changed, can be shown afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from forgegov.audit.log import EntryDraft
from forgegov.audit.tree_heads import record
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import DigestMismatch, StateConflict
from forgegov.foundation.vocabulary import AssetKind, AssetState
from forgegov.governance.datasets.reader import DataChanged, read_verified
from forgegov.governance.registry import find_for_use, label

if TYPE_CHECKING:
    import datasets


def load_dataset(workspace: Workspace, ref: str, *, actor: str, purpose: str) -> datasets.Dataset:
    """The approved dataset `ref` (`dataset/NAME@VERSION` or `sha256:<prefix>`), verified byte for byte."""
    asset = find_for_use(workspace, ref, AssetKind.DATASET, actor=actor, purpose=purpose)
    name = label(asset)
    if asset.state is not AssetState.APPROVED:
        raise StateConflict(f"{name} is {asset.state.value}, not approved: only approved data can be loaded",
                            hint=f"forgegov request {name} --gate dataset")
    try:
        verified = read_verified(Path(asset.source_path), json.loads(asset.manifest), digest=asset.digest)
    except DigestMismatch as exc:
        changed = exc if isinstance(exc, DataChanged) else None
        record(workspace, EntryDraft(
            actor=actor, action="dataset.load.refused", subject_digest=asset.digest,
            payload={"actor": actor, "label": name, "purpose": purpose, "reason": exc.message,
                     "file": changed.file if changed else None,
                     "expected": changed.expected if changed else None,
                     "actual": changed.actual if changed else None},
        ))
        raise
    dataset = verified.to_dataset()
    record(workspace, EntryDraft(
        actor=actor, action="dataset.load", subject_digest=asset.digest,
        payload={"actor": actor, "label": name, "purpose": purpose, "records": len(verified.records)},
    ))
    return dataset

