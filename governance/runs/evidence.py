"""What the run gate reads about a run asset: the registered recipe, and what each of its references resolves to now.

Nothing is judged here: a reference that does not resolve, a recipe whose bytes changed or do not parse, an
unapproved dataset or base are all reported as facts, and the policy turns them into denials. The digests reported
are the ones the run will be held to (see `plan.py`), so what the approvers saw is what gets trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlmodel import Session

from forgegov.governance.errors import BadInput, UnreadablePath
from forgegov.governance.registry import label, resolve
from forgegov.governance.states import AssetKind
from forgegov.governance.store.models import Asset
from forgegov.training.recipe import Recipe, parse_recipe_bytes, recipe_digest


def run_evidence(session: Session, asset: Asset) -> dict[str, Any]:
    try:
        recipe = registered_recipe(asset)
    except BadInput as exc:
        return {"recipe": {"valid": False, "problem": exc.message}}
    return {
        "recipe": {"valid": True, "digest": recipe_digest(recipe), "name": recipe.name, "method": recipe.method.value,
                   "seed": recipe.seed, "stopping": recipe.mixture.stopping.value,
                   "train": recipe.train.to_document(), "devices": recipe.devices.to_document()},
        "base": _base(session, recipe.base.checkpoint),
        "sources": [_source(session, s.dataset, s.role.value, s.share) for s in recipe.mixture.sources],
    }


def registered_recipe(asset: Asset) -> Recipe:
    """The recipe registered as `asset`, read from its stored copy and refused unless it is byte for byte the one
    registered (BadInput subclasses: the caller reports or raises them)."""
    files = json.loads(asset.manifest)["files"]
    if len(files) != 1 or not files[0]["path"].endswith(".toml"):
        raise BadInput(f"{label(asset)} is not a recipe: a run spec is one TOML recipe file",
                       hint="start runs with `forgegov run start RECIPE.toml --as NAME`")
    source = Path(asset.source_path)
    path = source if source.is_file() else source / files[0]["path"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadablePath(f"the registered recipe of {label(asset)} cannot be read at {path}: "
                             f"{exc.strerror or exc}") from exc
    if len(data) != files[0]["size"] or hashlib.sha256(data).hexdigest() != files[0]["sha256"]:
        raise BadInput(f"the registered recipe of {label(asset)} at {path} is no longer the registered bytes",
                       hint="restore it, or start the edited recipe as a new run spec")
    return parse_recipe_bytes(data, label(asset))


def _resolved(session: Session, ref: str, kind: AssetKind) -> tuple[Asset | None, str | None]:
    try:
        return resolve(session, ref, kind), None
    except BadInput as exc:
        return None, exc.message


def _base(session: Session, ref: str) -> dict[str, Any]:
    found, problem = _resolved(session, ref, AssetKind.CHECKPOINT)
    if found is None:
        return {"ref": ref, "found": False, "problem": problem}
    return {"ref": ref, "found": True, "label": label(found), "digest": found.digest, "state": found.state.value,
            "stage": found.stage, "release": found.release, "owner": found.owner}


def _source(session: Session, ref: str, role: str, share: float) -> dict[str, Any]:
    found, problem = _resolved(session, ref, AssetKind.DATASET)
    if found is None:
        return {"ref": ref, "role": role, "share": share, "found": False, "problem": problem}
    return {"ref": ref, "role": role, "share": share, "found": True, "label": label(found), "digest": found.digest,
            "state": found.state.value, "dataset_kind": found.dataset_kind, "classification": found.classification,
            "owner": found.owner}
