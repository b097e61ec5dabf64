"""`forgegov identity create|list|revoke|rotate`."""

from __future__ import annotations

from typing import Annotated

import typer

from forgegov.app.cli.context import passphrase_for, state
from forgegov.app.cli.output import emit

identity_app = typer.Typer(help="Signing identities (Ed25519 keys, encrypted at rest).", no_args_is_help=True)


def _public(identity) -> dict:  # type: ignore[no-untyped-def]
    return {"name": identity.name, "key_id": identity.key_id, "created_at": identity.created_at,
            "revoked_at": identity.revoked_at, "revoke_reason": identity.revoke_reason}


@identity_app.command("create")
def create(ctx: typer.Context, name: str,
           as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Create NAME's key pair; the private key is encrypted with a passphrase ($FORGEGOV_PASSPHRASE or a prompt).

    Roles are not set here: they live in the policy bundle's data, changed by pull request.
    """
    from forgegov.governance.identities import check_name, create_identity

    ws = state(ctx).workspace()
    check_name(name)
    identity = create_identity(ws, name, passphrase_for(name, confirm=True))
    emit(_public(identity), as_json, lambda out: out.print(f"identity {name} created, key {identity.key_id[:16]}…"))


@identity_app.command("list")
def list_(ctx: typer.Context,
          as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """List identities and their key ids."""
    from rich import box
    from rich.table import Table

    from forgegov.governance.identities import list_identities

    rows = [_public(i) for i in list_identities(state(ctx).workspace())]

    def human(out) -> None:  # type: ignore[no-untyped-def]
        table = Table("name", "key id", "created", "revoked", box=box.SIMPLE)
        for row in rows:
            table.add_row(row["name"], row["key_id"][:16], row["created_at"][:19] + "Z",
                          (row["revoked_at"] or "")[:19])
        out.print(table)

    emit(rows, as_json, human)


@identity_app.command("revoke")
def revoke(
    ctx: typer.Context, name: str,
    reason: Annotated[str, typer.Option(help="Why the key is revoked (recorded in the audit log).")],
    actor: Annotated[str, typer.Option("--as", help="Who revokes it (signs the act; the policy decides who may: "
                                                    "by default a policy owner, or NAME itself).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Revoke NAME: its new signatures are refused from now on; its name is never reused."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance import actions
    from forgegov.governance.identities import get_identity

    ws = state(ctx).workspace()
    actions.revoke(ws, name, reason, actor, passphrase_for(actor))
    with read_session(ws.database_url) as session:
        identity = get_identity(session, name)
    emit(_public(identity), as_json, lambda out: out.print(f"identity {name} revoked at {identity.revoked_at}"))


@identity_app.command("rotate")
def rotate(
    ctx: typer.Context, name: str,
    reason: Annotated[str, typer.Option(help="Why the key is replaced (recorded in the audit log).")],
    actor: Annotated[str, typer.Option("--as", help="Who signs the rotation: NAME itself, or (a lost key) whom the "
                                                    "policy allows, by default a policy owner.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bind a new key to NAME, made here and encrypted under NAME's new passphrase ($FORGEGOV_NEW_PASSPHRASE or a
    prompt). Everything NAME signed before still verifies under the old key; open approvals by it must be signed
    again."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance import actions
    from forgegov.governance.identities import check_name, get_identity

    ws = state(ctx).workspace()
    check_name(name)
    signing = passphrase_for(actor)
    actions.rotate(ws, name, passphrase_for(name, new=True), reason, actor, signing)
    with read_session(ws.database_url) as session:
        identity = get_identity(session, name)
    emit(_public(identity), as_json, lambda out: out.print(f"identity {name} now signs with key {identity.key_id[:16]}…"))


def register(app: typer.Typer) -> None:
    app.add_typer(identity_app, name="identity")
