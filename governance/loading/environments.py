"""The one door through which training gets an environment: never imported, always stepped in the sandbox, from a
private copy re-hashed against the registered digest on every load. The tools it offers are read from the sandboxed
class and checked (plain names, JSON-typed parameters) before anything is presented to a model. Whether the
environment may be used is the run gate's decision (it reads the approval); its state is recorded with the load.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import ForgegovError
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.checkpoints import snapshot_verified
from forgegov.governance.code_assets import installed_versions
from forgegov.governance.environments import EnvironmentDeclaration, Tool, describe, read_declaration
from forgegov.governance.loading.use import open_for_use
from forgegov.governance.sandbox.isolation import CodeKind, SandboxLimits, workspace_paths
from forgegov.governance.sandbox.pool import CallResult, Sandbox


class EnvironmentUnavailable(ForgegovError):
    """The environment's class could not even describe its tools in the sandbox (it fails to import, hangs, dies)."""


@dataclass(frozen=True)
class LoadedEnvironment:
    label: str
    digest: str
    declaration: EnvironmentDeclaration
    tools: tuple[Tool, ...]
    sandbox: Sandbox


@contextmanager
def open_environment(workspace: Workspace, ref: str, *, actor: str, purpose: str,
                     limits: SandboxLimits | None = None) -> Iterator[LoadedEnvironment]:
    """The environment registered as `ref`, verified byte for byte, stepped in a sandboxed worker until the block
    ends. One worker: TRL calls a rollout's tools one at a time, and a worker keeps every live episode."""
    use = open_for_use(workspace, ref, AssetKind.ENVIRONMENT, actor=actor, purpose=purpose)
    with tempfile.TemporaryDirectory(prefix="forgegov-environment-") as scratch:
        code = use.verify(lambda: snapshot_verified(use.asset, Path(scratch) / "code"))
        declaration = use.verify(lambda: read_declaration(code))
        with Sandbox(code, declaration.entry, limits=limits, hidden=workspace_paths(workspace),
                     kind=CodeKind.ENVIRONMENT) as sandbox:
            tools = use.verify(lambda: describe(sandbox))
            if isinstance(tools, CallResult):
                raise EnvironmentUnavailable(f"{use.label} could not describe its tools in the sandbox "
                                             f"({tools.outcome.value}: {tools.detail.splitlines()[0] if tools.detail else 'no detail'})",
                                             hint="replay its golden episodes at its gate to see why: "
                                                  f"forgegov request {use.label} --gate environment --as NAME")
            use.loaded(entry=declaration.entry, dependencies=installed_versions(declaration.dependencies),
                       tools=[t.name for t in tools])
            yield LoadedEnvironment(use.label, use.asset.digest, declaration, tools, sandbox)
