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
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the governed flow end to end in a fresh workspace: identities, registration, data-quality checks, a
    reference model family trained here, all five gates, a governed training run with signed provenance,
    separation of duties, quorum, revocation, and a verified audit log (about a minute on two CPU cores)."""
    from forgegov.app.demo import run_demo
    from forgegov.foundation.errors import WorkspaceError

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="forgegov-demo-"))
    elif directory.exists() and any(directory.iterdir()):
        raise WorkspaceError(f"{directory} is not empty; the demo needs a fresh folder")
    passphrase = os.environ.get("FORGEGOV_PASSPHRASE") or DEMO_PASSPHRASE
    say = stderr.print if as_json else typer.echo
    report = run_demo(directory, passphrase, say)
    emit(asdict(report), as_json, lambda out: out.print(
        f"demo finished; inspect it with: forgegov -w {report.workspace} run show run/claims-cpt"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
