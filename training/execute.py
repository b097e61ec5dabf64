"""Execute an approved run, top to bottom:

    plan (what the run gate allowed, by digest) → claim the run → load the base and every dataset through the
    digest-verified loaders → tokenise, tag and interleave → TRL's SFTTrainer (resuming from its last checkpoint)
    → save the candidate → register it with its lineage → sign its provenance → record the run as completed

Nothing here decides whether a run may happen: the run gate did, and `approved_plan` refuses a run asset it has not
approved. A failure after the claim marks the run failed (and logs it); starting the same recipe again resumes from
the last checkpoint TRL saved, with the token counts saved beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from forgegov.audit.log import EntryDraft, append
from forgegov.audit.tree_heads import checkpoint_if_due, record
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import AlreadyExists, BadInput, SignatureInvalid, StateConflict
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import Asset, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, RunStatus
from forgegov.governance.checkpoints import PICKLED_SUFFIXES
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.registry import label, register_asset, resolve
from forgegov.governance.runs.plan import RunPlan, approved_plan
from forgegov.governance.runs.ranks import Ranks
from forgegov.governance.runs.recipe import Decay, DeviceKind, Method, Recipe, recipe_digest
from forgegov.governance.runs.spec import registered_recipe
from forgegov.training.mixture import SourceTokens

# progress(phase, done, total, note); phases: "load", "data", "train", "save".
Progress = Callable[[str, int, int, str], None]

TOKENS_FILE = "forgegov-source-tokens.json"
METRICS_FILE = "metrics.jsonl"


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


def _quiet(_phase: str, _done: int, _total: int, _note: str) -> None:
    return None


def execute_run(workspace: Workspace, run_ref: str, *, actor: str, progress: Progress | None = None,
                callbacks: Sequence[Any] = ()) -> RunOutcome | None:
    """Train the approved run `run_ref` (a run asset), or resume it when an earlier attempt stopped.

    Under a multi-process launch every process trains and the main one records the outcome: the others return None.
    `callbacks` are extra `transformers.TrainerCallback`s (the tests use one to crash a run part-way)."""
    progress = progress or _quiet
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, actor))
        run = resolve(session, run_ref, AssetKind.RUN)
        plan = approved_plan(session, run)
        session.expunge(run)
    recipe = registered_recipe(run)
    if recipe_digest(recipe) != plan.recipe_digest:
        raise SignatureInvalid(f"the recipe of {label(run)} is not the one its run gate decision {plan.decision_id} "
                               "approved: the store was altered")
    ranks = Ranks.from_env()
    _check_devices(recipe, ranks)
    ranks.start(recipe.devices.kind is DeviceKind.CUDA)
    with ExitStack() as held:
        row = _claimed_by_main(held, workspace, run, plan, actor, ranks)
        output = Path(row.output_dir)
        started = time.perf_counter()
        try:
            trained = _train(workspace, plan, recipe, row, actor, output, progress, callbacks, ranks)
            if not ranks.main:
                return None
            return _finish(workspace, run, plan, recipe, row, actor, output, trained, started, progress)
        except BaseException as failure:
            if ranks.main:
                _record_failure(workspace, run, row, actor, failure)
            raise


# --- before any compute ----------------------------------------------------------------------------------------------

def _check_devices(recipe: Recipe, ranks: Ranks) -> None:
    import torch

    if recipe.devices.kind is DeviceKind.CUDA and not torch.cuda.is_available():
        raise BadInput(f"recipe {recipe.name} asks for CUDA devices, and this machine has none",
                       hint='run it on a GPU machine, or set [devices] kind = "cpu"')
    if recipe.devices.count != ranks.world:
        raise BadInput(f"recipe {recipe.name} asks for {recipe.devices.count} process(es), but this is one of "
                       f"{ranks.world}", hint="launch one process per device (`torchrun --nproc_per_node N` or "
                                              "`accelerate launch --num_processes N`, see docs/training.md), or set "
                                              "[devices] count to match")
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if fsdp and recipe.devices.kind is DeviceKind.CPU:
        # accelerate turns FSDP on for accelerator devices only: CPU processes would each hold the whole model in
        # plain data parallelism, not the sharding the launch asked for.
        raise BadInput(f"recipe {recipe.name} runs on CPU processes, which accelerate does not shard with FSDP",
                       hint="launch CPU runs with `torchrun` (data parallel), or use FSDP with "
                            '[devices] kind = "cuda" on GPUs')
    if recipe.train.lora is not None and ranks.several and fsdp:
        raise BadInput("a LoRA run cannot be merged into a whole candidate from FSDP shards yet",
                       hint="train LoRA runs with DDP (no FSDP config), or fully without [train.lora]")


def _claimed_by_main(held: ExitStack, workspace: Workspace, run: Asset, plan: RunPlan, actor: str,
                     ranks: Ranks) -> TrainingRun:
    """The main process locks and claims the run (the lock joins `held`); the others read the record it made, or
    stop with the error it met, so that no process waits for a main process that gave up."""
    if ranks.main:
        lock = workspace.artifacts_dir / "runs" / "locks" / f"{run.digest.removeprefix('sha256:')}.lock"
        try:
            held.enter_context(_exclusive(lock, label(run)))
            claim = _claim(workspace, run, plan, actor)
        except BadInput as refused:
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


def _claim(workspace: Workspace, run: Asset, plan: RunPlan, actor: str) -> TrainingRun:
    """The run's record: created on the first start, counted up on a resume; completed runs are never re-run."""
    with write_transaction(workspace.database_url) as session:
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
            action = "run.start"
        else:
            row.attempts += 1
            row.status, row.error = RunStatus.RUNNING, None
            action = "run.resume"
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:
            raise StateConflict(f"{label(run)} was claimed by another process just now",
                                hint="see `forgegov run show`") from exc
        appended = append(session, EntryDraft(
            actor=actor, action=action, subject_digest=run.digest, decision_id=plan.decision_id,
            policy_revision=plan.policy_revision,
            payload={"run_id": row.id, "run": label(run), "attempt": row.attempts, "plan": plan.to_document()},
        ))
        session.refresh(row)
        session.expunge(row)
    checkpoint_if_due(workspace, appended.seq)
    return row


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


# --- training --------------------------------------------------------------------------------------------------------

@dataclass
class _Trained:
    staging: Path  # the trained weights and tokenizer, saved; renamed to the candidate folder by `_finish`
    tokens: SourceTokens
    steps: int
    resumed_from_step: int | None
    final_loss: float | None
    parallelism: dict[str, Any]


def _train(workspace: Workspace, plan: RunPlan, recipe: Recipe, row: TrainingRun, actor: str, output: Path,
           progress: Progress, callbacks: Sequence[Any], ranks: Ranks) -> _Trained:
    import datasets
    import transformers
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig
    from trl.data_utils import pack_dataset

    from forgegov.governance.loading.checkpoints import load_checkpoint
    from forgegov.governance.loading.datasets import load_dataset
    from forgegov.training.mixture import SourceTaggingCollator, interleave, tokenize_source
    from forgegov.training.trainer import (
        CausalLMTrainer,
        SaveSourceTokens,
        StepMetrics,
        no_activation_checkpointing,
    )

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    purpose = f"run {row.id} ({plan.run_label})"

    # 1. Inputs, by the digests the gate approved, each re-verified byte for byte by its loader.
    progress("load", 0, len(plan.sources) + 1, plan.base_label)
    model, tokenizer = load_checkpoint(workspace, plan.base_digest, actor=actor, purpose=f"{purpose}: base")
    if tokenizer is None:
        raise BadInput(f"{plan.base_label} holds no tokenizer; a base checkpoint must carry the tokenizer it was "
                       "trained with", hint="save the tokenizer into the checkpoint folder and register it again")
    loaded = []
    for done, source in enumerate(plan.sources, start=1):
        progress("load", done, len(plan.sources) + 1, source.label)
        loaded.append(load_dataset(workspace, source.digest, actor=actor, purpose=f"{purpose}: {source.role} data"))

    # 2. One stream: every token tagged with its source, sources drawn with the planned probabilities.
    progress("data", 0, 1, "tokenising and interleaving")
    streams = [tokenize_source(data, tokenizer, recipe.method, index, recipe.train.seq_len, source.label)
               for index, (data, source) in enumerate(zip(loaded, plan.sources, strict=True))]
    mixed = interleave(streams, [s.share for s in plan.sources], recipe.seed, recipe.mixture.stopping.value)
    if recipe.method is Method.CPT:
        # TRL's own packing, called here rather than inside SFTTrainer, whose packing keeps only input_ids and
        # labels and so would drop the source tags.
        mixed = pack_dataset(mixed, recipe.train.seq_len, "wrapped")
    progress("data", 1, 1, f"{mixed.num_rows} {'blocks' if recipe.method is Method.CPT else 'examples'}")

    # 3. TRL does the rest: labels, the optimiser, the schedule, checkpoints and resuming.
    trainer_dir = output / "trainer"
    last = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    tokens = _restored_tokens(last, len(plan.sources), ranks)
    set_seed(recipe.seed)
    train = recipe.train
    cuda = recipe.devices.kind is DeviceKind.CUDA
    config = SFTConfig(
        output_dir=str(trainer_dir), max_steps=train.max_steps, per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=1, learning_rate=train.learning_rate, warmup_steps=train.warmup_steps,
        **_schedule(recipe), optim="adamw_torch", weight_decay=train.weight_decay, adam_beta1=0.9, adam_beta2=0.95,
        max_grad_norm=train.grad_clip, bf16=cuda, fp16=False, use_cpu=not cuda,
        seed=recipe.seed, data_seed=recipe.seed, report_to=_reporters(), run_name=row.id,
        logging_steps=max(1, train.max_steps // 50),
        save_strategy="steps", save_steps=max(1, train.max_steps // 5), save_total_limit=2,
        eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False,  # keeps `source_ids` for the counting collator
        max_length=train.seq_len, packing=False,
        completion_only_loss=recipe.method is Method.SFT, **no_activation_checkpointing(SFTConfig),
    )
    metrics = StepMetrics(output / METRICS_FILE, tokens, [s.label for s in plan.sources], progress)
    trainer = CausalLMTrainer(model=model, args=config, train_dataset=mixed, processing_class=tokenizer,
                              peft_config=_lora(recipe),
                              callbacks=[metrics, SaveSourceTokens(tokens, _tokens_file(ranks)), *callbacks])
    trainer.remove_callback(PrinterCallback)
    trainer.data_collator = SourceTaggingCollator(trainer.data_collator)
    trainer.source_tokens = tokens
    progress("train", 0, train.max_steps, f"resuming from {Path(last).name}" if last else "starting")
    result = trainer.train(resume_from_checkpoint=last)
    parallelism = _parallelism(trainer, ranks)
    staging = output / ".candidate-saving"
    if ranks.main and staging.exists():
        shutil.rmtree(staging)
    ranks.wait()
    if recipe.train.lora is not None:
        # The candidate is a whole checkpoint, loadable and verifiable on its own, not an adapter on the base.
        if ranks.main:
            trainer.model.merge_and_unload().save_pretrained(staging)
    else:
        # Every process calls it: under FSDP the weights are gathered from all shards, and only the main one writes.
        trainer.save_model(str(staging))
    ranks.wait()
    if ranks.main:
        tokenizer.save_pretrained(staging)
    counts = ranks.total(tokens.counts)
    return _Trained(staging=staging, tokens=SourceTokens(counts), steps=trainer.state.global_step,
                    resumed_from_step=_step_of(last), final_loss=metrics.last_loss
                    if metrics.last_loss is not None else float(result.training_loss), parallelism=parallelism)


def _parallelism(trainer: Any, ranks: Ranks) -> dict[str, Any]:
    """How the processes shared the work, read from what the trainer did rather than from the launch options:
    accelerate's distributed type, and whether the weights were really sharded (FSDP2 turns them into DTensors)."""
    from torch.distributed.tensor import DTensor

    return {"processes": ranks.world, "distributed": trainer.accelerator.distributed_type.value,
            "fsdp2": bool(trainer.accelerator.is_fsdp2),
            "sharded": any(isinstance(p, DTensor) for p in trainer.model_wrapped.parameters())}


def _tokens_file(ranks: Ranks) -> str:
    # Each process counts the batches it trained on; each keeps its own count in the checkpoint.
    return TOKENS_FILE if not ranks.several else TOKENS_FILE.replace(".json", f".rank{ranks.rank}.json")


def _schedule(recipe: Recipe) -> dict[str, Any]:
    """Warm-up, then decay to `min_lr_ratio` of the peak: transformers' warmup-stable-decay schedule, its decay made
    as long as the steps after warm-up (so no stable phase), does both the cosine and the linear shape with a floor.
    Constant holds the peak after warm-up."""
    train = recipe.train
    if train.decay is Decay.CONSTANT:
        return {"lr_scheduler_type": "constant_with_warmup"}
    return {"lr_scheduler_type": "warmup_stable_decay", "lr_scheduler_kwargs": {
        "num_decay_steps": train.max_steps - train.warmup_steps,
        "decay_type": train.decay.value, "min_lr_ratio": train.min_lr_ratio}}


def _reporters() -> list[str]:
    """MLflow gets the per-step metrics too (transformers' own integration) when it is installed and a tracking URI
    is configured: an installed package alone should not start writing `mlruns/` into whatever folder the run was
    started from."""
    if os.environ.get("MLFLOW_TRACKING_URI") and importlib.util.find_spec("mlflow") is not None:
        return ["mlflow"]
    return ["none"]


def _lora(recipe: Recipe) -> Any:
    spec = recipe.train.lora
    if spec is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), task_type="CAUSAL_LM")


def _step_of(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else None


def _restored_tokens(checkpoint: str | None, sources: int, ranks: Ranks) -> SourceTokens:
    """Counts as of `checkpoint`, so a resumed run counts each token it trained on once."""
    if checkpoint is None:
        return SourceTokens.empty(sources)
    path = Path(checkpoint) / _tokens_file(ranks)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateConflict(f"{checkpoint} has no readable token counts ({path.name}); resuming from it would "
                            "record fewer tokens than were trained on",
                            hint="remove that checkpoint folder to resume from the one before it") from exc
    counts = saved.get("counts")
    if not isinstance(counts, list) or len(counts) != sources or not all(isinstance(c, int) for c in counts):
        raise StateConflict(f"{path} does not hold token counts for {sources} sources")
    return SourceTokens(counts)


# --- after training --------------------------------------------------------------------------------------------------

def realised_mixture(plan: RunPlan, tokens: SourceTokens) -> dict[str, Any]:
    total = sum(tokens.counts)
    return {"total_tokens": total, "sources": [
        {"label": s.label, "digest": s.digest, "role": s.role, "planned_share": s.share, "tokens": n,
         "realised_share": round(n / total, 6) if total else 0.0}
        for s, n in zip(plan.sources, tokens.counts, strict=True)]}


def code_identity() -> dict[str, Any]:
    """The code that trained: forgegov's version and a digest of its Python sources (a local edit shows up even
    when the version does not change), and the versions of the libraries that did the training."""
    digest = hashlib.sha256()
    for name in ("foundation", "audit", "governance", "training", "evaluation", "app"):
        # Each subpackage from where it is imported: in an editable install they are folders of the checkout, not
        # one package folder, so the checkout's other contents (tests, a virtualenv) stay out of the digest.
        root = Path(importlib.import_module(f"forgegov.{name}").__file__ or "").resolve().parent
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
            output: Path, trained: _Trained, started: float, progress: Progress) -> RunOutcome:
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
    with write_transaction(workspace.database_url) as session:
        stored = session.get(TrainingRun, row.id)
        if stored is None:
            raise StateConflict(f"run {row.id} disappeared from the store while it trained")
        stored.status, stored.finished_at = RunStatus.COMPLETED, finished_at
        stored.realised = json.dumps(realised, sort_keys=True)
        stored.code = json.dumps(code, sort_keys=True)
        stored.candidate_digest, stored.provenance_digest = candidate.digest, provenance_digest
        session.add(stored)
        appended = append(session, EntryDraft(actor=actor, action="run.complete", subject_digest=run.digest,
                                              decision_id=plan.decision_id, policy_revision=plan.policy_revision,
                                              payload=lineage))
        attempts = stored.attempts
    checkpoint_if_due(workspace, appended.seq)
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
            session.expunge(existing)
            return existing


def _record_failure(workspace: Workspace, run: Asset, row: TrainingRun, actor: str, failure: BaseException) -> None:
    reason = getattr(failure, "message", None) or f"{type(failure).__name__}: {failure}"
    with write_transaction(workspace.database_url) as session:
        stored = session.get(TrainingRun, row.id)
        if stored is not None and stored.status is RunStatus.RUNNING:
            stored.status, stored.error = RunStatus.FAILED, reason[:2000]
            session.add(stored)
    record(workspace, EntryDraft(actor=actor, action="run.failed", subject_digest=run.digest,
                                 payload={"run_id": row.id, "run": label(run), "attempt": row.attempts,
                                          "reason": reason[:2000]}))
