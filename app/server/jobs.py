"""Long work a member asks the team server for: training an approved run, or evaluating a candidate.

A member asks with a signed `job.start` act, which the admin policy decides (`governance/jobs.py`): who may train
which run, who may evaluate, on which suites, how often. The entry an allowed start appends is the job: the job is
named by its number, and its process takes what to do, and for whom, from that entry. `job.cancel`, decided the same
way, stops one.

The server holds the platform key, the store and the verified inputs, so the work whose results that key signs runs
here, each job in a process of its own (`python -m forgegov.app.server.job ROOT ID`): a job that runs out of memory
or crashes ends its own process, not the server, and a run it was training resumes from its last saved step when it
is started again. A job's folder (`<workspace>/jobs/<id>/`) holds who asked and when (`job.json`), its progress
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace, fsync_dir
from forgegov.foundation.errors import BadInput, NotFound, StateConflict, StoreError
from forgegov.governance.admin import AdminOutcome

JOB_VERSION = 1
JOB_FILE, PROGRESS_FILE, OUTCOME_FILE, OUTPUT_FILE = "job.json", "progress.json", "outcome.json", "output.log"


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


@dataclass
class Jobs:
    """The server's jobs: at most `limit` processes at once; a job asked for beyond that is refused, to ask again."""

    workspace: Workspace
    limit: int = 1

    def __post_init__(self) -> None:
        self.root = self.workspace.root / "jobs"
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._starting = 0  # slots taken by starts being decided

    @contextmanager
    def slot(self) -> Iterator[None]:
        """A place for one more job, held while its start is decided and its process started; StateConflict when the
        server runs (or is starting) as many jobs as it may. Taken before the start is decided and logged, so a busy
        server spends nobody's quota, and two starts at once cannot both be logged for one free place."""
        with self._lock:
            # A job that wrote its outcome is done, even while its process is still exiting.
            running = [job for job, process in self._processes.items()
                       if process.poll() is None and not (self.root / job / OUTCOME_FILE).exists()]
            if len(running) + self._starting >= self.limit:
                raise StateConflict(f"the server is running {len(running) + self._starting} job(s), its limit: ask "
                                    "again once one has finished", hint="`forgegov run list` shows the runs in progress")
            self._starting += 1
        try:
            yield
        finally:
            with self._lock:
                self._starting -= 1

    def start(self, started: AdminOutcome) -> dict[str, Any]:
        """Start the process of the job whose start the policy allowed (`started`, its entry's number the job's), in
        the `slot` taken for it."""
        job_id = str(started.audit_seq)
        with self._lock:
            folder = self.root / job_id
            self.root.mkdir(mode=0o700, exist_ok=True)  # only the server writes a job's reports
            if folder.exists():  # a job of a store since restored from backup, whose numbers are given out again
                folder.rename(self.root / f"{job_id}.before-{now_rfc3339()}")
            folder.mkdir(mode=0o700)
            write_json(folder / JOB_FILE, {"version": JOB_VERSION, "id": job_id, "kind": started.target["kind"],
                                           "actor": started.actor, "asked_at": now_rfc3339()})
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

    def stop(self, job_id: str) -> dict[str, Any]:
        """Stop job JOB_ID's process, once its `job.cancel` was allowed: it records that it stopped, as when the
        server stops (a run its failure, and it resumes from its last saved step when it is started again)."""
        with self._lock:
            process = self._processes.get(job_id)
            if process is not None and process.poll() is None:
                process.terminate()
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return self.status(job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        if not job_id.isdecimal() or job_id != str(int(job_id)):
            raise BadInput(f"{job_id!r} is not a job: a job is named by the number of its job.start audit entry")
        folder = self.root / job_id
        try:
            job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFound(f"the server has no job {job_id}") from exc
        report = {"id": job["id"], "kind": job["kind"], "actor": job["actor"], "asked_at": job["asked_at"],
                  "progress": _read(folder / PROGRESS_FILE)}
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
