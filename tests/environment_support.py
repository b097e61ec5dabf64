"""Environment folders for tests: a module, its declaration and golden episodes; and a tiny base that can call tools."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

THERMOSTAT = Path(__file__).resolve().parents[1] / "examples" / "environments" / "thermostat"
PROMPT = "Bring the room to 21 degrees."


def write_environment(folder: Path, code: str, golden: list[dict[str, Any]], entry: str = "env:Env",
                      **declared: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "env.py").write_text(code, encoding="utf-8")
    lines = [f"version = {declared.pop('version', 1)}", f'entry = "{entry}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in declared.items()]
    (folder / "environment.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "golden.jsonl").write_text("".join(json.dumps(e) + "\n" for e in golden), encoding="utf-8")
    return folder


def copy_thermostat(folder: Path) -> Path:
    shutil.copytree(THERMOSTAT, folder)
    return folder


def _thermostat_class() -> Any:
    sys.path.insert(0, str(THERMOSTAT))
    try:
        from thermostat import Thermostat  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(THERMOSTAT))
    return Thermostat


def tool_transcripts(count: int, seed: int = 0) -> list[list[dict[str, Any]]]:
    """Thermostat conversations with a random heating time: the model's first reply is the tool call, its second
    closes the episode. Trained on, they teach the call's form without teaching which duration is good."""
    thermostat = _thermostat_class()
    rng = random.Random(seed)
    conversations = []
    for room in range(count):
        start, minutes = rng.choice([16, 17, 18]), rng.randrange(0, 21)
        env = thermostat()
        observation = env.reset(start=start)
        call = {"type": "function", "function": {"name": "heat", "arguments": {"minutes": minutes}}}
        # Each room its own line, as the prompts the GRPO run reads: a transcript repeated would be a duplicate.
        conversations.append([{"role": "user", "content": f"{PROMPT} (room {1000 + room}){observation}"},
                              {"role": "assistant", "content": "", "tool_calls": [call]},
                              {"role": "tool", "name": "heat", "content": env.heat(minutes)},
                              {"role": "assistant", "content": "Done."}])
    return conversations


def build_tool_base(folder: Path, seed: int = 0) -> Path:
    """A random-init two-layer Llama with a byte-level BPE trained on thermostat transcripts (so that a tool call is
    a few tokens): a pre-training checkpoint that has never seen a tool call (seconds to build)."""
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed

    from forgegov.training.reference.tokenizer import train_tokenizer

    from .runs_support import sentences

    draft = train_tokenizer(sentences("claims", 50, seed), vocab_size=300, max_length=160)
    texts = [draft.apply_chat_template(c, tokenize=False) for c in tool_transcripts(400, seed)]
    tokenizer = train_tokenizer(texts + sentences("claims", 200, seed), vocab_size=400, max_length=160)
    set_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=160,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder.mkdir(parents=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
