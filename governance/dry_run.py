"""`run start --dry-run`: what the run gate would say about a recipe, with nothing registered, signed or logged.

A typo in a recipe should cost a preview, not a registered run spec and a denial in the log. The recipe is validated
as `run start` validates it, hashed as it would be registered (a copy named `recipe.toml` in a scratch folder), and
shown to the policy through `gate.preview` as the run gate's request by the actor, with the evidence the run gate
gathers from that copy. A recipe whose bytes are already registered is previewed as that run asset.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, GateRequest
from forgegov.foundation.vocabulary import AssetKind, AssetState, Gate, GateAction
from forgegov.governance.gate import DecisionSource, preview
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.registry import check_recorded, label
from forgegov.governance.runs.recipe import read_recipe
from forgegov.governance.runs.spec import RECIPE_FILE

# What `run start` does with a run spec the run gate has already decided (or is deciding).
_DECIDED = {
    AssetState.PENDING: ("pending", "its request is open; `forgegov show` says what is still required"),
    AssetState.APPROVED: ("allow", "`run start` trains it"),
    AssetState.REJECTED: ("deny", "change the recipe and start it as a new run spec"),
    AssetState.WITHDRAWN: ("deny", "change the recipe and start it as a new run spec"),
}


@dataclass(frozen=True)
class DryRun:
    run: str
    digest: str
    registered: bool
    state: str
    result: str
    reasons: tuple[str, ...]
    missing: tuple[str, ...]
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "digest": self.digest, "registered": self.registered, "state": self.state,
                "result": self.result, "reasons": list(self.reasons), "missing": list(self.missing),
                "evidence": self.evidence, "dry_run": True}


def dry_run(workspace: Workspace, engine: DecisionSource, recipe_path: Path, actor_name: str) -> DryRun:
    data, recipe = read_recipe(recipe_path)
    with tempfile.TemporaryDirectory(prefix="forgegov-dry-run-") as scratch:
        copy = Path(scratch) / RECIPE_FILE
        copy.write_bytes(data)
        manifest = build_manifest(copy)
        with read_session(workspace.database_url) as session:
            actor = get_identity(session, actor_name)
            require_active(actor)
            asset = session.exec(select(Asset).where(Asset.kind == AssetKind.RUN,
                                                     Asset.digest == manifest.digest)).first()
            registered = asset is not None
            if asset is not None:
                check_recorded(session, asset)
                if asset.state is not AssetState.REGISTERED:
                    # Decided already: `run start` would not ask again, so neither does a dry run.
                    result, says = _DECIDED[asset.state]
                    return DryRun(run=label(asset), digest=asset.digest, registered=True, state=asset.state.value,
                                  result=result, reasons=(f"{label(asset)} is already {asset.state.value}: {says}",)
                                  if result == "deny" else (), missing=(), evidence={})
            else:
                last = session.exec(select(func.max(Asset.version)).where(Asset.kind == AssetKind.RUN,
                                                                          Asset.name == recipe.name)).one()
                # As `run start` would register it; never added to the session, so never written.
                asset = Asset(kind=AssetKind.RUN, name=recipe.name, version=(last or 0) + 1, digest=manifest.digest,
                              owner=actor.name, state=AssetState.REGISTERED,
                              manifest=canonical_bytes(manifest.to_document()).decode(), source_path=str(copy),
                              registered_by=actor.name, registered_at=now_rfc3339())
            request = GateRequest(id=str(uuid.uuid4()), gate=Gate.RUN, asset_id=asset.id or 0, target=None,
                                  requested_by=actor.name, requested_at=now_rfc3339(), payload="", signature="")
            seen = preview(workspace, engine, session, Gate.RUN, GateAction.REQUEST, actor, asset, request,
                           stored=False)
            return DryRun(run=label(asset), digest=asset.digest, registered=registered, state=asset.state.value,
                          result=seen.result.value, reasons=seen.reasons, missing=seen.missing,
                          evidence=seen.document["evidence"])
