"""`forgegov policy test|check|show|update`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import passphrase_for, state
from forgegov.app.cli.output import emit, stderr

policy_app = typer.Typer(help="The policy bundle (OPA/Rego) that decides every gate.", no_args_is_help=True)


def _bundle_dir(ctx: typer.Context, path: Path | None) -> Path:
    if path is not None:
        return path
    from forgegov.foundation.errors import WorkspaceError
    from forgegov.governance.policy import packaged_bundle

    try:
        return state(ctx).workspace().policy_dir
    except WorkspaceError:
        return packaged_bundle()


@policy_app.command("test")
def test(ctx: typer.Context,
         path: Annotated[Optional[Path], typer.Argument(help="Bundle folder (default: the workspace's pinned "
                                                             "bundle, else the shipped one).")] = None) -> None:
    """Run the bundle's Rego tests with `opa test`."""
    from forgegov.governance.opa.binary import find_opa
    from forgegov.governance.policy import run_opa

    bundle = _bundle_dir(ctx, path)
    done = run_opa(find_opa(), ["test", "--bundle", str(bundle), "-v"])
    print(done.stdout, end="")
    stderr.print(done.stderr, end="")
    raise typer.Exit(0 if done.returncode == 0 else 3)


@policy_app.command("check")
def check(ctx: typer.Context,
          path: Annotated[Optional[Path], typer.Argument(help="Bundle folder.")] = None) -> None:
    """Check the bundle with `opa check --strict`."""
    from forgegov.governance.opa.binary import find_opa
    from forgegov.governance.policy import check_bundle

    bundle = _bundle_dir(ctx, path)
    check_bundle(find_opa(), bundle)
    stderr.print(f"{bundle}: opa check --strict passed")


@policy_app.command("show")
def show(ctx: typer.Context,
         as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Show the adopted bundle (revision, digest, who adopted it) and whether the files on disk still match it."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.policy import active_activation, bundle_info

    ws = state(ctx).workspace()
    with read_session(ws.database_url) as session:
        active = active_activation(session)
    on_disk = bundle_info(ws.policy_dir)
    data = {"revision": active.revision, "digest": active.digest, "activated_by": active.activated_by,
            "activated_at": active.activated_at, "on_disk_digest": on_disk.digest,
            "matches": on_disk.digest == active.digest, "opa": ws.opa.mode.value}
    emit(data, as_json, lambda out: out.print(
        f"policy {active.revision}  {active.digest}\n  adopted {active.activated_at} by {active.activated_by}\n"
        f"  files on disk {'match' if data['matches'] else 'DO NOT MATCH'}; OPA mode {data['opa']}"))


@policy_app.command("update")
def update(ctx: typer.Context,
           source: Annotated[Path, typer.Option("--from", help="Reviewed bundle folder to adopt.")],
           actor: Annotated[str, typer.Option("--as", help="Identity adopting it (signs the activation).")],
           as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Adopt a reviewed policy bundle: `opa check --strict` must pass; the activation is signed and logged."""
    from forgegov.governance.identities import unlock
    from forgegov.governance.policy_adoption import adopt_bundle

    ws = state(ctx).workspace()
    activation = adopt_bundle(ws, source, unlock(ws, actor, passphrase_for(actor)))
    emit({"revision": activation.revision, "digest": activation.digest, "activated_by": activation.activated_by},
         as_json, lambda out: out.print(f"adopted policy {activation.revision} ({activation.digest})"))


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
