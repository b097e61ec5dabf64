"""`forgegov artifact put|get`: a member's files in the team server's content-addressed store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import member_as, passphrase_for, state
from forgegov.app.cli.output import emit

artifact_app = typer.Typer(help="The team server's artifact store (content-addressed, verified on receipt and on "
                                "every fetch).", no_args_is_help=True)
_AS = typer.Option("--as", help="Member acting (default: [server] member in forgegov.toml).", show_default=False)
_JSON = typer.Option("--json", help="Print the result as JSON.")


@artifact_app.command("put")
def put(ctx: typer.Context, path: Path, actor: Annotated[Optional[str], _AS] = None,
        as_json: Annotated[bool, _JSON] = False) -> None:
    """Upload PATH under its SHA-256 digest (chunked; an interrupted upload resumes where it stopped)."""
    from forgegov.app.member import put_artifact

    workspace = state(ctx).workspace()
    name = member_as(workspace, actor)
    result = put_artifact(workspace, path, name, passphrase_for(name))
    emit(result, as_json, lambda out: out.print(f"{result['digest']}  {result['size']} bytes "
                                                f"({result['sent']} sent)"))


@artifact_app.command("get")
def get(ctx: typer.Context, digest: str,
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it (must not exist).")],
        actor: Annotated[Optional[str], _AS] = None, as_json: Annotated[bool, _JSON] = False) -> None:
    """Download DIGEST; it is kept only if its bytes hash to DIGEST."""
    from forgegov.app.member import get_artifact

    workspace = state(ctx).workspace()
    name = member_as(workspace, actor)
    result = get_artifact(workspace, digest, output, name, passphrase_for(name))
    emit(result, as_json, lambda out: out.print(f"{result['path']}  {result['size']} bytes, digest verified"))


def register(app: typer.Typer) -> None:
    app.add_typer(artifact_app, name="artifact")
