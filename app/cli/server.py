"""`forgegov server`: serve this workspace to a team (members join it with `forgegov init --join URL`)."""

from __future__ import annotations

from typing import Annotated

import typer


def server(ctx: typer.Context,
           host: Annotated[str, typer.Option(help="Address to listen on (put TLS in front of anything but "
                                                  "127.0.0.1).")] = "127.0.0.1",
           port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
           rate: Annotated[float, typer.Option(help="Requests a second each member may send (sustained).")] = 200.0,
           ) -> None:
    """Own this workspace's store, audit log, policy, OPA and artifact store for a team: members sign on their own
    machines and send; the server runs every gate, appends to the log and answers with its signed tree head."""
    import uvicorn

    from forgegov.app.cli.context import state
    from forgegov.app.server.api import create_app
    from forgegov.app.server.auth import Limits
    from forgegov.foundation.errors import BadInput

    if rate <= 0:
        raise BadInput("--rate must be positive")
    workspace = state(ctx).workspace()
    workspace.database_url  # a member's workspace cannot serve: it has no store  # noqa: B018
    app = create_app(workspace, Limits(rate_per_s=rate, burst=max(1, int(2 * rate))))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    app.command("server")(server)
