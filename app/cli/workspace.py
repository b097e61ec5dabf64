"""`forgegov init` and `forgegov db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import state
from forgegov.app.cli.output import emit

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def init(
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Folder to create the workspace in.")] = Path("."),
    store: Annotated[Optional[str], typer.Option(
        help="Store URL, e.g. postgresql+psycopg://forgegov@127.0.0.1:5432/forgegov (default: SQLite file in the "
             "workspace; $FORGEGOV_DATABASE_URL also works).", show_default=False)] = None,
    opa_url: Annotated[Optional[str], typer.Option(
        help="Use this OPA server instead of starting the embedded one.", show_default=False)] = None,
    policy_dir: Annotated[Optional[Path], typer.Option(
        "--policy", help="Policy bundle to pin (default: the one shipped with forgegov).", show_default=False)] = None,
    join: Annotated[Optional[str], typer.Option(
        "--join", help="Join the team server at this URL instead: no store here, only your keys and what is pinned "
                       "from the server (its log key, platform key and policy), trusted on first use.",
        show_default=False)] = None,
    member: Annotated[Optional[str], typer.Option(
        "--as", help="With --join: who this workspace acts as by default.", show_default=False)] = None,
    witness_keys: Annotated[Optional[list[str]], typer.Option(
        "--witness-key", help="With --join: a witness's verifier key, from its operator (repeat for each): `audit "
                              "verify` checks its cosignatures on the log.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create a workspace: forgegov.toml, the store, keys/, and a pinned copy of the policy bundle; or, with --join,
    a member's workspace for a team server."""
    from forgegov.foundation.errors import BadInput

    if witness_keys and join is None:
        raise BadInput("--witness-key goes with --join: a server's own witnesses are set in its forgegov.toml "
                       "([[audit.remote_witnesses]])")
    if join is not None:
        from forgegov.app.member import join as join_server

        if store or opa_url or policy_dir:
            raise BadInput("--join takes no --store, --opa-url or --policy: the server keeps those")
        joined = join_server(directory, join, member or "", tuple(witness_keys or ()))
        data = {"workspace": str(joined.root), "server": joined.server_url, "origin": joined.config.audit.origin,
                "log_public_key": joined.config.audit.log_public_key,
                "policy_digest": joined.config.server.policy_digest}
        emit(data, as_json, lambda out: out.print(
            f"joined {joined.server_url} at {joined.root}\n  log {data['origin']} (key pinned: compare "
            f"{data['log_public_key']} with what the server's operators publish)\n  policy in force "
            f"{data['policy_digest']}\nnext: forgegov identity request NAME --contact EMAIL  (an admin enrols it)"))
        return
    if member:
        raise BadInput("--as goes with --join")
    from forgegov.app.workspace import init_workspace

    ws = init_workspace(directory, store_url=store, opa_url=opa_url, policy_source=policy_dir)
    data = {"workspace": str(ws.root), "store": ws.config.store.url, "opa": ws.config.opa.mode.value}
    emit(data, as_json, lambda out: out.print(
        f"workspace created at {ws.root}\nnext: forgegov identity create NAME  (with FORGEGOV_PASSPHRASE set)"))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context,
               as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Apply pending schema migrations to the workspace's store (and give an older workspace its audit log and platform keys)."""
    from forgegov.audit.log_key import LOG_KEY
    from forgegov.foundation.store.db import upgrade
    from forgegov.governance.runs.provenance import PLATFORM_KEY

    ws = state(ctx).workspace()
    head = upgrade(ws.database_url)
    PLATFORM_KEY.ensure(LOG_KEY.ensure(ws))
    emit({"revision": head}, as_json, lambda out: out.print(f"store schema at revision {head}"))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(db_app, name="db")
