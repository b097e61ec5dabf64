"""`forgegov demo`."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.output import emit, stderr

DEMO_PASSPHRASE = "forgegov-demo-only"


def demo(
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Where to build the demo (default: a new "
                                                                     "temporary folder, kept for inspection).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="The reference family to build: small (the default, "
                                                         "about five minutes in all on two cores) or tiny (a "
                                                         "minute; too small to behave, so its candidates are "
                                                         "decided on little)")] = "small",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the governed flow end to end in a fresh workspace: identities, registration, data-quality checks, a
    reference model family trained here, all six gates, two governed training runs with signed provenance, drift
    evaluation of each candidate against its base, promotion decided on the measured numbers, separation of duties,
    quorum, revocation, a policy change, and a verified, witnessed audit log."""
    from forgegov.app.cli.output import PhaseBars
    from forgegov.app.demo import run_demo
    from forgegov.foundation.errors import BadInput, WorkspaceError
    from forgegov.training.reference.model import PRESETS

    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}", hint=f"choose one of: {', '.join(sorted(PRESETS))}")

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="forgegov-demo-"))
    elif directory.exists() and any(directory.iterdir()):
        raise WorkspaceError(f"{directory} is not empty; the demo needs a fresh folder")
    passphrase = os.environ.get("FORGEGOV_PASSPHRASE") or DEMO_PASSPHRASE
    say = stderr.print if as_json else typer.echo
    with PhaseBars() as bars:
        report = run_demo(directory, passphrase, say, preset, progress=bars.update)
    emit(asdict(report), as_json, lambda out: out.print(
        f"demo finished; inspect it with: forgegov -w {report.workspace} run show run/claims-cpt"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
