"""A recipe becomes a run asset: its bytes are copied into the workspace and registered from there.

The copy is what the gate reads and what the run executes, so editing the file a user passed in afterwards changes
nothing that was approved (it is simply a new recipe, and a new run asset version, next time). The copy lives at
`artifacts/recipes/<sha256 of the bytes>/recipe.toml`, so the same bytes always register under the same digest
whatever the user's file was called.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import AlreadyExists, BadInput, DigestMismatch, UnreadablePath
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.registry import label, register_asset
from forgegov.governance.runs.recipe import Recipe, parse_recipe_bytes, read_recipe

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


def registered_recipe(asset: Asset) -> Recipe:
    """The recipe registered as `asset`, read from its stored copy and refused unless it is byte for byte the one
    registered (BadInput, or DigestMismatch for changed bytes: the caller reports or raises them)."""
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
        raise DigestMismatch(f"the registered recipe of {label(asset)} at {path} is no longer the registered bytes",
                             file=path.name, expected=files[0]["sha256"], hint="restore it, or start the edited "
                             "recipe as a new run spec")
    return parse_recipe_bytes(data, label(asset))
