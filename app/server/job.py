"""One job of the team server, in its own process: `python -m forgegov.app.server.job WORKSPACE JOB_ID`.

It does what `forgegov run start` or `forgegov eval run` does in a workspace of one, for the member who signed the
job's start, with the orders that start's entry holds (`governance/jobs.py`: the log, not the job's folder, says
what to do and for whom), and writes its progress and outcome into the job's folder.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgegov.app.server.api import error_document
from forgegov.app.server.jobs import OUTCOME_FILE, PROGRESS_FILE, JobState, write_json
from forgegov.foundation.config import Workspace, load_workspace
from forgegov.foundation.errors import ForgegovError
from forgegov.foundation.store.db import read_session
from forgegov.governance.job_entries import JobKind, started

Progress = Callable[[str, int, int, str], None]


def _train(workspace: Workspace, job: int, actor: str, arguments: dict[str, Any],
           progress: Progress) -> dict[str, Any]:
    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.training.methods import BACKENDS

    trained = execute_run(workspace, arguments["subject"], actor=actor, backends=BACKENDS, job=job, progress=progress)
    if trained is None:
        raise ForgegovError("the run was trained by another process of a launch: a server job is one process")
    return trained.to_dict()


def _evaluate(workspace: Workspace, job: int, _actor: str, _arguments: dict[str, Any],
              progress: Progress) -> dict[str, Any]:
    from forgegov.evaluation.runner import run_evaluation

    return run_evaluation(workspace, job, progress=progress).summary()  # its orders and actor: the job's entry


_WORK = {JobKind.RUN: _train, JobKind.EVALUATION: _evaluate}


class _Reporter:
    """The job's `progress(phase, done, total, note)`: the newest state of each phase, written at most twice a second
    (and whenever a phase starts or ends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.phases: dict[str, dict[str, Any]] = {}
        self.written = 0.0

    def __call__(self, phase: str, done: int, total: int, note: str) -> None:
        new = phase not in self.phases or done >= total
        self.phases[phase] = {"phase": phase, "done": done, "total": total, "note": note}
        if new or time.monotonic() - self.written > 0.5:
            write_json(self.path, list(self.phases.values()))
            self.written = time.monotonic()


class Stopped(ForgegovError):
    """The server stopped the job (it is shutting down)."""

    exit_code = 4


def _stop(_signum: int, _frame: object) -> None:
    # Raised where the job is, so that what it does on failure runs: a run records that it stopped, and resumes
    # from its last saved step when it is started again.
    raise Stopped("the server stopped this job while it ran (it was shutting down)",
                  hint="start it again: a run resumes from its last saved step")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    root, job_id = Path(argv[0]), argv[1]
    workspace = load_workspace(root)
    folder = workspace.root / "jobs" / job_id
    try:
        with read_session(workspace.database_url) as session:
            actor, kind, orders = started(session, int(job_id))
        result = _WORK[kind](workspace, int(job_id), actor, orders, _Reporter(folder / PROGRESS_FILE))
    except ForgegovError as error:
        write_json(folder / OUTCOME_FILE, {"state": JobState.FAILED.value, **error_document(error)})
        return error.exit_code
    write_json(folder / OUTCOME_FILE, {"state": JobState.SUCCEEDED.value, "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
