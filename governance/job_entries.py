"""A job's entry in the log: what kind of job it is, the asset it is about, its orders and who started it, read from
the committed `job.start` entry. Apart from `jobs.py` (which decides starts, and reads run plans) so that the run
lifecycle can hold a training to the job it belongs to."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.clock import now, parse_rfc3339
from forgegov.foundation.errors import NotFound, StateConflict, StoreTampered
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.policy import policy_in_force


class JobKind(StrEnum):
    RUN = "run"
    EVALUATION = "evaluation"


def subject_of(target: dict[str, Any]) -> str:
    """The digest a job's entry is about: the run it trains, or the candidate it evaluates."""
    return str(target["run"]["digest"] if target["kind"] == JobKind.RUN else target["candidate"]["digest"])


def orders(target: dict[str, Any]) -> dict[str, Any]:
    """What the job does, from what the policy allowed: exact versions, never references that could move."""
    if target["kind"] == JobKind.RUN:
        return {"subject": target["run"]["label"]}
    return {"candidate": target["candidate"]["label"], "suites": [s["label"] for s in target["suites"]],
            "base": target["base"]["label"] if target["base"] is not None else None,
            "batch_size": target["batch_size"]}


def started(session: Session, job: int) -> tuple[str, JobKind, dict[str, Any]]:
    """Who started job JOB (the signer of its act), its kind and its orders, as its committed entry holds them;
    StoreTampered when the entry no longer hashes to what the log committed to."""
    entry = session.get(AuditEntry, job)
    if entry is None or entry.action != AuditAction.JOB_START:
        raise NotFound(f"there is no job {job}: a job is named by the number of its job.start audit entry")
    payload = committed_payload(session, what=f"job {job}", action=AuditAction.JOB_START,
                                subject_digest=entry.subject_digest, fields={}, seq=job)
    try:
        target = payload["decision"]["input"]["target"]
        signer, kind = str(payload["statement"]["signer"]), JobKind(target["kind"])
        if payload["kind"] != kind or subject_of(target) != entry.subject_digest or entry.actor != signer:
            raise ValueError("its kind, subject or actor is not the allowed target's")
        return signer, kind, orders(target)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreTampered(f"job {job}'s start entry is malformed: {exc}", hint="run `forgegov audit verify`") from exc


# How long a started job may wait to be taken up: a job is spent compute the policy allowed now, not a voucher.
CLAIM_WINDOW = timedelta(hours=24)


def claimable(session: Session, job: int) -> tuple[str, JobKind, dict[str, Any]]:
    """`started`, for a process about to act on job JOB: refused (StateConflict) when a `job.cancel` entry stopped
    it, when it was allowed under a policy no longer in force (a role taken away since), or when it was started more
    than a day ago."""
    starter, kind, ordered = started(session, job)
    entry = session.get(AuditEntry, job)
    payload = committed_payload(session, what=f"job {job}", action=AuditAction.JOB_START,
                                subject_digest=entry.subject_digest if entry is not None else None, fields={},
                                seq=job)
    if payload["decision"].get("policy_digest") != policy_in_force(session).digest:
        raise StateConflict(f"job {job} was allowed under a policy no longer in force",
                            hint="start it again: the policy in force decides")
    if entry is None or parse_rfc3339(entry.time) < now() - CLAIM_WINDOW:
        raise StateConflict(f"job {job} was started more than {CLAIM_WINDOW.total_seconds() / 3600:.0f} hours ago",
                            hint="start it again")
    for row in session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.JOB_CANCEL,
                                                     AuditEntry.seq > job)):
        cancel = committed_payload(session, what=f"the cancel in entry {row.seq}", action=AuditAction.JOB_CANCEL,
                                   subject_digest=row.subject_digest, fields={}, seq=row.seq)
        if cancel.get("job") == job:
            raise StateConflict(f"job {job} was cancelled (audit entry {row.seq})", hint="start it again")
    return starter, kind, ordered
