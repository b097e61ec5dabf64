"""A reward function as a governed asset: a folder of Python with `reward.toml` declaring its entry point (TRL's
reward signature: `f(prompts, completions, **columns) -> list[float | None]`), the distributions it imports beyond
the standard library, and golden examples (`golden.jsonl`: inputs with the score they must get).

The folder is registered under its digest like any asset. What the reward gate decides on is not what its author
says the examples score but what they score when forgegov re-runs them, in the sandbox, from a copy of exactly the
registered bytes (`golden_evidence`); the same re-hash guards every later load. What every governed code folder
declares is read by `code_assets.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgegov.governance.code_assets import (
    DECLARATION_VERSION,
    DeclarationError,
    golden_lines,
    installed_versions,
    read_declared,
)
from forgegov.governance.sandbox.isolation import SandboxLimits
from forgegov.governance.sandbox.pool import CallResult, Sandbox

DECLARATION = "reward.toml"
MAX_GOLDEN = 500
# Bumped whenever how golden examples are run changes, so that evidence says which procedure produced it.
GOLDEN_PROCEDURE = 1

_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_RESERVED = frozenset({"prompts", "completions", "completion_ids", "trainer_state"})


class RewardError(DeclarationError):
    """A reward folder is unreadable or its declaration invalid; the message names the field and what it must be."""


@dataclass(frozen=True)
class GoldenExample:
    prompt: str | list[dict[str, str]]
    completion: str | list[dict[str, str]]
    columns: dict[str, Any]
    expected: float | None


@dataclass(frozen=True)
class RewardDeclaration:
    version: int
    entry: str
    dependencies: tuple[str, ...]
    tolerance: float
    golden: tuple[GoldenExample, ...]

    def to_document(self) -> dict[str, Any]:
        return {"version": self.version, "entry": self.entry, "dependencies": list(self.dependencies),
                "tolerance": self.tolerance, "golden_examples": len(self.golden)}


def _message_list(value: Any, where: str) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and set(m) == {"role", "content"} and all(isinstance(v, str) for v in m.values())
            for m in value):
        return value
    raise RewardError(f"{where} must be a string or a list of {{role, content}} messages")


def _golden(path: Path) -> tuple[GoldenExample, ...]:
    examples: list[GoldenExample] = []
    columns: set[str] | None = None
    for where, document in golden_lines(path, RewardError, "examples", MAX_GOLDEN):
        if not {"prompt", "completion", "expected"} <= document.keys() \
                or not document.keys() <= {"prompt", "completion", "expected", "columns"}:
            raise RewardError(f"{where} must hold prompt, completion, expected and optionally columns, nothing else")
        expected = document["expected"]
        if expected is not None and (isinstance(expected, bool) or not isinstance(expected, (int, float))):
            raise RewardError(f"{where}: expected must be a number or null (no score)")
        found = document.get("columns", {})
        if not isinstance(found, dict) or any(not _COLUMN_RE.match(str(k)) or k in _RESERVED for k in found):
            raise RewardError(f"{where}: columns must be an object of dataset columns named like identifiers, "
                              f"none of {', '.join(sorted(_RESERVED))}")
        if columns is not None and set(found) != columns:
            raise RewardError(f"{where}: every example names the same columns ({', '.join(sorted(columns))}), "
                              "as a dataset's rows do")
        columns = set(found)
        examples.append(GoldenExample(_message_list(document["prompt"], f"{where}: prompt"),
                                      _message_list(document["completion"], f"{where}: completion"), found,
                                      None if expected is None else float(expected)))
    return tuple(examples)


def read_declaration(folder: Path) -> RewardDeclaration:
    """The declaration of the reward in `folder`, validated, with its golden examples."""
    declared = read_declared(folder, DECLARATION, frozenset(), "module:function", RewardError)
    return RewardDeclaration(DECLARATION_VERSION, declared.entry, declared.dependencies, declared.tolerance,
                             _golden(declared.golden))


def _inputs(examples: list[GoldenExample]) -> dict[str, list[Any]]:
    kwargs: dict[str, list[Any]] = {"prompts": [e.prompt for e in examples],
                                    "completions": [e.completion for e in examples]}
    for column in examples[0].columns:
        kwargs[column] = [e.columns[column] for e in examples]
    return kwargs


def _reproduces(result: CallResult, expected: float | None, tolerance: float) -> bool:
    if not result.ok or not result.scores:
        return False
    got = result.scores[0]
    if expected is None or got is None:
        return got is expected
    return abs(got - expected) <= tolerance


def golden_evidence(code: Path, limits: SandboxLimits, hidden: list[Path]) -> dict[str, Any]:
    """What the reward gate reads: the golden examples re-run one by one in the sandbox against `code`, a private
    verified copy of the registered folder. Deterministic for deterministic code (no timings), because approvals sign
    a digest of it."""
    declaration = read_declaration(code)
    failures: list[dict[str, Any]] = []
    with Sandbox(code, declaration.entry, limits=limits, hidden=hidden) as sandbox:
        for index, example in enumerate(declaration.golden):
            result = sandbox.call(_inputs([example]))
            if _reproduces(result, example.expected, declaration.tolerance):
                continue
            got = result.scores[0] if result.ok and result.scores else None
            # The first line of what went wrong: enough for the reviewer, and stable from run to run.
            failures.append({"example": index + 1, "outcome": result.outcome.value, "expected": example.expected,
                             "got": got, "detail": result.detail.split("\n", 1)[0][:300]})
    return {"procedure": GOLDEN_PROCEDURE, "entry": declaration.entry, "tolerance": declaration.tolerance,
            "dependencies": installed_versions(declaration.dependencies),
            "limits": {"timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb},
            "golden": {"examples": len(declaration.golden), "reproduced": len(declaration.golden) - len(failures),
                       "failures": failures}}
