"""A governed CPT run beside the same TRL run without forgegov: same base, data, mixture, steps, seed, same process.

    python bench/governed_run.py [--steps 60] [--repeat 2] [--preset reference|tiny] [--device cpu|cuda]
    python bench/governed_run.py --smoke     # tiny preset, 4 steps, once each: checks the script still runs

Setup, not timed: a random-init Llama of the preset's shape with a byte-level BPE trained here, saved as a
checkpoint; three generated JSONL datasets (proprietary, general, replay); a workspace where the base and datasets
are registered, checked and approved, and one run spec per repetition is approved at the run gate.

Timed, each from the same files on disk to a saved checkpoint:
  bare TRL   load the base with `from_pretrained`, the three JSONL files with `datasets.load_dataset("json")`,
             tokenise each (same tokenizer calls, eos appended), `interleave_datasets` with the planned
             probabilities and seed, TRL's `pack_dataset` ("wrapped"), TRL's `SFTTrainer` (same config, TRL's
             collator, checkpoints saved at the same steps), `save_pretrained`
  governed   `execute_run`: the plan from the gate's decision, verified loads of base and datasets (every byte
             hashed, audited), source-tagged tokenisation, the same interleave and packing, the same trainer with
             token counting, checkpoint token counts, candidate registration, provenance signing, run record

Runs alternate (bare, governed, governed, bare, ...) so drift on a shared machine hits both; the figure is the ratio
of medians. Target: governed <= 1.05x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 1.05
PASSPHRASE = "benchmark passphrase"


def _setup(root: Path, preset_name: str, lines: int):  # type: ignore[no-untyped-def]
    from transformers import LlamaForCausalLM, set_seed

    from forgegov.app.workspace import init_workspace
    from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, Classification, DatasetKind, Gate, GateAction
    from forgegov.governance import actions
    from forgegov.governance.asset_kinds import DatasetSpec
    from forgegov.governance.evidence.data_quality import check_dataset
    from forgegov.governance.identities import create_identity, unlock
    from forgegov.governance.registry import register_asset
    from forgegov.training.reference.model import preset
    from forgegov.training.reference.tokenizer import train_tokenizer
    from tests.runs_support import sentences, write_jsonl

    settings = preset(preset_name)
    data = {name: write_jsonl(root / "data" / name, sentences(name, lines, 11)) for name in ("claims", "general",
                                                                                             "replay")}
    texts = [line for name in data for line in sentences(name, lines, 11)]
    tokenizer = train_tokenizer(texts, settings.vocab_size, settings.seq_len)
    set_seed(0)
    model = LlamaForCausalLM(settings.llama_config(tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                   tokenizer.pad_token_id))
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)

    workspace = init_workspace(root / "ws")
    for name in ("alice", "bob", "dave"):
        create_identity(workspace, name, PASSPHRASE)
    register_asset(workspace, AssetKind.CHECKPOINT, base, "bench-base", "alice", stage=CheckpointStage.PRE_TRAINING)
    with actions.policy_engine(workspace) as engine:
        def approve(subject: str, gate: Gate, approver: str) -> None:
            actions.request(workspace, subject, "alice", PASSPHRASE, gate=gate, engine=engine)
            actions.answer(workspace, subject, approver, PASSPHRASE, GateAction.APPROVE, gate=gate, engine=engine)

        approve("checkpoint/bench-base", Gate.BASE, "dave")
        for name, folder in data.items():
            classification = Classification.PROPRIETARY if name == "claims" else Classification.GENERAL_CURATED
            register_asset(workspace, AssetKind.DATASET, folder, name, "alice",
                           dataset=DatasetSpec(DatasetKind.PRETRAINING_TEXT, classification))
            check_dataset(workspace, f"dataset/{name}", signer=unlock(workspace, "alice", PASSPHRASE))
            approve(f"dataset/{name}", Gate.DATASET, "bob")
    return workspace, base, data, settings


def _approve_run(workspace, recipe_path: Path) -> str:  # type: ignore[no-untyped-def]
    from forgegov.app.run_start import start_run
    from forgegov.foundation.vocabulary import Gate, GateAction
    from forgegov.governance import actions

    waiting = start_run(workspace, recipe_path, "alice", lambda: PASSPHRASE)
    actions.answer(workspace, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    return waiting.run


def bare_trl(base: Path, data: dict[str, Path], out: Path, steps: int, batch: int, seq_len: int, cuda: bool) -> float:
    from datasets import interleave_datasets, load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig
    from trl.data_utils import pack_dataset

    from forgegov.training.trainer import CausalLMTrainer, no_activation_checkpointing

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    shares = {"claims": 0.7, "general": 0.25, "replay": 0.05}
    streams = []
    for folder in data.values():
        raw = load_dataset("json", data_files=str(folder / "data.jsonl"), split="train")

        def encode(batch_rows):  # type: ignore[no-untyped-def]
            ids = tokenizer(batch_rows["text"], add_special_tokens=False)["input_ids"]
            return {"input_ids": [row + [tokenizer.eos_token_id] for row in ids]}

        streams.append(raw.map(encode, batched=True, remove_columns=raw.column_names))
    mixed = interleave_datasets(streams, probabilities=list(shares.values()), seed=3, stopping_strategy="all_exhausted")
    mixed = pack_dataset(mixed, seq_len, "wrapped")
    set_seed(3)
    config = SFTConfig(
        output_dir=str(out / "trainer"), max_steps=steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1, learning_rate=0.0005, warmup_steps=max(1, steps // 10),
        lr_scheduler_type="warmup_stable_decay", lr_scheduler_kwargs={
            "num_decay_steps": steps - max(1, steps // 10), "decay_type": "cosine", "min_lr_ratio": 0.1},
        optim="adamw_torch", weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, bf16=cuda,
        use_cpu=not cuda, seed=3, data_seed=3, report_to="none", logging_steps=max(1, steps // 50),
        save_strategy="steps", save_steps=max(1, steps // 5), save_total_limit=2, eval_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, max_length=seq_len, packing=False,
        **no_activation_checkpointing(SFTConfig))
    trainer = CausalLMTrainer(model=model, args=config, train_dataset=mixed, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    return time.perf_counter() - started


def governed(workspace, run: str) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    from forgegov.governance import actions
    from forgegov.governance.jobs import run_job
    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.training.methods import BACKENDS

    started = time.perf_counter()  # the job's start is part of the governed run: the policy decides the compute
    job = actions.start_job(workspace, run_job(run), "benchmark", "alice", PASSPHRASE).audit_seq
    outcome = execute_run(workspace, run, actor="alice", backends=BACKENDS, job=job)
    return time.perf_counter() - started, outcome.realised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--lines", type=int, default=4000, help="records per dataset")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--smoke", action="store_true", help="--preset tiny --steps 4 --repeat 1 --lines 200 on the "
                        "CPU, to check the script still runs (overrides those)")
    args = parser.parse_args()
    if args.smoke:
        args.preset, args.steps, args.repeat, args.lines, args.device = "tiny", 4, 1, 200, "cpu"

    import datasets
    import torch
    import transformers

    from tests.runs_support import recipe_text

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    root = Path(tempfile.mkdtemp(prefix="forgegov-bench-run-"))
    try:
        workspace, base, data, settings = _setup(root, args.preset, args.lines)
        batch, seq_len, cuda = settings.pre.batch_size, settings.seq_len, args.device == "cuda"
        runs = []
        for i in range(args.repeat):
            recipe = root / f"recipe-{i}.toml"
            text = recipe_text(name=f"bench-{i}", base="bench-base", shares=(0.7, 0.25, 0.05), max_steps=args.steps,
                               seed=3, batch_size=batch, seq_len=seq_len, learning_rate=0.0005,
                               warmup_steps=max(1, args.steps // 10),
                               extra_train=f'\n[devices]\nkind = "{args.device}"\n')
            recipe.write_text(text, encoding="utf-8")
            runs.append(_approve_run(workspace, recipe))
        bare_times, governed_times, realised = [], [], {}
        for i in range(args.repeat):
            order = ("bare", "governed") if i % 2 == 0 else ("governed", "bare")
            for side in order:
                if side == "bare":
                    bare_times.append(bare_trl(base, data, root / f"bare-{i}", args.steps, batch, seq_len, cuda))
                else:
                    seconds, realised = governed(workspace, runs[i])
                    governed_times.append(seconds)
                print(f"  repetition {i + 1}: {side:<8} {(bare_times if side == 'bare' else governed_times)[-1]:7.2f} s",
                      file=sys.stderr)
        bare_median, governed_median = statistics.median(bare_times), statistics.median(governed_times)
        ratio = governed_median / bare_median
        tokens = realised["total_tokens"]
        result = {
            "preset": args.preset, "parameters": sum(p.numel() for p in transformers.AutoModelForCausalLM
                                                    .from_pretrained(base).parameters()),
            "steps": args.steps, "batch_size": batch, "seq_len": seq_len, "device": args.device,
            "torch_threads": torch.get_num_threads(), "bare_s": [round(t, 2) for t in bare_times],
            "governed_s": [round(t, 2) for t in governed_times], "ratio_of_medians": round(ratio, 3),
            "target": TARGET, "met": ratio <= TARGET, "tokens_trained": tokens,
            "governed_tokens_per_s": round(tokens / governed_median, 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
