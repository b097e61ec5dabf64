"""What the read commands show, as JSON-ready data: one function per read.

A workspace of one runs them here; a member's command sends the read's name and arguments to the team server
(`/v1/read`), which runs the same function on its store. Both show the same thing, and each read keeps its own
checks (an evaluation re-verified under the platform key, a row held against the log) wherever it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput
from forgegov.foundation.store.db import read_session
from forgegov.foundation.vocabulary import AssetKind, AssetState, CheckpointStage, ReleaseStage

if TYPE_CHECKING:
    from forgegov.governance.policy import PolicyEngine

# Where a read that asks the policy gets its OPA.
Engines = Callable[[], AbstractContextManager["PolicyEngine"]]


def _text(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value:
        raise BadInput(f"the read names no {name}")
    return value


def _optional(arguments: dict[str, Any], name: str, kind: type) -> Any:
    value = arguments.get(name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise BadInput(f"{value!r} is not a {name}") from exc


def assets(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> list[dict[str, Any]]:
    """Registered assets, optionally of one kind, state, release or stage, each with its open requests."""
    from forgegov.governance.history import asset_record
    from forgegov.governance.registry import list_assets, open_requests

    kind = _optional(arguments, "kind", AssetKind)
    state = _optional(arguments, "state", AssetState)
    release = _optional(arguments, "release", ReleaseStage)
    stage = _optional(arguments, "stage", CheckpointStage)
    opened = open_requests(workspace)
    rows = [{**asset_record(a), "open_requests": opened.get(a.id or 0, [])} for a in list_assets(workspace, kind)]
    return [r for r in rows
            if (state is None or r["state"] == state.value or (state is AssetState.PENDING and r["open_requests"]))
            and (release is None or r["release"] == release.value) and (stage is None or r["stage"] == stage.value)]


def history(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> dict[str, Any]:
    from forgegov.governance.history import subject_history

    return subject_history(workspace, _text(arguments, "subject"))


def lineage(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> dict[str, Any]:
    from forgegov.governance.lineage import lineage_report

    return lineage_report(workspace, _text(arguments, "checkpoint"))


def inbox(workspace: Workspace, arguments: dict[str, Any], engines: Engines) -> list[dict[str, Any]]:
    from forgegov.governance.inbox import inbox as waiting

    with engines() as engine:
        return [item.to_dict() for item in waiting(workspace, engine, _text(arguments, "name"))]


def runs(workspace: Workspace, _arguments: dict[str, Any], _engines: Engines) -> list[dict[str, Any]]:
    from forgegov.governance.runs.records import list_run_records

    return list_run_records(workspace)


def run(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> dict[str, Any]:
    from forgegov.governance.runs.records import run_record

    return run_record(workspace, _text(arguments, "run"))


def evaluations(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> list[dict[str, Any]]:
    from forgegov.governance.evaluations import all_results, verified_results
    from forgegov.governance.registry import resolve

    candidate = arguments.get("candidate")
    with read_session(workspace.database_url) as session:
        if candidate is None:
            records = all_results(workspace, session)
        else:
            records = verified_results(workspace, session,
                                       resolve(session, _text(arguments, "candidate"), AssetKind.CHECKPOINT).digest)
    return [record.summary() for record in records]


def evaluation(workspace: Workspace, arguments: dict[str, Any], _engines: Engines) -> dict[str, Any]:
    from forgegov.governance.evaluations import find_result

    with read_session(workspace.database_url) as session:
        record = find_result(workspace, session, _text(arguments, "evaluation"))
    return {**record.summary(), "statement": record.statement}


READS: dict[str, Callable[[Workspace, dict[str, Any], Engines], Any]] = {
    "list": assets, "show": history, "lineage": lineage, "inbox": inbox,
    "run.list": runs, "run.show": run, "eval.list": evaluations, "eval.show": evaluation,
}


def read_here(workspace: Workspace, name: str, arguments: dict[str, Any], engines: Engines | None = None) -> Any:
    """Read NAME here. A read that asks the policy (the inbox previews each decision) borrows an OPA from `engines`
    (a server's running one), else starts its own."""
    found = READS.get(name)
    if found is None:
        raise BadInput(f"unknown read {name!r}: one of {', '.join(READS)}")
    if not isinstance(arguments, dict):
        raise BadInput("a read's arguments are a JSON object")
    if engines is None:
        from forgegov.governance.actions import policy_engine

        return found(workspace, arguments, lambda: policy_engine(workspace))
    return found(workspace, arguments, engines)
