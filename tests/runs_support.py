"""What the run tests share: a tiny base checkpoint with its own tokenizer, generated text datasets without
duplicates or personal data, and recipes."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from forgegov.foundation.config import Workspace
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, Classification, DatasetKind, Gate, GateAction
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.registry import label, register_asset
from tests.conftest import PASSPHRASE, register_checked

PARTS = ["hinge", "bracket", "gasket", "valve", "spring", "rotor", "bearing", "flange", "sensor", "clamp"]
ACTIONS = ["replaced", "inspected", "tightened", "cleaned", "returned", "adjusted", "ordered", "tested"]


def sentences(kind: str, count: int, seed: int) -> list[str]:
    """Distinct generated lines: `claims` reads like a warranty log, `general` like reference prose."""
    rng = random.Random(f"{kind}-{seed}")
    lines = []
    for i in range(count):
        if kind == "claims":
            lines.append(f"Claim {i:05d}: the {rng.choice(PARTS)} on unit ZX-{rng.randrange(100, 999)} was "
                         f"{rng.choice(ACTIONS)} under warranty after {rng.randrange(2, 60)} days.")
        elif kind == "general":
            lines.append(f"Section {i}: a {rng.choice(['list', 'dict', 'set', 'tuple'])} holds "
                         f"{rng.randrange(1, 90)} items and the loop visits each of them in turn, number {i}.")
        else:
            lines.append(f"User: name a {rng.choice(PARTS)} use, case {i}. Assistant: it joins two parts of "
                         f"unit {rng.randrange(10, 99)} so they move together.")
    return lines


def build_tiny_base(folder: Path) -> Path:
    """A random-init two-layer Llama and a byte-level BPE trained on the generated text: a valid pre-training
    checkpoint for runs to start from (seconds to build)."""
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed

    from forgegov.training.reference.tokenizer import train_tokenizer

    texts = sentences("claims", 300, 0) + sentences("general", 300, 0) + sentences("replay", 300, 0)
    tokenizer = train_tokenizer(texts, vocab_size=400, max_length=64)
    set_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(folder: Path, lines: list[str]) -> Path:
    import json

    folder.mkdir(parents=True)
    with open(folder / "data.jsonl", "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps({"text": line}) + "\n")
    return folder


PROPRIETARY = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)
GENERAL = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.GENERAL_CURATED)


def approve(workspace: Workspace, subject: str, gate: Gate, requester: str, approver: str) -> None:
    actions.request(workspace, subject, requester, PASSPHRASE, gate=gate)
    actions.answer(workspace, subject, approver, PASSPHRASE, GateAction.APPROVE, gate=gate)


def governed_inputs(workspace: Workspace, root: Path, base_template: Path, *, approve_base: bool = True,
                    approve_data: bool = True) -> dict[str, str]:
    """The base checkpoint and three datasets registered (and checked); approved unless told otherwise.
    Returns their labels."""
    base_dir = root / "base"
    shutil.copytree(base_template, base_dir)
    base = register_asset(workspace, AssetKind.CHECKPOINT, base_dir, "tiny-base", "alice",
                          stage=CheckpointStage.PRE_TRAINING)
    labels = {"base": label(base)}
    for name, kind, spec in (("claims", "claims", PROPRIETARY), ("general", "general", GENERAL),
                             ("replay", "replay", GENERAL)):
        asset = register_checked(workspace, write_jsonl(root / name, sentences(kind, 120, 1)), name, "alice", spec)
        labels[name] = label(asset)
        if approve_data:
            approve(workspace, labels[name], Gate.DATASET, "alice", "bob")
    if approve_base:
        approve(workspace, labels["base"], Gate.BASE, "alice", "dave")
    return labels


def recipe_text(*, name: str = "claims-cpt", base: str = "tiny-base", shares: tuple[float, float, float] = (0.6, 0.3,
                0.1), max_steps: int = 12, seed: int = 7, extra_train: str = "", method: str = "cpt",
                batch_size: int = 4, seq_len: int = 32, learning_rate: float = 0.003, warmup_steps: int = 2) -> str:
    proprietary, general, replay = shares
    sources = [("claims", "proprietary", proprietary), ("general", "general", general), ("replay", "replay", replay)]
    blocks = "".join(f'\n[[mixture.sources]]\ndataset = "{d}"\nrole = "{r}"\nshare = {s}\n'
                     for d, r, s in sources if s > 0)
    return (f'version = 1\nname = "{name}"\nmethod = "{method}"\nseed = {seed}\n\n[base]\ncheckpoint = "{base}"\n'
            f'\n[mixture]\nstopping = "all_exhausted"\n{blocks}\n[train]\nmax_steps = {max_steps}\n'
            f'batch_size = {batch_size}\nseq_len = {seq_len}\nlearning_rate = {learning_rate}\n'
            f'warmup_steps = {warmup_steps}\n{extra_train}')
