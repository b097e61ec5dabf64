"""Build the reference family: corpora → tokenizer → pre-training → mid-training → post-training, top to bottom.

Each stage is a TRL `SFTTrainer` run from the previous stage's saved checkpoint (pre-training from a seeded random
init): raw text packed into full blocks for pre- and mid-training; for post-training, chat conversations rendered by
the tokenizer's chat template mixed with short general-text pieces (SFT on chat alone wrecks general ability),
with the loss on the replies and the general text (prompt/completion pairs).
Warm-up then cosine decay to 10 % of the peak, AdamW (0.9, 0.95, weight decay 0.1), gradient clipping at 1.0.

The output folder holds `corpora/` (JSONL, with sha256 in `reference.json`), `pre-training/`, `mid-training/`,
`post-training/` (safetensors weights, config and tokenizer each) and `reference.json` (preset, seed, per-stage
steps, wall time, loss and sanity evaluation, lineage). It is built in a sibling folder and renamed into place, so a
failed build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgegov.foundation.staging import staged_folder
from forgegov.training.reference import corpora
from forgegov.training.reference.evaluate import EvalSuite, evaluate_model
from forgegov.training.reference.model import STAGES, Preset, StageSettings
from forgegov.training.reference.model import preset as preset_named
from forgegov.training.reference.tokenizer import train_tokenizer

# progress(phase, done, total, note): phases are "corpora", "tokenizer", each stage name, and "evaluation".
Progress = Callable[[str, int, int, str], None]

FORMAT_VERSION = 1


def _quiet(_phase: str, _done: int, _total: int, _note: str) -> None:
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_output_dir(out_dir: Path) -> None:
    """The output must be new: a missing folder or an empty one."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not an empty folder")


def build_reference(out_dir: Path, preset: Preset | str = "reference", seed: int = 1,
                    progress: Progress | None = None, threads: int | None = None) -> dict[str, Any]:
    """Build the family into `out_dir` (which must be missing or empty); return the `reference.json` record.

    `threads` fixes torch's CPU thread count for the build (restored afterwards). The weights are byte-identical
    for the same seed, preset, thread count and software; a different thread count changes the order of floating
    point reductions and so the low bits.
    """
    out_dir = Path(out_dir).absolute()
    check_output_dir(out_dir)
    settings = preset_named(preset) if isinstance(preset, str) else preset
    with staged_folder(out_dir, "building") as staging:
        record = _build(staging, settings, seed, progress or _quiet, threads)
    return record


def _build(root: Path, preset: Preset, seed: int, progress: Progress, threads: int | None) -> dict[str, Any]:
    import datasets
    import torch
    import transformers

    started = time.perf_counter()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _build_stages(root, preset, seed, progress, started)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_num_threads(threads_before)


def _build_stages(root: Path, preset: Preset, seed: int, progress: Progress, started: float) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, LlamaForCausalLM, set_seed

    # -- corpora ------------------------------------------------------------------------------------------------------
    progress("corpora", 0, 1, "gathering standard-library text")
    general = corpora.general_corpus(preset.general_train_chars)
    chats = corpora.chat_sets(seed, instructions=preset.instructions, instruction_eval=preset.eval_instruction_items)
    mid_docs = corpora.mid_training_blend(general, seed)
    parts = corpora.parts_catalogue(seed, preset.domain_parts)
    domain_docs = corpora.domain_documents(parts, seed)
    domain_items = corpora.domain_eval_items(parts)

    rng = random.Random(f"forgegov-post-mix-{seed}")
    chunks = corpora.chunk_text(general.train, preset.sft_general_chunk_chars)
    general_pieces = rng.sample(chunks, min(len(chunks), round(len(chats.train) * preset.post_general_per_chat)))

    corpora_dir = root / "corpora"
    corpora_dir.mkdir()
    files: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
        # name: (dataset kind, what it is, records)
        "general-train.jsonl": ("pretraining-text", "general corpus, training split",
                                [{"text": t} for t in general.train]),
        "general-heldout.jsonl": ("pretraining-text", "general corpus, held-out split (perplexity)",
                                  [{"text": t} for t in general.held_out]),
        "mid-blend.jsonl": ("pretraining-text", "mid-training blend", [{"text": t} for t in mid_docs]),
        "sft-chat.jsonl": ("sft-chat", "chat, safety and instruction conversations", chats.train),
        "sft-general-mix.jsonl": ("pretraining-text", "general pieces mixed into post-training",
                                  [{"text": t} for t in general_pieces]),
        "safety-eval.jsonl": ("eval", "held-out harmful prompts and benign look-alikes", chats.safety_eval),
        "instructions-eval.jsonl": ("eval", "held-out instructions with verifiable constraints",
                                    chats.instruction_eval),
        "domain-train.jsonl": ("pretraining-text", "synthetic parts catalogue (for later continued pre-training)",
                               [{"text": t} for t in domain_docs]),
        "domain-eval.jsonl": ("eval", "parts catalogue cloze and question items", domain_items),
    }
    corpora_record: dict[str, Any] = {}
    for name, (kind, description, records) in files.items():
        written = corpora.write_jsonl(corpora_dir / name, records)
        corpora_record[name] = {"kind": kind, "description": description, **written}
    progress("corpora", 1, 1, f"{len(files)} files")

    # Evaluation items: a deterministic, balanced subset where the preset caps them.
    safety = chats.safety_eval
    if preset.eval_safety_items is not None:
        pick = random.Random(f"forgegov-eval-{seed}")
        half = preset.eval_safety_items // 2
        harmful = [i for i in safety if i["expect"] == "refuse"]
        benign = [i for i in safety if i["expect"] == "comply"]
        safety = pick.sample(harmful, min(half, len(harmful))) + pick.sample(benign, min(half, len(benign)))
    domain_eval = ([i for i in domain_items if i["form"] == "cloze"][:preset.eval_domain_items]
                   + [i for i in domain_items if i["form"] == "question"][:preset.eval_domain_items])
    suite = EvalSuite(held_out_texts=general.held_out, safety=safety, instructions=chats.instruction_eval,
                      domain=domain_eval, perplexity_blocks=preset.eval_perplexity_blocks, seq_len=preset.seq_len,
                      batch_size=preset.eval_batch_size)

    # -- tokenizer ----------------------------------------------------------------------------------------------------
    progress("tokenizer", 0, 1, f"byte-level BPE, vocab {preset.vocab_size}")
    tokenizer = train_tokenizer(general.train, preset.vocab_size, preset.seq_len)
    progress("tokenizer", 1, 1, f"vocab {len(tokenizer)}")

    # -- random init --------------------------------------------------------------------------------------------------
    set_seed(seed)
    config = preset.llama_config(tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    evaluations: dict[str, dict[str, Any]] = {}
    progress("evaluation", 0, 1, "random init")
    evaluations["random-init"] = evaluate_model(model, tokenizer, suite)

    # -- stages -------------------------------------------------------------------------------------------------------
    # Post-training examples are prompt/completion pairs, so TRL computes the loss on completions only: a chat's
    # prompt is its user turn rendered by the chat template up to "Assistant:", its completion the reply and eos; a
    # general piece has an empty prompt, so all of it is completion.
    post_examples = [{"prompt": tokenizer.apply_chat_template(c["messages"][:1], tokenize=False,
                                                              add_generation_prompt=True),
                      "completion": " " + c["messages"][1]["content"] + tokenizer.eos_token} for c in chats.train]
    post_examples += [{"prompt": "", "completion": text} for text in general_pieces]
    random.Random(f"forgegov-post-order-{seed}").shuffle(post_examples)
    stage_data: dict[str, tuple[list[dict[str, str]], bool, list[str]]] = {
        # stage: (examples, packed, corpora files it reads)
        "pre-training": ([{"text": t} for t in general.train], True, ["general-train.jsonl"]),
        "mid-training": ([{"text": t} for t in mid_docs], True, ["mid-blend.jsonl"]),
        "post-training": (post_examples, False, ["sft-chat.jsonl", "sft-general-mix.jsonl"]),
    }
    scratch = root / ".trainer"
    stages: dict[str, Any] = {}
    parent: str | None = None
    try:
        for stage, stage_settings in zip(STAGES, preset.stages(), strict=True):
            examples, packed, data_files = stage_data[stage]
            if parent is not None:
                model = AutoModelForCausalLM.from_pretrained(root / parent)
            stage_started = time.perf_counter()
            train = _train_stage(model, tokenizer, stage, stage_settings, examples, packed, preset.seq_len, seed,
                                 scratch, progress)
            wall = time.perf_counter() - stage_started
            model = train.pop("model")
            stage_dir = root / stage
            model.save_pretrained(stage_dir)
            tokenizer.save_pretrained(stage_dir)
            progress("evaluation", 0, 1, stage)
            evaluations[stage] = evaluate_model(model, tokenizer, suite)
            stages[stage] = {
                "path": stage, "parent": parent, "data": data_files, "steps": stage_settings.steps,
                "batch_size": stage_settings.batch_size, "learning_rate": stage_settings.learning_rate,
                "wall_s": round(wall, 2), **train,
                "weights_sha256": _sha256(stage_dir / "model.safetensors"), "eval": evaluations[stage],
            }
            parent = stage
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    progress("evaluation", 1, 1, "done")

    record = {
        "format": FORMAT_VERSION,
        "preset": preset.to_dict(),
        "seed": seed,
        "parameters": parameters,
        "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer), "trained_on": "general-train.jsonl"},
        "corpora": corpora_record,
        "random_init": {"eval": evaluations["random-init"]},
        "stages": stages,
        "lineage": [{"stage": stage, "parent": stages[stage]["parent"]} for stage in STAGES],
        "held_out": {"acts": chats.held_out_acts, "templates": chats.held_out_templates,
                     "instructions": chats.held_out_instructions},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__,
                     "datasets": datasets.__version__},
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    (root / "reference.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _train_stage(model, tokenizer, stage: str, settings: StageSettings, examples: list[dict[str, str]],  # type: ignore[no-untyped-def]
                 packed: bool, seq_len: int, seed: int, scratch: Path, progress: Progress) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig

    from forgegov.training.trainer import CausalLMTrainer, no_activation_checkpointing

    class StageProgress(TrainerCallback):
        def __init__(self) -> None:
            self.losses: list[tuple[int, float]] = []

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            note = f"loss {self.losses[-1][1]:.3f}" if self.losses else ""
            progress(stage, state.global_step, settings.steps, note)

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if logs and "loss" in logs:
                self.losses.append((state.global_step, float(logs["loss"])))

    cuda = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(scratch), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1, learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": settings.min_lr_rate},
        warmup_steps=settings.warmup_steps, optim="adamw_torch", weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95,
        max_grad_norm=1.0,
        # bf16 autocast on a CPU without bf16 instructions is about ten times slower than fp32: fp32 on CPU.
        bf16=cuda, fp16=False, use_cpu=not cuda, **no_activation_checkpointing(SFTConfig),
        seed=seed, data_seed=seed, full_determinism=True,
        report_to="none", save_strategy="no", eval_strategy="no", logging_steps=max(1, settings.steps // 20),
        disable_tqdm=True, dataloader_num_workers=0,
        max_length=seq_len, packing=packed, packing_strategy="wrapped", dataset_text_field="text",
    )
    progress(stage, 0, settings.steps, "preparing data")
    callback = StageProgress()
    trainer = CausalLMTrainer(model=model, args=config, train_dataset=Dataset.from_list(examples),
                              processing_class=tokenizer, callbacks=[callback])
    # With tqdm off, transformers prints every log dict to stdout; progress goes through `progress` instead.
    trainer.remove_callback(PrinterCallback)
    output = trainer.train()
    losses = callback.losses
    return {"model": trainer.model, "train_loss": round(float(output.training_loss), 4),
            "final_loss": round(losses[-1][1], 4) if losses else None,
            "loss_curve": [[step, round(loss, 4)] for step, loss in losses],
            "trainer": "trl.SFTTrainer", "packing": "wrapped" if packed else "none",
            "loss_on": "all tokens" if packed else "completions"}
