"""The training backend for continued pre-training and supervised fine-tuning: TRL's SFTTrainer on a causal LM.

It only trains: the run's bookkeeping (the plan the gate approved, the claim, the candidate's registration, signed
provenance, the run's record) is `governance/runs/lifecycle.py`, which calls `preflight` and `train` through the
`Backend` contract. Inputs reach it only through the verifying loaders, by the digests the gate approved; a method is
one more backend and one more row in `methods.BACKENDS` (GRPO: `grpo.py`, which shares this module's helpers).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgegov.foundation.errors import BadInput, StateConflict
from forgegov.governance.loading.checkpoints import load_checkpoint
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.runs.lifecycle import RunContext, Trained
from forgegov.governance.runs.ranks import Ranks
from forgegov.governance.runs.recipe import Decay, DeviceKind, Method, Recipe
from forgegov.governance.runs.trainer_checkpoints import Resumable
from forgegov.training.mixture import SourceTokens

TOKENS_FILE = "forgegov-source-tokens.json"
METRICS_FILE = "metrics.jsonl"


def preflight(recipe: Recipe, ranks: Ranks) -> None:
    """Before anything is claimed or loaded: the launch fits the recipe's devices, and the processes join their
    group (gloo between CPU processes, NCCL between GPUs) so the bookkeeping can talk before training starts."""
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
    ranks.start(recipe.devices.kind is DeviceKind.CUDA)


def train(context: RunContext, callbacks: Sequence[Any] = ()) -> Trained:
    """Train on the approved inputs, loaded through the verifying doors, and save the result for the bookkeeping to
    register. Every process of a launch calls it; what it returns is the same on all of them."""
    import datasets
    import transformers
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig
    from trl.data_utils import pack_dataset

    from forgegov.training.mixture import SourceTaggingCollator, interleave, tokenize_source
    from forgegov.training.trainer import (
        CausalLMTrainer,
        CommitCheckpoints,
        SaveSourceTokens,
        StepMetrics,
        no_activation_checkpointing,
    )

    workspace, plan, recipe, ranks = context.workspace, context.plan, context.recipe, context.ranks
    actor, output, progress = context.actor, context.output, context.progress
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    purpose = f"run {context.run_id} ({plan.run_label})"

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

    # 2. One stream: every token tagged with its source, each source holding its planned share of the tokens.
    progress("data", 0, 1, "tokenising and interleaving")
    streams = [tokenize_source(data, tokenizer, recipe.method, index, recipe.train.seq_len, source.label)
               for index, (data, source) in enumerate(zip(loaded, plan.sources, strict=True))]
    # What the run will read, whatever the stopping strategy: steps × batch × processes examples (CPT: of seq_len
    # tokens each, packed), and a block to spare.
    examples = recipe.train.max_steps * recipe.train.batch_size * ranks.world
    mixed = interleave(streams, [s.share for s in plan.sources], recipe.seed, recipe.mixture.stopping.value,
                       max_tokens=(examples + 1) * recipe.train.seq_len if recipe.method is Method.CPT else None)
    if recipe.method is Method.CPT:
        # TRL's own packing, called here rather than inside SFTTrainer, whose packing keeps only input_ids and
        # labels and so would drop the source tags.
        mixed = pack_dataset(mixed, recipe.train.seq_len, "wrapped")
    progress("data", 1, 1, f"{mixed.num_rows} {'blocks' if recipe.method is Method.CPT else 'examples'}")

    # 3. TRL does the rest: labels, the optimiser, the schedule, checkpoints and resuming, but only from a checkpoint
    #    the log committed to and that still hashes to it, with the token counts the log holds for it.
    trainer_dir = output / "trainer"
    resumable = context.checkpoints.resumable(trainer_dir)
    last = str(resumable.folder) if resumable is not None else None
    tokens = restored_tokens(resumable, len(plan.sources), ranks)
    set_seed(recipe.seed)
    train = recipe.train
    cuda = recipe.devices.kind is DeviceKind.CUDA
    config = SFTConfig(
        output_dir=str(trainer_dir), max_steps=train.max_steps, per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=1, learning_rate=train.learning_rate, warmup_steps=train.warmup_steps,
        **schedule(recipe), optim="adamw_torch", weight_decay=train.weight_decay, adam_beta1=0.9, adam_beta2=0.95,
        max_grad_norm=train.grad_clip, bf16=cuda, fp16=False, use_cpu=not cuda,
        seed=recipe.seed, data_seed=recipe.seed, report_to=reporters(), run_name=context.run_id,
        logging_steps=max(1, train.max_steps // 50),
        save_strategy="steps", save_steps=max(1, train.max_steps // 5), save_total_limit=2,
        eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False,  # keeps `source_ids` for the counting collator
        max_length=train.seq_len, packing=False,
        completion_only_loss=recipe.method is Method.SFT, **no_activation_checkpointing(SFTConfig),
    )
    metrics = StepMetrics(output / METRICS_FILE, tokens, [s.label for s in plan.sources], progress)
    trainer = CausalLMTrainer(model=model, args=config, train_dataset=mixed, processing_class=tokenizer,
                              peft_config=lora_config(recipe),
                              callbacks=[metrics, SaveSourceTokens(tokens, tokens_file(ranks)),
                                         CommitCheckpoints(committer(context), ranks.wait, ranks.main), *callbacks])
    trainer.remove_callback(PrinterCallback)
    trainer.data_collator = SourceTaggingCollator(trainer.data_collator)
    trainer.source_tokens = tokens
    trainer.in_order = True
    progress("train", 0, train.max_steps, f"resuming from {Path(last).name}" if last else "starting")
    result = trainer.train(resume_from_checkpoint=last)
    parallelism = parallelism_of(trainer, ranks)
    staging = save_candidate(trainer, tokenizer, recipe, ranks, output)
    return Trained(staging=staging, tokens=ranks.total(tokens.counts), steps=trainer.state.global_step,
                    resumed_from_step=step_of(last), final_loss=metrics.last_loss
                    if metrics.last_loss is not None else float(result.training_loss), parallelism=parallelism)


def save_candidate(trainer: Any, tokenizer: Any, recipe: Recipe, ranks: Ranks, output: Path) -> Path:
    """The trained weights and the tokenizer in a staging folder, for the bookkeeping to register."""
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
    return staging


def parallelism_of(trainer: Any, ranks: Ranks) -> dict[str, Any]:
    """How the processes shared the work, read from what the trainer did rather than from the launch options:
    accelerate's distributed type, and whether the weights were really sharded (FSDP2 turns them into DTensors)."""
    from torch.distributed.tensor import DTensor

    return {"processes": ranks.world, "distributed": trainer.accelerator.distributed_type.value,
            "fsdp2": bool(trainer.accelerator.is_fsdp2),
            "sharded": any(isinstance(p, DTensor) for p in trainer.model_wrapped.parameters())}


def tokens_file(ranks: Ranks, rank: int | None = None) -> str:
    # Each process counts the batches it trained on; each keeps its own count in the checkpoint.
    which = ranks.rank if rank is None else rank
    return TOKENS_FILE if not ranks.several else TOKENS_FILE.replace(".json", f".rank{which}.json")


def committer(context: RunContext):  # type: ignore[no-untyped-def]
    files = [tokens_file(context.ranks, rank) for rank in range(context.ranks.world)]
    return lambda step, folder: context.checkpoints.commit(step, folder, files)


def schedule(recipe: Recipe) -> dict[str, Any]:
    """Warm-up, then decay to `min_lr_ratio` of the peak: transformers' warmup-stable-decay schedule, its decay made
    as long as the steps after warm-up (so no stable phase), does both the cosine and the linear shape with a floor.
    Constant holds the peak after warm-up."""
    train = recipe.train
    if train.decay is Decay.CONSTANT:
        return {"lr_scheduler_type": "constant_with_warmup"}
    return {"lr_scheduler_type": "warmup_stable_decay", "lr_scheduler_kwargs": {
        "num_decay_steps": train.max_steps - train.warmup_steps,
        "decay_type": train.decay.value, "min_lr_ratio": train.min_lr_ratio}}


def reporters() -> list[str]:
    """MLflow gets the per-step metrics too (transformers' own integration) when it is installed and a tracking URI
    is configured: an installed package alone should not start writing `mlruns/` into whatever folder the run was
    started from."""
    if os.environ.get("MLFLOW_TRACKING_URI") and importlib.util.find_spec("mlflow") is not None:
        return ["mlflow"]
    return ["none"]


def lora_config(recipe: Recipe) -> Any:
    spec = recipe.train.lora
    if spec is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), task_type="CAUSAL_LM")


def step_of(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else None


def restored_tokens(resumable: Resumable | None, sources: int, ranks: Ranks) -> SourceTokens:
    """Counts as of the checkpoint resumed from, as the log committed them, so a resumed run counts each token it
    trained on once and nobody's edit of the folder changes them."""
    if resumable is None:
        return SourceTokens.empty(sources)
    counts = resumable.counts.get(tokens_file(ranks))
    if not isinstance(counts, list) or len(counts) != sources or not all(isinstance(c, int) for c in counts):
        raise StateConflict(f"{resumable.folder} was committed without token counts for {sources} sources from this "
                            "process; resuming from it would record other tokens than were trained on",
                            hint="remove the run's trainer folder to train from the start")
    return SourceTokens(counts)
