"""The `forgegov` command: global options, command groups, and the mapping of errors to exit codes."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli import (
    artifact,
    assets,
    audit,
    demo,
    evaluation,
    gates,
    identity,
    jobs,
    opa,
    policy,
    reference,
    review,
    runs,
    server,
    workspace,
)
from forgegov.app.cli.context import AppState
from forgegov.app.cli.output import stderr
from forgegov.foundation.errors import ForgegovError, PolicyDenied

app = typer.Typer(
    name="forgegov",
    help="Governed model customisation: every dataset, reward change, training run and promotion passes a "
         "policy-as-code approval gate, and every decision lands in a signed, tamper-evident audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"forgegov {version('forgegov')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace_dir: Annotated[Optional[Path], typer.Option(
        "--workspace", "-w", help="Workspace folder (default: $FORGEGOV_HOME, else the nearest folder upwards "
                                  "holding forgegov.toml).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print forgegov's version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    ctx.obj = AppState(workspace_path=workspace_dir, verbose=verbose)


workspace.register(app)
identity.register(app)
assets.register(app)
gates.register(app)
review.register(app)
policy.register(app)
opa.register(app)
audit.register(app)
demo.register(app)
reference.register(app)
runs.register(app)
evaluation.register(app)
server.register(app)
artifact.register(app)
jobs.register(app)


def _report(error: ForgegovError) -> None:
    if isinstance(error, PolicyDenied):
        stderr.print(f"denied: {error.message}")
        for reason in error.reasons:
            stderr.print(f"  {reason}")
        holders = (error.outcome or {}).get("holders")
        if holders:
            stderr.print(f"role holders: {gates.holders_line(holders)}")
        if error.decision_id:
            stderr.print(f"decision {error.decision_id} is recorded in the audit log")
    else:
        stderr.print(f"error: {error.message}")
    if error.hint:
        stderr.print(f"next: {error.hint}")


def main() -> None:
    """Typer handles usage errors (exit 2) and --help; forgegov's own errors come out here with their exit code: 1, 2
    (bad input), 3 (denied, or no trustworthy decision) or 4 (tampered)."""
    verbose = any(arg in ("--verbose", "-v") for arg in sys.argv[1:])
    try:
        app()
    except ForgegovError as error:
        if verbose:
            traceback.print_exc()
        _report(error)
        sys.exit(error.exit_code)
