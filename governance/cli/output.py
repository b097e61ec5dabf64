"""One place that writes results: JSON data to stdout with --json, readable text otherwise; diagnostics to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
# Piped output has no terminal width; rich would assume 80 columns and cut digests and names in tables.
for _console in (stdout, stderr):
    if not _console.is_terminal:
        _console.width = 160


def emit(data: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human(stdout)
