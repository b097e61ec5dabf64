"""`forgegov identity create|list|revoke|rotate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import passphrase_for, state
from forgegov.app.cli.output import acted, emit

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
    from forgegov.app.cli.context import verbs_for

    ws = state(ctx).workspace()
    outcome = verbs_for(ws).revoke(ws, name, reason, actor, passphrase_for(actor))
    unconfirmed = ws.server_url and name == actor
    acted(outcome, as_json, f"identity {name} revoked by {outcome.actor}" + (
        " (the server's word: a revoked key can no longer read the log; another member's `audit verify` shows "
        "the entry)" if unconfirmed else ""))


@identity_app.command("rotate")
def rotate(
    ctx: typer.Context, name: str,
    reason: Annotated[str, typer.Option(help="Why the key is replaced (recorded in the audit log).")],
    actor: Annotated[str, typer.Option("--as", help="Who signs the rotation: NAME itself, or (a lost key) whom the "
                                                    "policy allows, by default a policy owner.")],
    request_file: Annotated[Optional[Path], typer.Option(
        "--request", help="NAME's signed request (`identity request` on NAME's machine): bind the key NAME made there "
                          "(a lost key, rotated by others) instead of making one here.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bind a new key to NAME: made here, encrypted under NAME's new passphrase ($FORGEGOV_NEW_PASSPHRASE or a
    prompt), or the one in NAME's request (--request). Everything NAME signed before still verifies under the old key;
    open approvals by it must be signed again. Rotating another's key may need more than one signer (the policy's
    quorum): each signs the same act, and the last one's carries it out."""
    from forgegov.app.cli.context import verbs_for
    from forgegov.governance.identities import check_name

    ws = state(ctx).workspace()
    check_name(name)
    request = _request_document(request_file) if request_file is not None else None
    signing = passphrase_for(actor)
    new_passphrase = passphrase_for(name, new=True) if request is None else ""
    outcome = verbs_for(ws).rotate(ws, name, new_passphrase, reason, actor, signing, request=request)
    acted(outcome, as_json, f"identity {name} now signs with key {str(outcome.target.get('key_id'))[:16]}…")


def _request_document(path: Path) -> dict:  # type: ignore[type-arg]
    import json

    from forgegov.foundation.errors import BadInput, UnreadablePath

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnreadablePath(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise BadInput(f"{path} is not a signed request (JSON): {exc}") from exc


@identity_app.command("request")
def request(
    ctx: typer.Context, name: str,
    contact: Annotated[str, typer.Option(help="How to reach you (an e-mail address): recorded with your key.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the request here (default: "
                                                   "NAME.enrolment.json in the current folder).",
                                                   show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the request as JSON.")] = False,
) -> None:
    """Make your key on this machine (encrypted under your passphrase) and a request to enrol it as NAME, signed with
    it. Hand the file to an admin (a policy owner, by default), who enrols it with `forgegov identity enrol FILE`;
    it holds no secret."""
    import json

    from forgegov.foundation.errors import AlreadyExists
    from forgegov.governance.identities import check_contact, check_name, request_enrolment

    ws = state(ctx).workspace()
    check_name(name)
    check_contact(contact)
    path = output or Path(f"{name}.enrolment.json")
    if path.exists():
        raise AlreadyExists(f"{path} already exists", hint="pass --output PATH")
    document = request_enrolment(ws, name, contact, passphrase_for(name, confirm=True))
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    emit(document, as_json, lambda out: out.print(
        f"key for {name} made, {document['payload']['key_id'][:16]}…; enrolment request written to {path}\n"
        f"next: an admin runs `forgegov identity enrol {path.name} --as ADMIN --reason ...`"))


@identity_app.command("enrol")
def enrol(
    ctx: typer.Context,
    request_file: Annotated[Path, typer.Argument(help="The member's enrolment request (`identity request`).",
                                                 show_default=False)],
    reason: Annotated[str, typer.Option(help="Why this person is enrolled (recorded in the audit log).")],
    actor: Annotated[str, typer.Option("--as", help="Who enrols them (signs the act; the policy decides who may: "
                                                    "by default a policy owner, and only a name the policy lists).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bind the key in a member's signed request to their name and contact, as a signed act the policy decides. Where
    the policy asks for a quorum (two policy owners, as shipped), each signs the same act; the last one's enrols."""
    from forgegov.app.cli.context import verbs_for

    ws = state(ctx).workspace()
    outcome = verbs_for(ws).enrol(ws, _request_document(request_file), reason, actor, passphrase_for(actor))
    acted(outcome, as_json, f"{outcome.target['name']} enrolled by {outcome.actor} with key "
                             f"{str(outcome.target.get('key_id'))[:16]}…")


def register(app: typer.Typer) -> None:
    app.add_typer(identity_app, name="identity")
