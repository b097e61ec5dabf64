"""What every command shares: the selected workspace and how to get a passphrase without echoing it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from forgegov.foundation.config import Workspace, load_workspace
from forgegov.foundation.crypto.keys import ENV_PASSPHRASE
from forgegov.foundation.errors import BadInput, KeyUnavailable


@dataclass
class AppState:
    workspace_path: Path | None = None
    verbose: bool = False

    def workspace(self) -> Workspace:
        return load_workspace(self.workspace_path)


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, AppState) else AppState()


ENV_NEW_PASSPHRASE = "FORGEGOV_NEW_PASSPHRASE"


def passphrase_for(name: str, *, confirm: bool = False, new: bool = False) -> str:
    """NAME's passphrase ($FORGEGOV_PASSPHRASE or a prompt); with `new`, the one a new key of NAME is encrypted under
    (a key rotation: $FORGEGOV_NEW_PASSPHRASE or a prompt, confirmed)."""
    variable, what = (ENV_NEW_PASSPHRASE, "new passphrase") if new else (ENV_PASSPHRASE, "passphrase")
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyUnavailable(f"no {what} for {name!r}: there is no terminal to ask on", hint=f"set {variable}")
    return typer.prompt(f"{what.capitalize()} for {name}", hide_input=True, confirmation_prompt=confirm or new)



def member_as(workspace: Workspace, actor: str | None) -> str:
    """Who signs a member's call: --as, else the member named when the workspace joined its server."""
    if not workspace.server_url:
        raise BadInput("this workspace is not a member of a team server",
                       hint="join one with `forgegov init --join URL --as NAME`")
    name = actor or workspace.config.server.member
    if not name:
        raise BadInput("say who acts: --as NAME", hint="or set [server] member in forgegov.toml")
    return name


def verbs_for(workspace: Workspace):  # type: ignore[no-untyped-def]
    """The gate verbs: decided here (a workspace of one), or signed here and decided by the team server. Both have
    the same functions with the same arguments."""
    if workspace.server_url:
        from forgegov.app import member

        return member
    from forgegov.governance import actions

    return actions


def read(ctx: typer.Context, name: str, /, **arguments: object):  # type: ignore[no-untyped-def]
    """A read command's data (`app/reads.py`): computed here in a workspace of one; in a member's workspace by the
    team server, asked as the member named when it joined."""
    workspace = state(ctx).workspace()
    if workspace.server_url:
        from forgegov.app import member

        actor = member_as(workspace, None)
        return member.read(workspace, name, arguments, actor, passphrase_for(actor))
    from forgegov.app.reads import read_here

    return read_here(workspace, name, arguments)
