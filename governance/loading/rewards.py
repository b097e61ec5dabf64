"""The one door through which training gets a reward function: never imported, always run in the sandbox, from a
private copy re-hashed against the registered digest on every load. Whether the reward may be used is the run gate's
decision (it reads the reward's approval); any registered reward loads, and its state is recorded with the load.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgegov.foundation.config import Workspace
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.checkpoints import snapshot_verified
from forgegov.governance.code_assets import installed_versions
from forgegov.governance.loading.use import open_for_use
from forgegov.governance.rewards import RewardDeclaration, read_declaration
from forgegov.governance.sandbox.isolation import SandboxLimits, workspace_paths
from forgegov.governance.sandbox.pool import CallResult, Sandbox


@dataclass(frozen=True)
class LoadedReward:
    label: str
    digest: str
    declaration: RewardDeclaration
    sandbox: Sandbox

    def score(self, kwargs: dict[str, list[Any]]) -> CallResult:
        return self.sandbox.score(kwargs)


@contextmanager
def open_reward(workspace: Workspace, ref: str, *, actor: str, purpose: str, limits: SandboxLimits | None = None,
                workers: int = 1) -> Iterator[LoadedReward]:
    """The reward registered as `ref`, verified byte for byte, running in sandboxed workers until the block ends."""
    use = open_for_use(workspace, ref, AssetKind.REWARD, actor=actor, purpose=purpose)
    with tempfile.TemporaryDirectory(prefix="forgegov-reward-") as scratch:
        code = use.verify(lambda: snapshot_verified(use.asset, Path(scratch) / "code"))
        declaration = use.verify(lambda: read_declaration(code))
        with Sandbox(code, declaration.entry, limits=limits, workers=workers,
                     hidden=workspace_paths(workspace)) as sandbox:
            use.loaded(entry=declaration.entry, dependencies=installed_versions(declaration.dependencies))
            yield LoadedReward(use.label, use.asset.digest, declaration, sandbox)
