"""What reward functions and environments share as governed code: a folder of Python with a TOML declaration naming
its entry point, the distributions it imports beyond the standard library, how far a re-run may drift from an
expected value, and a file of golden cases the gate re-runs in the sandbox.

Each kind adds its own keys and golden format (`rewards.py`, `environments.py`); what they share is read here, once,
with the same refusals: unknown keys, an entry module missing from the folder, a golden file outside it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from forgegov.foundation.errors import BadInput

DECLARATION_VERSION = 1
SHARED_KEYS = frozenset({"version", "entry", "dependencies", "tolerance", "golden"})

_ENTRY_RE = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):(?P<name>[A-Za-z_]"
                       r"[A-Za-z0-9_]*)\Z")
_DISTRIBUTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


class DeclarationError(BadInput):
    """A code folder is unreadable or its declaration invalid; the message names the field and what it must be."""


@dataclass(frozen=True)
class Declared:
    """The shared part of a declaration, validated; `document` holds the whole TOML for the kind's own keys."""

    document: dict[str, Any]
    entry: str
    dependencies: tuple[str, ...]
    tolerance: float
    golden: Path


def read_declared(folder: Path, file: str, extra_keys: frozenset[str], entry_form: str, error: type[BadInput],
                  golden_default: str = "golden.jsonl") -> Declared:
    """`folder/file` read and its shared keys checked; `entry_form` ("module:function") is what the messages ask
    for; `error` is the kind's own subclass of DeclarationError."""
    path = folder / file
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{folder} has no {file}",
                    hint=f'declare at least: version = 1, entry = "{entry_form}", golden = "{golden_default}"') \
            from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"cannot read {path}: {exc}") from exc
    allowed = SHARED_KEYS | extra_keys
    if unknown := sorted(document.keys() - allowed):
        raise error(f"{file}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    if document.get("version") != DECLARATION_VERSION:
        raise error(f"{file}: version must be {DECLARATION_VERSION}")
    entry = document.get("entry")
    found = _ENTRY_RE.match(entry) if isinstance(entry, str) else None
    if found is None:
        raise error(f'{file}: entry must be "{entry_form}", not {entry!r}')
    module = Path(*found["module"].split("."))
    if not (folder / module.with_suffix(".py")).is_file() and not (folder / module / "__init__.py").is_file():
        raise error(f"{file}: entry {entry} names module {found['module']}, which is not in the folder")
    dependencies = document.get("dependencies", [])
    if not isinstance(dependencies, list) or any(not isinstance(d, str) or not _DISTRIBUTION_RE.match(d)
                                                 for d in dependencies):
        raise error(f"{file}: dependencies must be a list of distribution names (as pip knows them)")
    tolerance = document.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
        raise error(f"{file}: tolerance must be a number from 0 to 1, not {tolerance!r}")
    golden = document.get("golden", golden_default)
    if not isinstance(golden, str) or "/" in golden or golden.startswith("."):
        raise error(f"{file}: golden must name a file at the top of the folder")
    return Declared(document, entry, tuple(sorted(set(dependencies))), float(tolerance), folder / golden)


def golden_lines(path: Path, error: type[BadInput], what: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """The JSON objects of a golden file with where each is ("golden.jsonl:3"): at least one, at most `limit`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the golden {what} {path.name}: {exc}",
                    hint=f"{path.name} holds one JSON object per line") from exc
    found: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            document = json.loads(line)
        except ValueError as exc:
            raise error(f"{where} is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise error(f"{where} must be a JSON object")
        found.append((where, document))
    if not found:
        raise error(f"{path.name} holds no golden {what}",
                    hint=f"add {what} with the outcome each must have: the gate re-runs them")
    if len(found) > limit:
        raise error(f"{path.name} holds {len(found)} golden {what}; at most {limit}")
    return found


def installed_versions(dependencies: tuple[str, ...]) -> dict[str, str | None]:
    """The version of each declared distribution the sandbox will import (it sees this interpreter's packages);
    None when it is missing, which the policy denies."""
    versions: dict[str, str | None] = {}
    for name in dependencies:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
