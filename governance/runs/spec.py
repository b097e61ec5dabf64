"""A recipe becomes a run asset: its bytes are copied into the workspace and registered from there.

The copy is what the gate reads and what the run executes, so editing the file a user passed in afterwards changes
nothing that was approved (it is simply a new recipe, and a new run asset version, next time). The copy lives at
`artifacts/recipes/<sha256 of the bytes>/recipe.toml`, so the same bytes always register under the same digest
whatever the user's file was called.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sqlmodel import select

from forgegov.governance.config import Workspace
from forgegov.governance.errors import AlreadyExists
from forgegov.governance.manifest import build_manifest
from forgegov.governance.registry import register_asset
from forgegov.governance.states import AssetKind
from forgegov.governance.store.db import read_session
from forgegov.governance.store.models import Asset
from forgegov.training.recipe import Recipe, read_recipe

RECIPE_FILE = "recipe.toml"


def register_recipe(workspace: Workspace, path: Path, actor: str) -> tuple[Asset, Recipe, bool]:
    """The run asset for the recipe at `path` (registered now when its bytes are new), the recipe, and whether it
    was registered by this call. The recipe is validated before anything is written."""
    data, recipe = read_recipe(path)
    stored = _store_copy(workspace, data)
    digest = build_manifest(stored).digest
    with read_session(workspace.database_url) as session:
        existing = session.exec(select(Asset).where(Asset.kind == AssetKind.RUN, Asset.digest == digest)).first()
        if existing is not None:
            session.expunge(existing)
            return existing, recipe, False
    try:
        return register_asset(workspace, AssetKind.RUN, stored, recipe.name, actor), recipe, True
    except AlreadyExists:
        # Registered by someone else between our look and our insert: the same bytes, so the same run.
        with read_session(workspace.database_url) as session:
            existing = session.exec(select(Asset).where(Asset.kind == AssetKind.RUN,
                                                        Asset.digest == digest)).one()
            session.expunge(existing)
            return existing, recipe, False


def _store_copy(workspace: Workspace, data: bytes) -> Path:
    folder = workspace.artifacts_dir / "recipes" / hashlib.sha256(data).hexdigest()
    target = folder / RECIPE_FILE
    if target.exists() and target.read_bytes() == data:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed, so a crash never leaves a half-written recipe under the final name.
    partial = folder / f".{RECIPE_FILE}.{os.getpid()}"
    partial.write_bytes(data)
    partial.chmod(0o444)
    os.replace(partial, target)
    return target
