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

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import StateConflict
from forgegov.foundation.vocabulary import AssetKind, AssetState
from forgegov.governance.datasets.reader import read_verified
from forgegov.governance.loading.use import open_for_use

if TYPE_CHECKING:
    import datasets


def load_dataset(workspace: Workspace, ref: str, *, actor: str, purpose: str) -> datasets.Dataset:
    """The approved dataset `ref` (`dataset/NAME@VERSION` or `sha256:<prefix>`), verified byte for byte."""
    use = open_for_use(workspace, ref, AssetKind.DATASET, actor=actor, purpose=purpose)
    asset = use.asset
    if asset.state is not AssetState.APPROVED:
        raise StateConflict(f"{use.label} is {asset.state.value}, not approved: only approved data can be loaded",
                            hint=f"forgegov request {use.label} --gate dataset")
    verified = use.verify(lambda: read_verified(Path(asset.source_path), json.loads(asset.manifest),
                                                digest=asset.digest))
    dataset = verified.to_dataset()
    use.loaded(records=len(verified.records))
    return dataset

