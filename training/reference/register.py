"""Registering a built reference family in a workspace: its corpora as datasets and its three checkpoints with the
lineage pre-training → mid-training → post-training, so runs can name them as bases and gates can see where they
came from.

The corpora are checked against the sha256 that `reference.json` recorded at build time before anything is
registered: a family whose files changed since the build is refused whole rather than registered in part.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, DigestMismatch
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, Classification, DatasetKind
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.registry import check_asset_name, label, register_asset
from forgegov.training.reference.model import STAGES

# The parts catalogue stands in for an organisation's own data; everything else is general text the project
# gathered or generated.
_PROPRIETARY_PREFIX = "domain-"


@dataclass(frozen=True)
class RegisteredFamily:
    datasets: tuple[str, ...]
    checkpoints: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": list(self.datasets), "checkpoints": list(self.checkpoints)}


def _record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInput(f"{folder} holds no reference.json: is it a `forgegov reference build` output?") from exc
    except ValueError as exc:
        raise BadInput(f"{folder / 'reference.json'} is not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("corpora"), dict) or not record["corpora"]:
        raise BadInput(f"{folder / 'reference.json'} lists no corpora: rebuild the family")
    return record


def _check_corpora(folder: Path, corpora: dict[str, Any]) -> None:
    for name, meta in sorted(corpora.items()):
        path = folder / "corpora" / name
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError as exc:
            raise DigestMismatch(f"{path} is missing; reference.json lists it", file=name,
                                 expected=meta.get("sha256")) from exc
        if actual != meta.get("sha256"):
            raise DigestMismatch(f"{path} changed since the family was built: sha256 {actual}, built as "
                                 f"{meta.get('sha256')}", file=name, expected=meta.get("sha256"), actual=actual,
                                 hint="rebuild the family with `forgegov reference build`")


def register_reference(workspace: Workspace, folder: Path, *, owner: str, prefix: str = "ref") -> RegisteredFamily:
    record = _record(folder)
    check_asset_name(f"{prefix}-post-training")
    _check_corpora(folder, record["corpora"])
    datasets = []
    for name, meta in sorted(record["corpora"].items()):
        classification = (Classification.PROPRIETARY if name.startswith(_PROPRIETARY_PREFIX)
                          else Classification.GENERAL_CURATED)
        spec = DatasetSpec(DatasetKind(meta["kind"]), classification)
        asset = register_asset(workspace, AssetKind.DATASET, folder / "corpora" / name,
                               f"{prefix}-{Path(name).stem}", owner, dataset=spec)
        datasets.append(label(asset))
    checkpoints: list[str] = []
    for stage in STAGES:
        asset = register_asset(workspace, AssetKind.CHECKPOINT, folder / stage, f"{prefix}-{stage}", owner,
                               stage=CheckpointStage(stage), parent=checkpoints[-1] if checkpoints else None)
        checkpoints.append(label(asset))
    return RegisteredFamily(tuple(datasets), tuple(checkpoints))
