"""One place that writes results: JSON data to stdout with --json, readable text otherwise; diagnostics to stderr."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Self

from rich.console import Console

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape: what people read carries data
    others wrote (a comment, a bundle's Rego, a file name), and an escape sequence in it could move the cursor and
    erase the line that matters."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class SafeConsole(Console):
    """A console that prints strings through `printable`; renderables built from user data (tables, trees) are given
    cleaned strings where they are built."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*(printable(item) if isinstance(item, str) else item for item in objects), **kwargs)


# No console markup: what is printed carries user data verbatim (labels, paths, policy reasons, recipe tables such
# as "[devices]"), which markup would eat or restyle.
stdout = SafeConsole(highlight=False, soft_wrap=True, markup=False)
stderr = SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False)
# Piped output has no terminal width; rich would assume 80 columns and cut digests and names in tables.
for _console in (stdout, stderr):
    if not _console.is_terminal:
        _console.width = 160


def emit(data: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human(stdout)


class PhaseBars:
    """One progress bar per phase of a long job, on stderr; `update` is the jobs' `progress(phase, done, total,
    note)` callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<14}", markup=False), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[note]}", markup=False), console=stderr)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, phase: str, done: int, total: int, note: str) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total, note=note)
        self.progress.update(self.tasks[phase], completed=done, total=total, note=note)


def acted(outcome, as_json: bool, done: str) -> None:  # type: ignore[no-untyped-def]
    """An administrative act's outcome: carried out (DONE), or signed and logged, waiting for the others its quorum
    asks for (what is still missing, as the policy says it)."""
    def human(out: Console) -> None:
        if outcome.waiting:
            out.print(f"{outcome.act.value} on {outcome.target} signed by {outcome.actor} (audit entry "
                      f"{outcome.audit_seq}); nothing changes yet: " + "; ".join(outcome.waiting))
        else:
            out.print(f"{done} (audit entry {outcome.audit_seq})")

    emit(outcome.to_dict(), as_json, human)

