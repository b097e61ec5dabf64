"""`forgegov server`: serve this workspace to a team (members join it with `forgegov init --join URL`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import state
from forgegov.app.cli.output import emit


def server(ctx: typer.Context,
           host: Annotated[str, typer.Option(help="Address to listen on (put TLS in front of anything but "
                                                  "127.0.0.1).")] = "127.0.0.1",
           port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
           rate: Annotated[float, typer.Option(help="Requests a second each member may send (sustained).")] = 200.0,
           ) -> None:
    """Own this workspace's store, audit log, policy, OPA and artifact store for a team: members sign on their own
    machines and send; the server runs every gate, appends to the log and answers with its signed tree head."""
    import uvicorn

    from forgegov.app.server.api import create_app
    from forgegov.app.server.auth import Limits
    from forgegov.foundation.errors import BadInput

    if rate <= 0:
        raise BadInput("--rate must be positive")
    workspace = state(ctx).workspace()
    workspace.database_url  # a member's workspace cannot serve: it has no store  # noqa: B018
    # Both service keys unlock now, or the server does not start: every answer is signed with the log key, so a
    # missing or exposed passphrase would otherwise turn each call into a server error.
    from forgegov.audit.log_key import LOG_KEY
    from forgegov.governance.runs.provenance import PLATFORM_KEY

    LOG_KEY.load(workspace)
    PLATFORM_KEY.load(workspace)
    app = create_app(workspace, Limits(rate_per_s=rate, burst=max(1, int(2 * rate))))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


backup_app = typer.Typer(help="Back up a server's workspace, and restore it so that its log verifies.",
                         no_args_is_help=True)


@backup_app.command("create")
def backup_create(ctx: typer.Context, destination: Path,
                  as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Write a backup to DESTINATION (a new folder): config, encrypted keys, the artifact store's blobs, the store
    copied by its own tool (SQLite's online backup, pg_dump), every file's SHA-256 and the log's signed tree head."""
    from forgegov.app.backup import backup

    result = backup(state(ctx).workspace(), destination)
    emit(result, as_json, lambda out: out.print(f"backed up {result['entries']} log entries, {result['files']} "
                                                f"files, to {result['backup']}"))


@backup_app.command("restore")
def backup_restore(source: Path,
                   directory: Annotated[Path, typer.Option("--dir", "-d", help="New folder for the workspace.")],
                   log_key: Annotated[str, typer.Option("--log-key", help="The log's public key, as you know it "
                                                        "from outside the backup ([audit] log_public_key in any "
                                                        "member's forgegov.toml).", show_default=False)],
                   store: Annotated[Optional[str], typer.Option(help="PostgreSQL: an empty database to restore into "
                                                                "(default: the one backed up).",
                                                                show_default=False)] = None,
                   as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Restore a backup into a new workspace folder; refused unless the log key signed it, every file is as backed
    up, and the restored log verifies and holds exactly the tree head the backup signed."""
    from forgegov.app.backup import restore

    workspace, report = restore(source, directory, log_key, store)
    data = {"workspace": str(workspace.root), "entries": report.entries, "root": report.root}
    emit(data, as_json, lambda out: out.print(f"restored to {workspace.root}: the log verifies, {report.entries} "
                                              f"entries, root {report.root}"))


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.add_typer(backup_app, name="backup")
