"""The one door through which training gets an environment: never imported, always stepped in the sandbox, from a
private copy re-hashed against the registered digest on every load. The tools it offers are read from the sandboxed
class and checked (plain names, JSON-typed parameters) before anything is presented to a model, and, once the
environment was approved, must be exactly the tools its approval's evidence shows: the same bytes could describe
other tools at another time (a clock, a file), and what the model is offered is what the reviewer saw. Whether the
environment may be used is the run gate's decision (it reads the approval); its state is recorded with the load.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import ForgegovError, StoreTampered, Tampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, Decision
from forgegov.foundation.vocabulary import AssetKind, AuditAction, DecisionResult, Gate, GateAction
from forgegov.governance.checkpoints import snapshot_verified
from forgegov.governance.code_assets import installed_versions
from forgegov.governance.environments import EnvironmentDeclaration, Tool, describe, read_declaration
from forgegov.governance.loading.use import open_for_use
from forgegov.governance.sandbox.isolation import CodeKind, SandboxLimits, workspace_paths
from forgegov.governance.sandbox.pool import CallResult, Sandbox


class EnvironmentUnavailable(ForgegovError):
    """The environment's class could not even describe its tools in the sandbox (it fails to import, hangs, dies)."""


class ToolsChanged(Tampered):
    """The environment describes other tools than those its approval's evidence shows: approved bytes that behave
    otherwise than when they were approved."""


def approved_tools(workspace: Workspace, asset: Asset) -> list[dict[str, Any]] | None:
    """The tools as the evidence of the environment's last approval shows them (that decision's input, held to its
    digest and to the audit entry that committed to it), or None when it was never approved."""
    with read_session(workspace.database_url) as session:
        decision = session.exec(
            select(Decision).where(Decision.gate == Gate.ENVIRONMENT, Decision.action == GateAction.APPROVE,
                                   Decision.subject_digest == asset.digest, Decision.result == DecisionResult.ALLOW)
            .order_by(Decision.decided_at.desc())  # type: ignore[attr-defined]
        ).first()
        if decision is None:
            return None
        document = json.loads(decision.input)
        if digest_of(document) != decision.input_digest:
            raise StoreTampered(f"decision {decision.id} no longer matches its input digest: the store was altered",
                                hint="run `forgegov audit verify`")
        committed_payload(session, what=f"environment-gate decision {decision.id}",
                          action=AuditAction.of_gate(Gate.ENVIRONMENT, GateAction.APPROVE), decision_id=decision.id,
                          subject_digest=asset.digest, fields={"input_digest": decision.input_digest})
    offered = document.get("evidence", {}).get("environment", {}).get("tools", {}).get("offered")
    if not isinstance(offered, list):
        raise StoreTampered(f"the approval of environment {asset.digest} shows no tools in its evidence")
    return offered


def _held_to_approval(workspace: Workspace, asset: Asset, label: str, tools: tuple[Tool, ...]) -> tuple[Tool, ...]:
    approved = approved_tools(workspace, asset)
    described = [t.to_document() for t in tools]
    if approved is not None and described != approved:
        raise ToolsChanged(f"{label} now describes other tools than its approval shows (now: "
                           f"{', '.join(t['name'] for t in described)}; approved: "
                           f"{', '.join(str(t.get('name')) for t in approved)}): refusing to offer them to a model",
                           hint="an environment's tools must not depend on anything but its code; fix it and "
                                "register a new version")
    return tools


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
            tools = use.verify(lambda: _held_to_approval(workspace, use.asset, use.label, tools))
            use.loaded(entry=declaration.entry, dependencies=installed_versions(declaration.dependencies),
                       tools=[t.name for t in tools])
            yield LoadedEnvironment(use.label, use.asset.digest, declaration, tools, sandbox)
