"""`forgegov dataset check`, and the check that `dataset register` runs: data-quality evidence for the dataset gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import state
from forgegov.app.cli.output import emit, stderr
from forgegov.foundation.config import Workspace


def run_check(workspace: Workspace, ref: str, actor: str, quiet: bool):  # type: ignore[no-untyped-def]
    """Run the check as `actor`, who signs its result."""
    from forgegov.app.cli.context import passphrase_for
    from forgegov.governance.evidence.data_quality import check_dataset
    from forgegov.governance.identities import unlock

    signer = unlock(workspace, actor, passphrase_for(actor))
    if quiet:
        return check_dataset(workspace, ref, signer=signer)
    with stderr.status("checking", spinner="dots") as status:
        return check_dataset(workspace, ref, signer=signer, progress=status.update)


def register_checked(workspace: Workspace, path, name: str, owner: str, spec, quiet: bool):  # type: ignore[no-untyped-def]
    """Register a dataset and record its first check, signed by its owner, as one step."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from forgegov.app.cli.context import passphrase_for
    from forgegov.foundation.manifest import total_size
    from forgegov.governance.evidence.data_quality import register_and_check
    from forgegov.governance.identities import unlock
    from forgegov.governance.registry import label

    signer = unlock(workspace, owner, passphrase_for(owner))
    with Progress(TextColumn("hashing {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=stderr, transient=True, disable=quiet) as progress:
        task = progress.add_task(path.name, total=total_size(path) if path.exists() else None)
        asset, outcome = register_and_check(workspace, path, name, owner, spec, signer=signer,
                                            hashing=lambda n: progress.advance(task, n))
    stderr.print(f"registered {label(asset)}  {asset.digest}  owner {owner}")
    return asset, outcome


def print_check(outcome, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    def human(out) -> None:  # type: ignore[no-untyped-def]
        s = outcome.summary
        out.print(f"checked {outcome.dataset}: {s['records']} records, suite {s['suite']} v{s['suite_version']}, "
                  f"result {outcome.result_digest} (audit entry {outcome.audit_seq})")
        for failure in s["failed"]:
            where = ", ".join(failure["sample_locations"]) or "no sample"
            out.print(f"  {failure['check']}: {failure['expectation']} on {failure['column']} — "
                      f"{failure['unexpected_count']} records ({failure['unexpected_percent']:.2f}%), e.g. {where}")
        for category in ("pii", "secrets"):
            for name, finding in s[category]["findings"].items():
                out.print(f"  {category} {name}: {finding['count']} in {finding['records']} records, e.g. "
                          f"{', '.join(finding['sample_locations'])}")
        for other in s["contamination"]["compared"]:
            if other["contaminated"]:
                out.print(f"  contamination with {other['dataset']}: {other['contaminated']} of {other['items']} "
                          f"eval items, e.g. {', '.join(other['sample_locations'])}")
        for other in s["contamination"]["unchecked"]:
            out.print(f"  contamination with {other['dataset']} not checked: {other['reason']}")
        if not s["failed"] and not s["contamination"]["unchecked"]:
            out.print("  no findings")
        out.print("  the dataset gate decides on this check: `forgegov request "
                  f"{outcome.dataset} --as NAME`")

    emit(outcome.to_dict(), as_json, human)


def check(ctx: typer.Context,
          subject: Annotated[str, typer.Argument(help="dataset/name[@version] or sha256:<digest prefix>.",
                                                 show_default=False)],
          actor: Annotated[str, typer.Option("--as", help="Identity running the check (signs its result).",
                                             show_default=False)],
          as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Check SUBJECT's data quality again: re-verify its bytes, run its kind's suite, PII/secret scans and the
    train/eval contamination check against every registered dataset on the other side.

    The full result is stored, its digest goes into the audit log with your signature over it, and the dataset gate
    decides on every check of the same bytes (a finding in any of them stands until a newer suite version checks
    again). Re-run it after registering new eval or training data.
    """
    print_check(run_check(state(ctx).workspace(), subject, actor, as_json), as_json)


def fetch(ctx: typer.Context,
          subject: Annotated[str, typer.Argument(help="dataset/name[@version] or sha256:<digest prefix>.",
                                                 show_default=False)],
          output: Annotated[Path, typer.Option("--output", "-o", help="A new folder for the files.")],
          actor: Annotated[Optional[str], typer.Option("--as", help="Member asking (default: [server] member).",
                                                       show_default=False)] = None,
          reason: Annotated[str, typer.Option(help="Why you read it (signed, and logged with the fetch).")]
          = "to read it before deciding",
          as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """In a member's workspace: fetch SUBJECT's files from the team server's artifact store into a new folder, each
    verified against the manifest and the manifest against the dataset's digest (read what you are asked to
    approve, byte for byte). The fetch is a signed act the policy decides (who may read data of which
    classification), and the log records who fetched what, and why."""
    from forgegov.app.cli.context import member_as, passphrase_for
    from forgegov.app.member import fetch_dataset

    workspace = state(ctx).workspace()
    name = member_as(workspace, actor)
    result = fetch_dataset(workspace, subject, output, name, passphrase_for(name), reason)
    emit(result, as_json, lambda out: out.print(f"{result['subject']}: {result['files']} files in {result['path']}, "
                                                f"verified against {result['digest']}"))
