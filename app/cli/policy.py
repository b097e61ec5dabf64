"""`forgegov policy test|check|show|export|propose`.

A policy changes only through the policy gate: `propose` registers a reviewed bundle and requests it; policy owners
answer with `forgegov approve|reject policy/NAME@VERSION`; the approval that meets the quorum puts it in force.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer

from forgegov.app.cli.context import passphrase_for, state
from forgegov.app.cli.output import emit, stderr

policy_app = typer.Typer(help="The policy (OPA/Rego bundle and pinned OPA build) that decides every gate.",
                         no_args_is_help=True)
_JSON = typer.Option("--json", help="Print the result as JSON.")
T = TypeVar("T")


def _with_bundle_dir(ctx: typer.Context, path: Path | None, use: Callable[[Path], T]) -> T:
    """PATH, else the policy in force in the workspace (written to a private temporary folder), else the shipped
    bundle."""
    if path is not None:
        return use(path)
    from forgegov.foundation.errors import WorkspaceError
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.policy import packaged_bundle, policy_in_force, stored_policy

    try:
        ws = state(ctx).workspace()
    except WorkspaceError:
        return use(packaged_bundle())
    with read_session(ws.database_url) as session:
        bundle, _decider = stored_policy(session, policy_in_force(session).digest)
    with tempfile.TemporaryDirectory(prefix="forgegov-policy-") as folder:
        bundle.write(Path(folder))
        return use(Path(folder))


@policy_app.command("test")
def test(ctx: typer.Context,
         path: Annotated[Optional[Path], typer.Argument(help="Bundle folder (default: the workspace's policy in "
                                                             "force, else the shipped one).")] = None,
         verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every test, not only failures and the "
                                                                      "count.")] = False) -> None:
    """Run the bundle's Rego tests with `opa test`: failures and a PASS/FAIL count, or every test with -v."""
    from forgegov.governance.opa.binary import find_opa
    from forgegov.governance.policy import run_opa

    listing = ["-v"] if verbose else []
    done = _with_bundle_dir(ctx, path, lambda folder: run_opa(find_opa(), ["test", "--bundle", str(folder), *listing]))
    print(done.stdout, end="")
    stderr.print(done.stderr, end="")
    raise typer.Exit(0 if done.returncode == 0 else 3)


@policy_app.command("check")
def check(ctx: typer.Context,
          path: Annotated[Optional[Path], typer.Argument(help="Bundle folder.")] = None) -> None:
    """Check the bundle with `opa check --strict`."""
    from forgegov.governance.policy import OpaBuild, read_bundle

    def run(folder: Path) -> str:
        bundle = read_bundle(folder)
        OpaBuild.configured(None).check(bundle)
        return bundle.revision

    revision = _with_bundle_dir(ctx, path, run)
    stderr.print(f"policy {revision}: opa check --strict passed")


@policy_app.command("show")
def show(ctx: typer.Context, as_json: Annotated[bool, _JSON] = False) -> None:
    """Show the policy in force (checked against the audit log): revision, digest, pinned OPA build, and the
    decision that put it in force."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.policy import policy_in_force, stored_policy

    ws = state(ctx).workspace()
    with read_session(ws.database_url) as session:
        active = policy_in_force(session)
        bundle, decider = stored_policy(session, active.digest)
    data = {"revision": active.revision, "digest": active.digest, "activated_by": active.activated_by,
            "activated_at": active.activated_at, "decision_id": active.decision_id, "audit_seq": active.audit_seq,
            "decider": decider.to_document(), "files": len(bundle.files), "opa": ws.opa.mode.value}
    emit(data, as_json, lambda out: out.print(
        f"policy {active.revision}  {active.digest}\n"
        f"  in force since {active.activated_at}, by {active.activated_by}"
        + (f" (decision {active.decision_id})" if active.decision_id else " (the workspace's first policy)")
        + f"\n  decided by OPA {decider.opa_version} sha256:{decider.sha256}; OPA mode {data['opa']}"))


@policy_app.command("export")
def export(ctx: typer.Context,
           to: Annotated[Path, typer.Option("--to", help="A new or empty folder to write the bundle into.")]) -> None:
    """Write the policy in force as a bundle folder, to edit and propose again."""
    from forgegov.foundation.errors import BadInput
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.policy import policy_in_force, stored_policy

    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise BadInput(f"{to} exists and is not an empty folder", hint="give a new folder")
    ws = state(ctx).workspace()
    with read_session(ws.database_url) as session:
        bundle, _decider = stored_policy(session, policy_in_force(session).digest)
    bundle.write(to)
    stderr.print(f"wrote policy {bundle.revision} ({len(bundle.files)} files) to {to}")


@policy_app.command("diff")
def diff(ctx: typer.Context,
         proposal: Annotated[str, typer.Argument(help="A registered policy: policy/NAME[@VERSION] or sha256:<prefix>.",
                                                 show_default=False)]) -> None:
    """The text a policy approval changes: a unified diff from the policy in force to PROPOSAL, file by file, both
    read from their stored, re-hashed bundles (what `forgegov review` summarises)."""
    import difflib

    from forgegov.app.cli.output import printable
    from forgegov.foundation.store.db import read_session
    from forgegov.foundation.vocabulary import AssetKind
    from forgegov.governance.policy import policy_in_force, stored_policy
    from forgegov.governance.registry import resolve

    ws = state(ctx).workspace()
    with read_session(ws.database_url) as session:
        proposed, _ = stored_policy(session, resolve(session, proposal, AssetKind.POLICY).digest)
        in_force = policy_in_force(session)
        current, _ = stored_policy(session, in_force.digest)
    for path in sorted(set(current.files) | set(proposed.files)):
        before, after = current.files.get(path), proposed.files.get(path)
        if before == after:
            continue
        lines = [[line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                  for line in (data or b"").decode("utf-8", errors="replace").splitlines(keepends=True)]
                 for data in (before, after)]
        print(printable("".join(difflib.unified_diff(
            lines[0], lines[1], fromfile=f"{in_force.revision}/{path}" if before is not None else "/dev/null",
            tofile=f"{proposed.revision}/{path}" if after is not None else "/dev/null"))), end="")


@policy_app.command("propose")
def propose(ctx: typer.Context,
            source: Annotated[Path, typer.Option("--from", help="Reviewed bundle folder to propose.")],
            actor: Annotated[str, typer.Option("--as", help="Policy owner proposing it (signs the request).")],
            name: Annotated[str, typer.Option("--name", help="Policy name; each proposal is its next version.")]
            = "policy",
            comment: Annotated[str, typer.Option(help="Recorded with the signed request.")] = "",
            as_json: Annotated[bool, _JSON] = False) -> None:
    """Register a bundle (it must pass `opa check --strict`; the OPA build that checks it, this machine's or the team
    server's, is pinned with it) and request its adoption through the policy gate, which the policy in force
    decides."""
    from forgegov.app.cli.context import verbs_for
    from forgegov.app.cli.gates import decided, print_outcome
    from forgegov.foundation.vocabulary import AssetKind
    from forgegov.governance.registry import label, register_asset

    ws = state(ctx).workspace()
    passphrase = passphrase_for(actor)
    if ws.server_url:
        # A member's bundle goes to the team's store; the server checks and registers it (`opa check --strict`,
        # its own OPA build pinned with it), then the request is signed here and decided there.
        from forgegov.app import member

        registered = member.register_asset(ws, AssetKind.POLICY, source, name, actor, passphrase)
        subject, digest = registered["subject"], registered["digest"]
    else:
        asset = register_asset(ws, AssetKind.POLICY, source, name, actor)
        subject, digest = label(asset), asset.digest
    if not as_json:
        stderr.print(f"registered {subject} ({digest})")
    with decided(as_json, ws):
        # Asked by its whole digest: a member signs a request on the very bundle sent, whatever a server says.
        outcome = verbs_for(ws).request(ws, digest, actor, passphrase, comment=comment)
    print_outcome(outcome, as_json, ws)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
