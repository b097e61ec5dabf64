"""`forgegov dataset|reward|checkpoint|run register`, `forgegov show`, `forgegov list`."""


from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import passphrase_for, read, state
from forgegov.app.cli.output import emit, stderr
from forgegov.foundation.vocabulary import (
    AssetKind,
    AssetState,
    CheckpointStage,
    Classification,
    DatasetKind,
    ReleaseStage,
)


def asset_public(asset) -> dict:  # type: ignore[no-untyped-def]
    from forgegov.governance.history import asset_record

    return asset_record(asset)


def _register(ctx: typer.Context, kind: AssetKind, path: Path, name: str, owner: str,
              stage: CheckpointStage | None, as_json: bool,
              parent: str | None = None):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from forgegov.foundation.manifest import total_size
    from forgegov.governance.registry import label, register_asset

    ws = state(ctx).workspace()
    passphrase = passphrase_for(owner) if ws.server_url else ""  # asked before the progress bar takes the terminal
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=stderr, transient=True, disable=as_json) as progress:
        total = total_size(path) if path.exists() else None
        if ws.server_url:
            # A member's files go to the team's store; the server registers them as the signer's (`--owner`).
            from forgegov.app import member

            task = progress.add_task(f"uploading {path.name}", total=total)
            answer = member.register_asset(ws, kind, path, name, owner, passphrase, stage=stage,
                                           parent=parent, progress=lambda n: progress.advance(task, n))
            emit(answer, as_json, lambda out: out.print(f"registered {answer['subject']}  {answer['digest']}  "
                                                        f"owner {owner} (audit entry {answer['audit_seq']})"))
            return answer
        task = progress.add_task(f"hashing {path.name}", total=total)
        asset = register_asset(ws, kind, path, name, owner, stage=stage, parent=parent,
                               progress=lambda n: progress.advance(task, n))
    emit(asset_public(asset), as_json,
         lambda out: out.print(f"registered {label(asset)}  {asset.digest}  owner {owner}"))
    return asset


def _owner_option() -> typer.models.OptionInfo:
    return typer.Option("--owner", help="Identity that owns the asset.")


def _dataset_commands(group: typer.Typer, kind: AssetKind) -> None:
    @group.command("register")
    def register_dataset_cmd(
        ctx: typer.Context, path: Path,
        name: Annotated[str, typer.Option("--name", help="Dataset name.")],
        owner: Annotated[str, _owner_option()],
        data_kind: Annotated[DatasetKind, typer.Option("--kind", help="What the data is for.")],
        classification: Annotated[Classification, typer.Option("--classification", help="Whose data it is.")],
        max_line_bytes: Annotated[int, typer.Option(help="Refuse any single line longer than this.")] = 8 << 20,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Register the dataset at PATH and check it: a .jsonl file or folder of them, a folder of .txt files, a
        .parquet file or folder of them, or a `datasets` save_to_disk folder.

        Every file is hashed, decoded and parsed in one pass; the manifest (path, size, SHA-256 and record count
        per file) is the dataset's identity. Truncated or invalid JSONL, invalid UTF-8, binary data, over-long
        lines, empty datasets and links out of the folder are refused and nothing is registered. The data-quality
        check (what `forgegov dataset check` runs, signed by the owner) is recorded in the same step as the
        registration, so a dataset is never registered without it; its findings are evidence for the dataset gate,
        not a reason to refuse registration.
        """
        from forgegov.app.cli.datasets import print_check, register_checked
        from forgegov.governance.asset_kinds import DatasetSpec
        from forgegov.governance.datasets.intake import IntakeLimits

        spec = DatasetSpec(data_kind, classification, IntakeLimits(max_line_bytes=max_line_bytes))
        workspace = state(ctx).workspace()
        if workspace.server_url:
            # A member: the files go to the server's store, the server checks the bytes it holds, the owner signs
            # the check it computed.
            from forgegov.app.member import register_dataset

            with stderr.status("registering", spinner="dots") as status:
                outcome = register_dataset(workspace, path, name, spec, owner, passphrase_for(owner),
                                           progress=status.update)
            print_check(outcome, as_json)
            return
        asset, outcome = register_checked(workspace, path, name, owner, spec, as_json)
        if as_json:
            emit({**asset_public(asset), "check": outcome.to_dict()}, as_json, lambda out: None)
        else:
            print_check(outcome, as_json)

    from forgegov.app.cli.datasets import check, fetch

    group.command("check")(check)
    group.command("fetch")(fetch)


def _checkpoint_commands(group: typer.Typer, kind: AssetKind) -> None:
    @group.command("register")
    def register_checkpoint(
        ctx: typer.Context, path: Path,
        name: Annotated[str, typer.Option("--name", help="Checkpoint name.")],
        stage: Annotated[CheckpointStage, typer.Option("--stage", help="Training stage it comes from.")],
        owner: Annotated[str, _owner_option()],
        parent: Annotated[Optional[str], typer.Option(
            "--parent", help="The registered checkpoint it was trained from (SUBJECT).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Register the Hugging Face checkpoint folder at PATH under its content digest (immutable; new bytes =
        new version).

        The folder must hold config.json and safetensors weights; pickled files (.bin, .pt, .pth, .ckpt, .pkl,
        ... or any file whose bytes are a pickle or torch.save's zip) are refused, since loading them runs code.
        """
        _register(ctx, kind, path, name, owner, stage, as_json, parent=parent)


def _plain_commands(group: typer.Typer, kind: AssetKind) -> None:
    @group.command("register")
    def register_asset_cmd(
        ctx: typer.Context, path: Path,
        name: Annotated[str, typer.Option("--name", help=f"{kind.value.capitalize()} name.")],
        owner: Annotated[str, _owner_option()],
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Register the files at PATH under their content digest (immutable; new bytes = new version)."""
        _register(ctx, kind, path, name, owner, None, as_json)


# The commands of each kind's group: what registration asks for follows `governance.asset_kinds.KINDS`.
_COMMANDS = {AssetKind.DATASET: _dataset_commands, AssetKind.CHECKPOINT: _checkpoint_commands,
             AssetKind.REWARD: _plain_commands, AssetKind.SUITE: _plain_commands,
             AssetKind.ENVIRONMENT: _plain_commands}


def make_group(kind: AssetKind, help_text: str) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True)
    _COMMANDS[kind](group, kind)
    return group


def show(ctx: typer.Context,
         subject: Annotated[str, typer.Argument(help="[kind/]name[@version] or sha256:<digest prefix>.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Show an asset: its record, files manifest, gate requests, approvals, decisions and training run."""
    data = read(ctx, "show", subject=subject)

    def human(out) -> None:  # type: ignore[no-untyped-def]
        a = data["asset"]
        out.print(f"{a['kind']}/{a['name']}@{a['version']}  {a['digest']}")
        out.print(f"  owner {a['owner']}   state {a['state']}" + (f"   stage {a['stage']}" if a["stage"] else "")
                  + (f"   release {a['release']}" if a["release"] else ""))
        if a["parent_digest"]:
            out.print(f"  parent {data['parent']}  {a['parent_digest']}")
        files = f"files {len(data['manifest']['files'])}   " if "files" in data["manifest"] else ""
        out.print(f"  {files}registered {a['registered_at']} by {a['registered_by']}")
        for request in data["requests"]:
            target = f" → {request['target']}" if request["target"] else ""
            roles = ", ".join(request["requester_roles"]) or "no role"
            comment = f": {request['comment']!r}" if request["comment"] else ""
            out.print(f"  request {request['id']} ({request['gate']}{target}) by {request['requested_by']} ({roles}) "
                      f"at {request['requested_at']}: {request['status']}{comment}")
            for approval in request["approvals"]:
                roles = ", ".join(approval["roles"]) or "no role"
                comment = f": {approval['comment']!r}" if approval["comment"] else ""
                out.print(f"    {approval['verdict']} by {approval['approver']} ({roles}) at "
                          f"{approval['signed_at']}{comment}")
        for decision in data["decisions"]:
            out.print(f"  decision {decision['id']}: {decision['action']} by {decision['actor']} → "
                      f"{decision['result']} (policy {decision['policy_revision']})")
            for reason in decision["reasons"] + decision["missing"]:
                out.print(f"    {reason}")
        if data["training_run"]:
            run = data["training_run"]
            out.print(f"  training run {run['run_id']} ({run['status']}): `forgegov run show {run['run_id']}` for "
                      "its lineage")

    emit(data, as_json, human)


def list_(ctx: typer.Context,
          kind: Annotated[Optional[AssetKind], typer.Argument(help="dataset, reward, checkpoint or run.")] = None,
          state_filter: Annotated[Optional[AssetState], typer.Option(
              "--state", help="Only assets in this state; pending also matches an asset with any open request (a "
                              "checkpoint awaiting promotion).", show_default=False)] = None,
          release: Annotated[Optional[ReleaseStage], typer.Option(help="Only checkpoints at this release stage.",
                                                                  show_default=False)] = None,
          stage: Annotated[Optional[CheckpointStage], typer.Option(help="Only checkpoints of this training stage.",
                                                                   show_default=False)] = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """List registered assets, optionally of one KIND, with their open requests."""
    from rich import box
    from rich.table import Table

    rows = read(ctx, "list", **{name: value.value for name, value in (("kind", kind), ("state", state_filter),
                                                                       ("release", release), ("stage", stage))
                                 if value is not None})

    def human(out) -> None:  # type: ignore[no-untyped-def]
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("asset", no_wrap=True)
        for column in ("digest", "owner", "state", "stage", "release", "open request"):
            table.add_column(column)
        for r in rows:
            opened = ", ".join(f"{o['gate']}" + (f" → {o['target']}" if o["target"] else "") + f" by {o['requested_by']}"
                               for o in r["open_requests"])
            table.add_row(f"{r['kind']}/{r['name']}@{r['version']}", r["digest"][7:19], r["owner"], r["state"],
                          r["stage"] or "", r["release"] or "", opened)
        out.print(table)

    emit(rows, as_json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(make_group(AssetKind.DATASET, "Datasets."), name="dataset")
    app.add_typer(make_group(AssetKind.REWARD, "Reward functions."), name="reward")
    app.add_typer(make_group(AssetKind.ENVIRONMENT, "Multi-turn environments for grpo runs: a simulator class run in "
                                                    "the sandbox (docs/environments.md)."), name="environment")
    app.add_typer(make_group(AssetKind.CHECKPOINT, "Model checkpoints."), name="checkpoint")
    app.add_typer(make_group(AssetKind.SUITE, "Evaluation suites: a TOML file whose datasets are resolved to exact "
                                              "digests when registered (docs/evaluation.md)."), name="suite")
    # Run specs are registered by `forgegov run start` (app/cli/runs.py), which validates the recipe first.
    app.command("show")(show)
    app.command("list")(list_)


