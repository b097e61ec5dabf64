"""The bookkeeping of an approved run, top to bottom, around a backend that only trains:

    plan (what the run gate allowed, by digest) → the backend's preflight → claim the run (locked, logged) →
    the backend trains on inputs it loads through the verifying doors → keep only weights and tokenizer →
    register the candidate with its lineage → sign its provenance → record the run as completed

Nothing here decides whether a run may happen: the run gate did, and `approved_plan` refuses a run asset it has not
approved. A failure after the claim marks the run failed (and logs it); starting the same recipe again resumes from
the last checkpoint the backend saved. Backends live in `training/` (which may import this, never the reverse) and
are handed in by the application, one per training method.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.recorder import EntryDraft, TreeHeadUnsigned, audited_transaction, record
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import AlreadyExists, BadInput, ForgegovError, StateConflict, StoreTampered
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import Asset, AuditEntry, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, AssetState, AuditAction, CheckpointStage, RunStatus
from forgegov.governance.checkpoints import PICKLED_SUFFIXES
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.job_entries import JobKind, claimable
from forgegov.governance.registry import check_recorded, label, register_asset, resolve
from forgegov.governance.runs.plan import RunPlan, approved_plan
from forgegov.governance.runs.ranks import Ranks
from forgegov.governance.runs.recipe import Method, Recipe, recipe_digest
from forgegov.governance.runs.spec import registered_recipe
from forgegov.governance.runs.trainer_checkpoints import TrainerCheckpoints

# progress(phase, done, total, note); phases: "load", "data", "train", "save".
Progress = Callable[[str, int, int, str], None]

# The packages whose sources make up the code that trained (see `code_identity`).
CODE_PACKAGES = ("foundation", "audit", "governance", "training", "evaluation", "app")


@dataclass(frozen=True)
class RunContext:
    """What a backend is given: the approved plan and recipe, where to write, and who it trains for."""

    workspace: Workspace
    plan: RunPlan
    recipe: Recipe
    run_id: str
    actor: str
    output: Path
    ranks: Ranks
    progress: Progress
    checkpoints: TrainerCheckpoints  # commit the trainer's checkpoints as saved; verify one before resuming


@dataclass
class Trained:
    """What a backend hands back: the saved weights and tokenizer, and what it observed while training."""

    staging: Path  # renamed to the candidate folder by the bookkeeping
    tokens: list[int]  # tokens trained on per planned source, summed over every process
    steps: int
    resumed_from_step: int | None
    final_loss: float | None
    parallelism: dict[str, Any]
    # grpo: the rollouts file (every completion with each reward's score) and what it says, for the record
    rollouts: dict[str, Any] | None = None


@dataclass(frozen=True)
class Backend:
    """One training method's implementation: `preflight` checks the launch before anything is claimed or loaded;
    `train` trains (every process calls it) and returns the same `Trained` on all of them."""

    preflight: Callable[[Recipe, Ranks], None]
    train: Callable[[RunContext, Sequence[Any]], Trained]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run: str
    status: RunStatus
    attempts: int
    resumed_from_step: int | None
    candidate: str
    candidate_digest: str
    realised: dict[str, Any]
    output_dir: str
    provenance: str

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run": self.run, "status": self.status.value, "attempts": self.attempts,
                "resumed_from_step": self.resumed_from_step, "candidate": self.candidate,
                "candidate_digest": self.candidate_digest, "realised": self.realised, "output_dir": self.output_dir,
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> RunOutcome:
        """A team server's report of a run it trained (a member checks the run itself with `run verify`)."""
        try:
            return cls(**{**document, "status": RunStatus(document["status"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"the server's report of a run is malformed: {exc}") from exc


def _quiet(_phase: str, _done: int, _total: int, _note: str) -> None:
    return None


def execute_run(workspace: Workspace, run_ref: str, *, actor: str, backends: Mapping[Method, Backend],
                job: int | None = None, progress: Progress | None = None,
                callbacks: Sequence[Any] = ()) -> RunOutcome | None:
    """Train the approved run `run_ref` (a run asset) with the backend for its method, or resume it when an earlier
    attempt stopped, as job JOB: the `job.start` entry the policy allowed `actor` to train this run under (the main
    process's; the others of a launch follow it). Each job trains one attempt.

    Under a multi-process launch every process trains and the main one records the outcome: the others return None.
    `callbacks` go to the backend (the TRL one takes `transformers.TrainerCallback`s; the tests crash a run with one)."""
    progress = progress or _quiet
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, actor))
        run = resolve(session, run_ref, AssetKind.RUN)
        plan = approved_plan(session, run)
        _refuse_withdrawn_inputs(session, plan)
        session.expunge(run)
    recipe = registered_recipe(run)
    if recipe_digest(recipe) != plan.recipe_digest:
        raise StoreTampered(f"the recipe of {label(run)} is not the one its run gate decision {plan.decision_id} "
                            "approved: the store was altered")
    backend = backends.get(recipe.method)
    if backend is None:
        raise BadInput(f"no training backend for method {recipe.method.value} is installed",
                       hint=f"methods this installation trains: {', '.join(m.value for m in backends) or 'none'}")
    ranks = Ranks.from_env()
    backend.preflight(recipe, ranks)
    with ExitStack() as held:
        row = _claimed_by_main(held, workspace, run, plan, actor, ranks, job)
        output = Path(row.output_dir)
        started = time.perf_counter()
        try:
            checkpoints = TrainerCheckpoints(workspace, row.id, run.digest, actor)
            trained = backend.train(RunContext(workspace, plan, recipe, row.id, actor, output, ranks, progress,
                                               checkpoints), callbacks)
            if not ranks.main:
                return None
            return _finish(workspace, run, plan, recipe, row, actor, output, trained, started, progress)
        except TreeHeadUnsigned:
            raise  # what was recorded stands (a completed run stays completed); only a tree head is missing
        except BaseException as failure:
            if ranks.main:
                _record_failure(workspace, run, row, actor, failure)
            raise


# --- before any compute ----------------------------------------------------------------------------------------------

def _refuse_withdrawn_inputs(session: Session, plan: RunPlan) -> None:
    """An approval withdrawn after the run gate decided stops the run from starting or resuming: the base, every
    dataset, every reward function and the environment must still be approved (each row held against the log by
    `resolve`)."""
    inputs = [(AssetKind.CHECKPOINT, plan.base_digest), *((AssetKind.DATASET, s.digest) for s in plan.sources),
              *((AssetKind.REWARD, r.digest) for r in plan.rewards if r.endpoint is None),
              *([(AssetKind.ENVIRONMENT, plan.environment.digest)] if plan.environment is not None else [])]
    for kind, digest in inputs:
        found = resolve(session, digest, kind)
        if found.state is AssetState.WITHDRAWN:
            raise StateConflict(f"{label(found)} was withdrawn after the run gate approved {plan.run_label}: the run "
                                "cannot start or resume", hint="register a new run spec on approved inputs")

def _claimed_by_main(held: ExitStack, workspace: Workspace, run: Asset, plan: RunPlan, actor: str,
                     ranks: Ranks, job: int | None) -> TrainingRun:
    """The main process locks and claims the run (the lock joins `held`); the others read the record it made, or
    stop with the error it met, so that no process waits for a main process that gave up."""
    if ranks.main:
        lock = workspace.artifacts_dir / "runs" / "locks" / f"{run.digest.removeprefix('sha256:')}.lock"
        try:
            held.enter_context(_exclusive(lock, label(run)))
            claim = _claim(workspace, run, plan, actor, job)
        except ForgegovError as refused:
            # Every refusal reaches the other processes, or they would wait for a main process that gave up.
            ranks.share(refused.message)
            raise
        ranks.share(claim.id)
        return claim
    shared = ranks.share(None)
    with read_session(workspace.database_url) as session:
        row = session.get(TrainingRun, shared)
        if row is None:
            raise StateConflict(f"the main process could not claim {label(run)}: {shared}")
        session.expunge(row)
        return row


def _claim(workspace: Workspace, run: Asset, plan: RunPlan, actor: str, job: int | None) -> TrainingRun:
    """The run's record: created on the first start, counted up on a resume; completed runs are never re-run."""
    with audited_transaction(workspace) as tx:
        session = tx.session
        _require_job(session, run, actor, job)
        row = session.exec(select(TrainingRun).where(TrainingRun.run_asset_id == run.id)).first()
        if row is not None and row.status is RunStatus.COMPLETED:
            raise StateConflict(f"{label(run)} already completed as run {row.id} (candidate {row.candidate_digest})",
                                hint="change the recipe (a new run spec version) to train again")
        now = now_rfc3339()
        if row is None:
            run_id = str(uuid.uuid4())
            row = TrainingRun(id=run_id, run_asset_id=run.id, recipe_digest=plan.recipe_digest,
                              decision_id=plan.decision_id, plan=json.dumps(plan.to_document(), sort_keys=True),
                              status=RunStatus.RUNNING, started_by=actor, started_at=now, attempts=1,
                              output_dir=str(workspace.artifacts_dir / "runs" / run_id))
            action = AuditAction.RUN_START
        else:
            row.attempts += 1
            row.status, row.error = RunStatus.RUNNING, None
            action = AuditAction.RUN_RESUME
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:
            raise StateConflict(f"{label(run)} was claimed by another process just now",
                                hint="see `forgegov run show`") from exc
        tx.append(EntryDraft(
            actor=actor, action=action, subject_digest=run.digest, decision_id=plan.decision_id,
            policy_revision=plan.policy_revision,
            payload={"run_id": row.id, "run": label(run), "attempt": row.attempts, "job": job,
                     "plan": plan.to_document()},
        ))
        session.refresh(row)
        session.expunge(row)
    return row


def _require_job(session: Session, run: Asset, actor: str, job: int | None) -> None:
    """Compute is spent only as the policy allowed: JOB is a `job.start` entry (held to the log) that `actor`, still
    active, signed to train this very run, lately, under the policy in force, not cancelled, and no earlier attempt
    of the run trained under it. Without it, whoever can call the trainer (a script, a second launch) would train an
    approved run nobody was allowed to start."""
    if job is None:
        raise StateConflict(f"{label(run)} trains only as a job the policy allowed (a signed job.start)",
                            hint="forgegov run start (its recipe), or a team server's job")
    require_active(get_identity(session, actor))
    starter, kind, ordered = claimable(session, job)
    if kind is not JobKind.RUN or ordered != {"subject": label(run)} or starter != actor:
        raise StateConflict(f"job {job} is not {actor}'s job to train {label(run)} (it is {starter}'s, to "
                            f"{kind.value} {ordered})")
    for action in (AuditAction.RUN_START, AuditAction.RUN_RESUME):
        for seq in session.exec(select(AuditEntry.seq).where(AuditEntry.action == action,
                                                             AuditEntry.subject_digest == run.digest)):
            attempt = committed_payload(session, what=f"attempt {seq} of {label(run)}", action=action,
                                        subject_digest=run.digest, fields={}, seq=seq)
            if attempt.get("job") == job:
                raise StateConflict(f"job {job} already trained {label(run)} (audit entry {seq})",
                                    hint="start it again: a new job resumes it")


@contextmanager
def _exclusive(lock: Path, name: str) -> Iterator[None]:
    """One launch per run: a second `run start` while the first trains is refused before it claims anything, not
    interleaved with it. The lock goes with the (main) process, so a crashed run can be resumed at once."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StateConflict(f"{name} is being trained by another process right now",
                                hint="wait for it, or stop it and start the recipe again to resume") from exc
        yield


# --- after training --------------------------------------------------------------------------------------------------

def realised_mixture(plan: RunPlan, tokens: Sequence[int]) -> dict[str, Any]:
    """Planned and realised token shares, per source and per role (what the promotion gate holds to the plan)."""
    total = sum(tokens)
    roles: dict[str, dict[str, float]] = {}
    for source, n in zip(plan.sources, tokens, strict=True):
        role = roles.setdefault(source.role, {"planned_share": 0.0, "realised_share": 0.0})
        role["planned_share"] = round(role["planned_share"] + source.share, 6)
        role["realised_share"] = round(role["realised_share"] + (n / total if total else 0.0), 6)
    return {"total_tokens": total, "roles": roles, "sources": [
        {"label": s.label, "digest": s.digest, "role": s.role, "planned_share": s.share, "tokens": n,
         "realised_share": round(n / total, 6) if total else 0.0}
        for s, n in zip(plan.sources, tokens, strict=True)]}


def code_identity() -> dict[str, Any]:
    """The code that trained: forgegov's version and a digest of its Python sources (a local edit shows up even
    when the version does not change), and the versions of the libraries that did the training."""
    digest = hashlib.sha256()
    for name in CODE_PACKAGES:
        # Each subpackage from where it would be imported (in an editable install they are folders of the checkout,
        # not one package folder, so the checkout's other contents stay out of the digest), found without importing
        # it: the layers above governance are read, never run, from here.
        spec = importlib.util.find_spec(f"forgegov.{name}")
        if spec is None or not spec.submodule_search_locations:
            raise StateConflict(f"forgegov.{name} is not installed beside forgegov.governance",
                                hint="reinstall forgegov (scripts/install.sh)")
        root = Path(next(iter(spec.submodule_search_locations))).resolve()
        for path in sorted(root.rglob("*.py")):
            relative = f"{name}/{path.relative_to(root).as_posix()}"
            digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    versions = {}
    for dist in ("forgegov", "torch", "transformers", "trl", "datasets", "accelerate", "peft"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {**versions, "code_digest": "sha256:" + digest.hexdigest(), "python": platform.python_version()}


def _finish(workspace: Workspace, run: Asset, plan: RunPlan, recipe: Recipe, row: TrainingRun, actor: str,
            output: Path, trained: Trained, started: float, progress: Progress) -> RunOutcome:
    from forgegov.governance.runs.provenance import RunFacts, sign_provenance

    progress("save", 0, 3, "candidate checkpoint")
    candidate_dir = output / "candidate"
    if candidate_dir.exists():
        # A previous attempt saved it and stopped before completing; the weights just trained replace it.
        shutil.rmtree(candidate_dir)
    _keep_weights_and_tokenizer(trained.staging)
    trained.staging.rename(candidate_dir)
    progress("save", 1, 3, "registering the candidate")
    candidate = _register_candidate(workspace, candidate_dir, recipe.name, actor, plan.base_digest)
    realised = realised_mixture(plan, trained.tokens)
    code = code_identity()
    finished_at = now_rfc3339()
    facts = RunFacts(
        run_id=row.id, recipe=recipe.to_document(), recipe_digest=plan.recipe_digest,
        base={"label": plan.base_label, "digest": plan.base_digest},
        datasets=[s.to_document() for s in plan.sources],
        rewards=[r.to_document() for r in plan.rewards], rollouts=trained.rollouts,
        environment=plan.environment.to_document() if plan.environment is not None else None,
        realised_tokens={s["label"]: s["tokens"] for s in realised["sources"]}, code=code,
        policy_revision=plan.policy_revision, policy_digest=plan.policy_digest, decision_id=plan.decision_id,
        started_at=row.started_at, finished_at=finished_at, actor=actor,
    )
    progress("save", 2, 3, "signing provenance")
    signed = sign_provenance(workspace, facts, json.loads(candidate.manifest), candidate.digest)
    provenance_dir = output / "provenance"
    if provenance_dir.exists():
        shutil.rmtree(provenance_dir)
    with staged_folder(provenance_dir, "signing") as staging:
        signed.write(staging)
    provenance_digest = digest_of(signed.statement_envelope)
    lineage = {"run_id": row.id, "run": label(run), "candidate": label(candidate), "candidate_digest":
               candidate.digest, "base": plan.base_digest, "datasets": [s.digest for s in plan.sources],
               "mixture": realised, "recipe_digest": plan.recipe_digest, "code": code,
               "policy_revision": plan.policy_revision, "policy_digest": plan.policy_digest,
               "decision_id": plan.decision_id, "steps": trained.steps, "final_loss": trained.final_loss,
               "parallelism": trained.parallelism, "provenance_digest": provenance_digest,
               "wall_s": round(time.perf_counter() - started, 2)}
    if plan.rewards or plan.environment is not None:
        lineage["rewards"] = [r.digest for r in plan.rewards if r.endpoint is None]
        lineage["endpoints"] = [{**r.endpoint, "digest": r.digest} for r in plan.rewards if r.endpoint is not None]
        lineage["environment"] = plan.environment.digest if plan.environment is not None else None
        lineage["rollouts"] = trained.rollouts
    with audited_transaction(workspace) as tx:
        session = tx.session
        stored = session.get(TrainingRun, row.id)
        if stored is None:
            raise StateConflict(f"run {row.id} disappeared from the store while it trained")
        stored.status, stored.finished_at = RunStatus.COMPLETED, finished_at
        stored.realised = json.dumps(realised, sort_keys=True)
        stored.code = json.dumps(code, sort_keys=True)
        stored.candidate_digest, stored.provenance_digest = candidate.digest, provenance_digest
        session.add(stored)
        tx.append(EntryDraft(actor=actor, action=AuditAction.RUN_COMPLETE, subject_digest=run.digest,
                                              decision_id=plan.decision_id, policy_revision=plan.policy_revision,
                                              payload=lineage))
        attempts = stored.attempts
    progress("save", 3, 3, label(candidate))
    return RunOutcome(run_id=row.id, run=label(run), status=RunStatus.COMPLETED, attempts=attempts,
                      resumed_from_step=trained.resumed_from_step, candidate=label(candidate),
                      candidate_digest=candidate.digest, realised=realised, output_dir=str(output),
                      provenance=str(provenance_dir))


def _keep_weights_and_tokenizer(folder: Path) -> None:
    """`Trainer.save_model` also writes its `training_args.bin`, a pickle: a checkpoint folder may not hold one
    (forgegov refuses pickles at registration), and the arguments are in the run's record already."""
    for path in folder.iterdir():
        if path.suffix in PICKLED_SUFFIXES and path.is_file():
            path.unlink()


def _register_candidate(workspace: Workspace, folder: Path, name: str, actor: str, base_digest: str) -> Asset:
    try:
        return register_asset(workspace, AssetKind.CHECKPOINT, folder, name, actor, stage=CheckpointStage.CANDIDATE,
                              registered_by=actor, parent=base_digest)
    except AlreadyExists:
        # An earlier attempt registered these very bytes and stopped before completing the run.
        with read_session(workspace.database_url) as session:
            existing = session.exec(select(Asset).where(Asset.kind == AssetKind.CHECKPOINT,
                                                        Asset.digest == build_manifest(folder).digest)).one()
            check_recorded(session, existing)
            session.expunge(existing)
        # Only if it is recorded as what this run makes: a candidate of this base. The same bytes registered
        # otherwise beforehand (by hand, without a parent) would carry this run's lineage under another parent.
        if (existing.stage, existing.parent_digest) != (CheckpointStage.CANDIDATE.value, base_digest):
            raise StateConflict(f"the bytes this run produced are already registered as {label(existing)} "
                                f"(stage {existing.stage}, parent {existing.parent_digest}), not as a candidate of "
                                f"its base {base_digest}", hint="change the recipe's seed and train again") from None
        return existing


def _record_failure(workspace: Workspace, run: Asset, row: TrainingRun, actor: str, failure: BaseException) -> None:
    reason = getattr(failure, "message", None) or f"{type(failure).__name__}: {failure}"
    with write_transaction(workspace.database_url) as session:
        stored = session.get(TrainingRun, row.id)
        if stored is not None and stored.status is RunStatus.RUNNING:
            stored.status, stored.error = RunStatus.FAILED, reason[:2000]
            session.add(stored)
    record(workspace, EntryDraft(actor=actor, action=AuditAction.RUN_FAILED, subject_digest=run.digest,
                                 payload={"run_id": row.id, "run": label(run), "attempt": row.attempts,
                                          "reason": reason[:2000]}))
