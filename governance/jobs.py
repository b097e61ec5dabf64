"""Compute a member asks for: training an approved run, or evaluating a candidate (a job), and stopping one.

Starting a job is a signed act the admin policy decides (`job.start`, `governance/admin.py`), in a workspace of one as
on a team server: a run's result is a checkpoint, and an evaluation's result is read by the promotion gate, where
every current result counts, so who may spend compute on what is the policy's to say. The policy is told facts read
here from the store and the log, never taken from the statement: the run's requester as its allowing decision
committed it, the candidate and suites with their states, and the times of the actor's own recent starts (its quota).

The entry an allowed start appends is the job: its number names the job, and it carries the target the policy
allowed, from which the job's orders are derived (`orders`): a job process takes them from the log, not from a file
anyone with the folder could edit, and not from a second copy that could say otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from forgegov.foundation.clock import rfc3339
from forgegov.foundation.errors import BadInput, StateConflict
from forgegov.foundation.store.models import AuditEntry, TrainingRun
from forgegov.foundation.vocabulary import RECENT_STARTS, AssetKind, AuditAction, RunStatus, reference_names
from forgegov.governance.job_entries import JobKind, started
from forgegov.governance.registry import label, resolve
from forgegov.governance.runs.plan import approved_plan

MAX_SUITES = 32


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise BadInput(f"the job names no {name}")
    return value


def _kind(document: dict[str, Any]) -> JobKind:
    try:
        return JobKind(_text(document, "kind"))
    except ValueError as exc:
        raise BadInput(f"unknown job kind {document.get('kind')!r}: one of {', '.join(JobKind)}") from exc


def run_job(run: str) -> dict[str, Any]:
    """What a member signs to have run RUN trained."""
    return {"kind": JobKind.RUN.value, "subject": run}


def evaluation_job(candidate: str, suites: list[str], base: str | None, batch_size: int) -> dict[str, Any]:
    """What a member signs to have CANDIDATE evaluated on SUITES against BASE (its parent when None)."""
    return {"kind": JobKind.EVALUATION.value, "candidate": candidate, "suites": list(suites), "base": base,
            "batch_size": batch_size}


def start_target(session: Session, actor: str, signed: dict[str, Any], at: datetime) -> dict[str, Any]:
    """What the policy is told about a job start at AT: the signed references resolved in the store, with their
    states, and the times of the actor's starts in the RECENT_STARTS window before AT (`audit verify` counts them again)."""
    kind = _kind(signed)
    target: dict[str, Any] = {"kind": kind.value}
    if kind is JobKind.RUN:
        if set(signed) != {"kind", "subject"}:
            raise BadInput("a run job names its run (kind, subject) and nothing else")
        run = resolve(session, _text(signed, "subject"), AssetKind.RUN)
        plan = approved_plan(session, run)  # refused here when the run gate has not allowed it
        completed = session.exec(select(TrainingRun.id).where(TrainingRun.run_asset_id == run.id,
                                                              TrainingRun.status == RunStatus.COMPLETED)).first()
        if completed is not None:  # refused before a start is logged and counted, not by the job
            raise StateConflict(f"{plan.run_label} already completed as run {completed}",
                                hint=f"forgegov run show {completed}")
        target["run"] = {"label": plan.run_label, "digest": run.digest, "state": run.state.value,
                         "requested_by": plan.requested_by}
    else:
        if set(signed) != {"kind", "candidate", "suites", "base", "batch_size"}:
            raise BadInput("an evaluation job names its candidate, suites, base and batch size, and nothing else")
        suites, batch_size, base = signed["suites"], signed["batch_size"], signed["base"]
        if not isinstance(suites, list) or not 1 <= len(suites) <= MAX_SUITES \
                or not all(isinstance(s, str) and s for s in suites):
            raise BadInput(f"an evaluation job names 1 to {MAX_SUITES} suites (suite references)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 4096:
            raise BadInput(f"the batch size must be an integer from 1 to 4096, got {batch_size!r}")
        if base is not None and not isinstance(base, str):
            raise BadInput("an evaluation's base is a checkpoint reference, or none for the candidate's parent")
        candidate = resolve(session, _text(signed, "candidate"), AssetKind.CHECKPOINT)
        based = resolve(session, base, AssetKind.CHECKPOINT) if base is not None else None
        target |= {
            "candidate": {"label": label(candidate), "digest": candidate.digest, "stage": candidate.stage,
                          "state": candidate.state.value},
            "base": {"label": label(based), "digest": based.digest} if based is not None else None,
            "suites": [{"label": label(s), "digest": s.digest, "state": s.state.value}
                       for s in (resolve(session, ref, AssetKind.SUITE) for ref in suites)],
            "batch_size": batch_size}
    target["recent"] = list(session.exec(select(AuditEntry.time).where(
        AuditEntry.action == AuditAction.JOB_START, AuditEntry.actor == actor,
        AuditEntry.time >= recent_since(at)).order_by(AuditEntry.seq)).all())  # type: ignore[arg-type]
    return target


def recent_since(at: datetime) -> str:
    return rfc3339(at - RECENT_STARTS)


def signed_references_hold(signed: dict[str, Any], target: dict[str, Any]) -> bool:
    """Whether TARGET, what the policy was told, resolves the references a member signed (SIGNED): each names the
    version found, nothing is added or dropped. A member checks it of the server's answer; replay of the log."""
    try:
        if target["kind"] != signed["kind"]:
            return False
        if target["kind"] == JobKind.RUN:
            return reference_names(signed["subject"], target["run"]["label"], target["run"]["digest"])
        suites, base = target["suites"], target["base"]
        if len(suites) != len(signed["suites"]) or (signed["base"] is None) != (base is None) \
                or target["batch_size"] != signed["batch_size"]:
            return False
        named = [(signed["candidate"], target["candidate"]), *zip(signed["suites"], suites, strict=True),
                 *([(signed["base"], base)] if base is not None else [])]
        return all(reference_names(ref, found["label"], found["digest"]) for ref, found in named)
    except (KeyError, TypeError, AttributeError):
        return False


def cancel_target(session: Session, signed: dict[str, Any]) -> dict[str, Any]:
    """What the policy is told about stopping a job: the job, and who started it, as its start entry says."""
    job = signed.get("job")
    if set(signed) != {"job"} or isinstance(job, bool) or not isinstance(job, int) or not 0 <= job < 2**62:
        raise BadInput("job.cancel names the job by its number")
    actor, kind, _orders = started(session, job)
    return {"job": job, "kind": kind.value, "started_by": actor}
