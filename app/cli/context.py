"""What every command shares: the selected workspace and how to get a passphrase without echoing it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from forgegov.foundation.config import Workspace, load_workspace
from forgegov.foundation.crypto.keys import ENV_PASSPHRASE
from forgegov.foundation.errors import KeyUnavailable


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

