"""What the run gate reads about a run asset: the registered recipe, and what each of its references resolves to now.

Nothing is judged here: a reference that does not resolve, a recipe whose bytes changed or do not parse, an
unapproved dataset or base are all reported as facts, and the policy turns them into denials. The digests reported
are the ones the run will be held to (see `plan.py`), so what the approvers saw is what gets trained on.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from forgegov.foundation.errors import BadInput, Tampered
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.registry import label, resolve
from forgegov.governance.reward_endpoints import EndpointSpec
from forgegov.governance.runs.recipe import RewardRef, recipe_digest
from forgegov.governance.runs.spec import registered_recipe


def run_evidence(session: Session, asset: Asset) -> dict[str, Any]:
    try:
        recipe = registered_recipe(asset)
    except (BadInput, Tampered) as exc:
        return {"recipe": {"valid": False, "problem": exc.message}}
    evidence = {
        "recipe": {"valid": True, "digest": recipe_digest(recipe), "name": recipe.name, "method": recipe.method.value,
                   "seed": recipe.seed, "stopping": recipe.mixture.stopping.value,
                   "train": recipe.train.to_document(), "devices": recipe.devices.to_document()},
        "base": _base(session, recipe.base.checkpoint),
        "sources": [_source(session, s.dataset, s.role.value, s.share) for s in recipe.mixture.sources],
    }
    if recipe.rl is not None:
        # The reward functions a grpo run optimises, resolved now to the digests the run will be held to.
        evidence["recipe"]["rl"] = recipe.rl.to_document()
        evidence["rewards"] = [_reward(session, r.reward, r.weight) if r.reward is not None else _endpoint(r)
                               for r in recipe.rewards]
    if recipe.environment is not None:
        evidence["environment"] = _environment(session, recipe.environment.environment, recipe.environment.weight)
    return evidence


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


def _reward(session: Session, ref: str | None, weight: float) -> dict[str, Any]:
    found, problem = _resolved(session, str(ref), AssetKind.REWARD)
    if found is None:
        return {"ref": ref, "weight": weight, "found": False, "problem": problem}
    return {"ref": ref, "weight": weight, "found": True, "label": label(found), "digest": found.digest,
            "state": found.state.value, "owner": found.owner}


def _environment(session: Session, ref: str, weight: float) -> dict[str, Any]:
    found, problem = _resolved(session, ref, AssetKind.ENVIRONMENT)
    if found is None:
        return {"ref": ref, "weight": weight, "found": False, "problem": problem}
    return {"ref": ref, "weight": weight, "found": True, "label": label(found), "digest": found.digest,
            "state": found.state.value, "owner": found.owner}


def _endpoint(ref: RewardRef) -> dict[str, Any]:
    spec = EndpointSpec(str(ref.endpoint), str(ref.identity), str(ref.version))
    return {"endpoint": spec.url, "identity": spec.identity, "version": spec.version, "weight": ref.weight,
            "digest": spec.digest}


def _source(session: Session, ref: str, role: str, share: float) -> dict[str, Any]:
    found, problem = _resolved(session, ref, AssetKind.DATASET)
    if found is None:
        return {"ref": ref, "role": role, "share": share, "found": False, "problem": problem}
    return {"ref": ref, "role": role, "share": share, "found": True, "label": label(found), "digest": found.digest,
            "state": found.state.value, "dataset_kind": found.dataset_kind, "classification": found.classification,
            "owner": found.owner}
