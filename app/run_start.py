"""`run start`: the recipe becomes a run asset, passes the run gate, and only then trains.

Starting a recipe is idempotent on its bytes: the first call registers it and opens the gate request (signed by the
requester); while approvals are missing every call says which; once the gate has approved, a call signs the job's
start (`job.start`, which the admin policy decides: who may spend the compute) and trains, and after a crash the
next call resumes. Nothing touches a model or a dataset before the gate has allowed the run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Decision
from forgegov.foundation.vocabulary import AssetState, DecisionResult, Gate
from forgegov.governance import actions
from forgegov.governance.jobs import run_job
from forgegov.governance.registry import label
from forgegov.governance.runs.ranks import Ranks
from forgegov.governance.runs.spec import register_recipe

if TYPE_CHECKING:
    from forgegov.governance.policy import PolicyEngine
    from forgegov.governance.runs.lifecycle import Progress, RunOutcome


@dataclass(frozen=True)
class StartOutcome:
    run: str
    registered: bool
    state: str
    missing: tuple[str, ...] = ()
    decision_id: str | None = None
    trained: RunOutcome | None = None
    worker: bool = False  # a non-main process of a multi-process launch: it trained, the main one records

    @property
    def started(self) -> bool:
        return self.trained is not None

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "registered": self.registered, "state": self.state, "started": self.started,
                "missing": list(self.missing), "decision_id": self.decision_id,
                "result": self.trained.to_dict() if self.trained is not None else None}


def start_run(workspace: Workspace, recipe_path: Path, actor: str, passphrase: Callable[[], str], *,
              comment: str = "", progress: Progress | None = None, callbacks: tuple[Any, ...] = (),
              engine: PolicyEngine | None = None) -> StartOutcome:
    passphrase = functools.cache(passphrase)  # asked once, for the request and the job alike
    asset, _recipe, registered = register_recipe(workspace, recipe_path, actor)
    name = label(asset)
    ranks = Ranks.from_env()
    if ranks.several and asset.state is not AssetState.APPROVED:
        # Every process of a launch would ask the gate; asking is a one-process step before the launch.
        raise StateConflict(f"{name} is {asset.state.value}: a multi-process launch starts an approved run only",
                            hint=f"run `forgegov run start {recipe_path} --as {actor}` once without the launcher "
                                 "to ask the run gate, and launch after approval")
    if asset.state is AssetState.REJECTED:
        raise StateConflict(f"{name} was rejected at the run gate", hint="change the recipe and start it again")
    if asset.state is AssetState.REGISTERED:
        opened = actions.request(workspace, name, actor, passphrase(), gate=Gate.RUN, comment=comment, engine=engine)
        if opened.state != AssetState.APPROVED.value:
            return StartOutcome(name, registered, opened.state or "", opened.missing, opened.decision_id)
    elif asset.state is AssetState.PENDING:
        missing, decision_id = still_missing(workspace, asset.digest)
        return StartOutcome(name, registered, asset.state.value, missing, decision_id)

    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.training.methods import BACKENDS

    job = None
    if ranks.main:  # a launch is one job: its main process asks for it, as on a team server
        job = actions.start_job(workspace, run_job(name), comment or f"train {name}", actor, passphrase(),
                                engine=engine).audit_seq
    trained = execute_run(workspace, name, actor=actor, backends=BACKENDS, job=job, progress=progress,
                          callbacks=callbacks)
    return StartOutcome(name, registered, AssetState.APPROVED.value, trained=trained,
                        worker=trained is None)


def still_missing(workspace: Workspace, digest: str) -> tuple[tuple[str, ...], str | None]:
    with read_session(workspace.database_url) as session:
        # A denied approval attempt changes nothing, so what is missing is what the last recorded decision said.
        newest = session.exec(select(Decision).where(Decision.gate == Gate.RUN, Decision.subject_digest == digest,
                                                     Decision.result != DecisionResult.DENY)
                              .order_by(Decision.decided_at.desc())).first()  # type: ignore[attr-defined]
        if newest is None:
            return (), None
        return tuple(json.loads(newest.missing)), newest.id
