"""TRL's SFTTrainer with two narrow changes that forgegov's runs and reference builds share.

* The loss is the model's own causal-LM loss. TRL's default runs a chunked "fused" LM head that also computes
  entropy and token accuracy for its logs; on a 2-core CPU that made each step of the reference model 40-70 %
  slower, for metrics neither the builds nor the runs use.
* Each training step takes the batch's `source_ids` out before the model sees them and counts them, when the run
  has a counter (see `forgegov.training.mixture`), and a run reads its mixed stream in order.

Data preparation (labels, packing), optimiser, schedule, checkpointing and the loop are TRL's and transformers'.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from trl import SFTTrainer

from forgegov.training.mixture import SourceTokens


class CausalLMTrainer(SFTTrainer):
    source_tokens: SourceTokens | None = None
    # A governed run's stream is already mixed and shuffled (see `forgegov.training.mixture.interleave`): read in
    # order, every prefix of it holds the planned token shares; a random subset of its blocks would not.
    in_order: bool = False

    def _get_train_sampler(self, train_dataset=None):  # type: ignore[no-untyped-def]
        if self.in_order:
            from torch.utils.data import SequentialSampler

            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)
        return super()._get_train_sampler(train_dataset)

    def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[no-untyped-def]
        sources = inputs.pop("source_ids", None)
        if self.source_tokens is not None and sources is not None:
            self.source_tokens.add(sources)
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs=False,  # type: ignore[no-untyped-def]
                     num_items_in_batch=None):
        outputs = model(**inputs, use_cache=False)
        return (outputs.loss, outputs) if return_outputs else outputs.loss


class StepMetrics(TrainerCallback):
    """Each logged step's metrics, with the tokens trained on per source so far, appended to a JSON-lines file;
    each step reported to `progress(phase, done, total, note)`."""

    def __init__(self, path: Path, tokens: SourceTokens, labels: Sequence[str],
                 progress: Callable[[str, int, int, str], None]) -> None:
        self.path, self.tokens, self.labels, self.progress = path, tokens, list(labels), progress
        self.last_loss: float | None = None

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        note = f"loss {self.last_loss:.3f}" if self.last_loss is not None else ""
        self.progress("train", state.global_step, state.max_steps, note)

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if not logs or "loss" not in logs:
            return
        self.last_loss = float(logs["loss"])
        line = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, int | float)},
                "tokens": dict(zip(self.labels, self.tokens.counts, strict=True))}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")


class SaveSourceTokens(TrainerCallback):
    """Writes the token counts into each checkpoint TRL saves, so a resumed run starts counting where it stopped."""

    def __init__(self, tokens: SourceTokens, file_name: str) -> None:
        self.tokens, self.file_name = tokens, file_name

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        (folder / self.file_name).write_text(json.dumps({"step": state.global_step, "counts": self.tokens.counts}))


class CommitCheckpoints(TrainerCallback):
    """Once every process has written its part of a checkpoint, the main one has it hashed and committed to the log
    (`commit(step, folder)`), so a resume can tell the checkpoint from one altered since."""

    def __init__(self, commit: Callable[[int, Path], object], wait: Callable[[], None], main: bool) -> None:
        self.commit, self.wait, self.main = commit, wait, main

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.wait()
        if self.main:
            self.commit(state.global_step, Path(args.output_dir) / f"checkpoint-{state.global_step}")
        self.wait()


def no_activation_checkpointing(config_class: type) -> dict[str, bool]:
    """Activation checkpointing off (TRL defaults it on): the models trained here are small enough not to need it.
    transformers 5 renamed the flag and warns on the old one."""
    names = {field.name for field in dataclasses.fields(config_class)}
    return {"activation_checkpointing": False} if "activation_checkpointing" in names else {
        "gradient_checkpointing": False}
