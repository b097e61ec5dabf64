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


def passphrase_for(name: str, *, confirm: bool = False) -> str:
    value = os.environ.get(ENV_PASSPHRASE)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyUnavailable(f"no passphrase for {name!r}: there is no terminal to ask on",
                             hint=f"set {ENV_PASSPHRASE}")
    return typer.prompt(f"Passphrase for {name}", hide_input=True, confirmation_prompt=confirm)


ENV_NEW_PASSPHRASE = "FORGEGOV_NEW_PASSPHRASE"


def new_passphrase_for(name: str) -> str:
    """The passphrase a new key of NAME is encrypted under (a key rotation)."""
    value = os.environ.get(ENV_NEW_PASSPHRASE)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyUnavailable(f"no new passphrase for {name!r}: there is no terminal to ask on",
                             hint=f"set {ENV_NEW_PASSPHRASE}")
    return typer.prompt(f"New passphrase for {name}", hide_input=True, confirmation_prompt=True)
