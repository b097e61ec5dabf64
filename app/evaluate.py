"""`eval run` in a workspace of one: the actor signs the job's start (`job.start`, decided by the admin policy as on a
team server: who may add an evaluation the promotion gate will read, on which suites, how often), then the
evaluation runs in this process, as the job its logged start names, and its result, naming that job, is signed with
the platform key."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from forgegov.foundation.config import Workspace
from forgegov.governance import actions
from forgegov.governance.evaluations import EvalRecord
from forgegov.governance.jobs import evaluation_job
from forgegov.governance.policy import PolicyEngine


def evaluate(workspace: Workspace, candidate: str, suites: Sequence[str], actor: str, passphrase: str, *,
             base: str | None = None, batch_size: int = 32,
             progress: Callable[[str, int, int, str], None] | None = None,
             engine: PolicyEngine | None = None) -> EvalRecord:
    from forgegov.evaluation.runner import run_evaluation

    started = actions.start_job(workspace, evaluation_job(candidate, list(suites), base, batch_size),
                                f"evaluate {candidate}", actor, passphrase, engine=engine)
    return run_evaluation(workspace, started.audit_seq, **({"progress": progress} if progress is not None else {}))
