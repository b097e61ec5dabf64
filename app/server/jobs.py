"""Long work a member asks the team server for: training an approved run, or evaluating a candidate.

The server holds the platform key, the store and the verified inputs, so the work whose results that key signs runs
here, each job in a process of its own (`python -m forgegov.app.server.job ROOT ID`): a job that runs out of memory
or crashes ends its own process, not the server, and a run it was training resumes from its last saved step when it
is started again. A job's folder (`<workspace>/jobs/<id>/`) holds what was asked (`job.json`), its progress
(`progress.json`, replaced whole), the process's output (`output.log`) and how it ended (`outcome.json`).

These files are reports, never authority. What a job did is in the log: the run's entries and its signed
provenance, the signed evaluation result. A member checks those (`run verify`, `audit verify`), not a job's word.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace, fsync_dir
from forgegov.foundation.errors import BadInput, NotFound, StateConflict, StoreError
from forgegov.foundation.store.db import read_session
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.registry import label, resolve
from forgegov.governance.runs.plan import approved_plan

JOB_VERSION = 1
JOB_FILE, PROGRESS_FILE, OUTCOME_FILE, OUTPUT_FILE = "job.json", "progress.json", "outcome.json", "output.log"


class JobKind(StrEnum):
    RUN = "run"
    EVALUATION = "evaluation"


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def write_json(path: Path, document: Any) -> None:
    """Written beside PATH and renamed over it: a reader (or a crash) sees the old document or the new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadInput(f"the job names no {name}")
    return value


def _run_arguments(workspace: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    """An approved run, refused here (not in a job that fails later) when the run gate has not allowed it."""
    with read_session(workspace.database_url) as session:
        run = resolve(session, _text(body, "subject"), AssetKind.RUN)
        approved_plan(session, run)
        return {"subject": label(run)}


def _evaluation_arguments(workspace: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    suites = body.get("suites")
    if not isinstance(suites, list) or not suites or not all(isinstance(s, str) and s for s in suites):
        raise BadInput("an evaluation job names its suites (a list of suite references)")
    batch_size = body.get("batch_size", 32)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 4096:
        raise BadInput(f"the batch size must be an integer from 1 to 4096, got {batch_size!r}")
    base = body.get("base")
    with read_session(workspace.database_url) as session:
        candidate = label(resolve(session, _text(body, "candidate"), AssetKind.CHECKPOINT))
        if base is not None:
            base = label(resolve(session, str(base), AssetKind.CHECKPOINT))
        suites = [label(resolve(session, s, AssetKind.SUITE)) for s in suites]
    return {"candidate": candidate, "suites": suites, "base": base, "batch_size": batch_size}


# What each kind of job takes, checked before a process is started for it.
_ARGUMENTS = {JobKind.RUN: _run_arguments, JobKind.EVALUATION: _evaluation_arguments}


@dataclass
class Jobs:
    """The server's jobs: at most `limit` processes at once; a job asked for beyond that is refused, to ask again."""

    workspace: Workspace
    limit: int = 1

    def __post_init__(self) -> None:
        self.root = self.workspace.root / "jobs"
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            kind = JobKind(_text(body, "kind"))
        except ValueError as exc:
            raise BadInput(f"unknown job kind {body.get('kind')!r}: one of {', '.join(JobKind)}") from exc
        arguments = _ARGUMENTS[kind](self.workspace, body)
        with self._lock:
            # A job that wrote its outcome is done, even while its process is still exiting.
            running = [job for job, process in self._processes.items()
                       if process.poll() is None and not (self.root / job / OUTCOME_FILE).exists()]
            if len(running) >= self.limit:
                raise StateConflict(f"the server is running {len(running)} job(s), its limit: ask again once one "
                                    "has finished", hint="`forgegov run list` shows the runs in progress")
            job_id = str(uuid.uuid4())
            folder = self.root / job_id
            self.root.mkdir(mode=0o700, exist_ok=True)  # a job's request names who asked: only the server writes it
            folder.mkdir(mode=0o700)
            write_json(folder / JOB_FILE, {"version": JOB_VERSION, "id": job_id, "kind": kind.value,
                                           "actor": caller, "arguments": arguments, "asked_at": now_rfc3339()})
            try:
                with (folder / OUTPUT_FILE).open("ab") as output:
                    self._processes[job_id] = subprocess.Popen(
                        [sys.executable, "-m", "forgegov.app.server.job", str(self.workspace.root), job_id],
                        stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                        env={**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")})
            except OSError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                raise StoreError("the server could not start a process for the job",
                                 hint="see the server's own log; nothing was started") from exc
        return self.status(job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        try:
            folder = self.root / str(uuid.UUID(job_id))
        except ValueError as exc:
            raise BadInput(f"{job_id!r} is not a job id") from exc
        try:
            job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFound(f"the server has no job {job_id}") from exc
        report = {"id": job["id"], "kind": job["kind"], "actor": job["actor"], "arguments": job["arguments"],
                  "asked_at": job["asked_at"], "progress": _read(folder / PROGRESS_FILE)}
        outcome = _read(folder / OUTCOME_FILE)
        if outcome is not None:
            return {**report, **outcome}
        with self._lock:
            process = self._processes.get(job["id"])
            alive = process is not None and process.poll() is None
        if alive:
            return {**report, "state": JobState.RUNNING.value}
        # Killed (out of memory, kill -9) or lost with an earlier server process: what it changed is in the log.
        code = process.returncode if process is not None else None
        return {**report, "state": JobState.FAILED.value, "error": {
            "type": "StateConflict", "exit_code": 4, "hint": "start it again: a run resumes from its last saved step",
            "message": f"job {job['id']} ended without an outcome (exit {code}; the server's jobs/{job['id']}/"
                       f"{OUTPUT_FILE} says why)" if code is not None
                       else f"job {job['id']} ended without an outcome (the server restarted)"}}

    def close(self) -> None:
        """Stop the jobs still running (the server is stopping): each records that it stopped (a run its failure,
        `app/server/job.py`), and a run resumes from its last saved step when it is started again."""
        with self._lock:
            for process in self._processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in self._processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
