"""Reward folders for tests: a module, its declaration and golden examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXACT_MATCH = '''
def score(prompts, completions, answer, **_):
    return [1.0 if completion.strip() == expected else 0.0 for completion, expected in zip(completions, answer)]
'''

GOLDEN = [
    {"prompt": "2+2=", "completion": "4", "columns": {"answer": "4"}, "expected": 1.0},
    {"prompt": "3+3=", "completion": "7", "columns": {"answer": "6"}, "expected": 0.0},
    {"prompt": "1+1=", "completion": " 2 ", "columns": {"answer": "2"}, "expected": 1.0},
]


def write_reward(folder: Path, code: str = EXACT_MATCH, golden: list[dict[str, Any]] | None = None,
                 entry: str = "reward:score", **declared: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reward.py").write_text(code, encoding="utf-8")
    lines = [f"version = {declared.pop('version', 1)}", f'entry = "{entry}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in declared.items()]
    (folder / "reward.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = GOLDEN if golden is None else golden
    (folder / "golden.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return folder
