"""`forgegov opa install|version`: the pinned OPA binary, built from its Go module."""

from __future__ import annotations

from typing import Annotated

import typer

from forgegov.app.cli.output import emit, stderr

opa_app = typer.Typer(help="The OPA binary forgegov runs.", no_args_is_help=True)


@opa_app.command("install")
def install() -> None:
    """Build the pinned OPA with `go install` into forgegov's cache (reused when already there)."""
    from forgegov.governance.opa.binary import OPA_VERSION, install_pinned

    stderr.print(f"building OPA {OPA_VERSION} (CGO_ENABLED=0 go install); this takes a few minutes the first time")
    binary = install_pinned()
    stderr.print(f"OPA {OPA_VERSION} at {binary}")


@opa_app.command("version")
def version(as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Show which OPA binary forgegov would use, and its version."""
    from forgegov.governance.opa.binary import OPA_VERSION, find_opa, opa_version

    binary = find_opa()
    found = opa_version(binary)
    data = {"binary": str(binary), "version": found, "pinned": OPA_VERSION, "matches_pin": found == OPA_VERSION}
    emit(data, as_json, lambda out: out.print(f"{binary}: OPA {found} (pinned {OPA_VERSION})"))


def register(app: typer.Typer) -> None:
    app.add_typer(opa_app, name="opa")
