"""`forgegov reference build`: the reference model family (pre-, mid- and post-training checkpoints) built locally."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.output import PhaseBars, emit

reference_app = typer.Typer(help="The reference model family: three staged checkpoints of a tiny Llama-style "
                                 "model, built on this machine.", no_args_is_help=True)


@reference_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Folder to create; it must not exist or be empty.",
                                      show_default=False)],
    preset: Annotated[str, typer.Option("--preset", help="reference (4.2 M parameters, about six minutes), "
                                                         "small (the demo's, about two) or tiny (for tests, "
                                                         "seconds).")] = "reference",
    seed: Annotated[int, typer.Option("--seed", help="Seed for corpora splits, init and data order.")] = 1,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="CPU threads for torch (default: torch's choice). Weights are byte-identical for the "
                          "same seed, preset and thread count.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print reference.json's record as JSON.")] = False,
) -> None:
    """Build tokenizer, pre-training, mid-training and post-training (SFT) checkpoints into OUT, with the corpora
    they were trained on (JSONL) and reference.json (steps, losses, sanity evaluation, sha256 of every file).

    Nothing is downloaded: the text is Python's own documentation plus text forgegov generates. The build runs in
    a sibling folder that is renamed into place when it finishes, so a failed build leaves nothing.
    """
    from forgegov.foundation.errors import AlreadyExists, BadInput
    from forgegov.training.reference.model import PRESETS

    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}", hint=f"choose one of: {', '.join(sorted(PRESETS))}")
    if threads is not None and threads < 1:
        raise BadInput("--threads must be at least 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlreadyExists(f"{out} already exists and is not empty; the reference build needs a new folder",
                            hint="choose a new --out, or remove that folder first")
    # OpenMP threads that spin while waiting make a shared CPU several times slower; this only takes effect when
    # torch is not yet loaded, which is the case here (the CLI imports it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from forgegov.training.reference.build import build_reference
    from forgegov.training.reference.evaluate import TABLE_HEADER, table_rows

    with PhaseBars() as bars:
        record = build_reference(out, preset, seed, progress=bars.update, threads=threads)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        from rich.table import Table

        table = Table(*TABLE_HEADER, title=f"reference family ({preset}, seed {seed}): held-out sanity checks")
        for row in table_rows({"random-init": record["random_init"]["eval"],
                               **{stage: data["eval"] for stage, data in record["stages"].items()}}):
            table.add_row(*row)
        console.print(table)
        for stage, data in record["stages"].items():
            console.print(f"{stage}: {data['steps']} steps in {data['wall_s']:.0f} s, train loss "
                          f"{data['train_loss']:.3f} → {out / data['path']}")
        console.print(f"built {record['parameters']:,} parameters in {record['wall_s']:.0f} s; "
                      f"lineage and sha256 in {out / 'reference.json'}")

    emit(record, as_json, human)


@reference_app.command("register")
def register_family(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A `forgegov reference build` output folder.", show_default=False)],
    owner: Annotated[str, typer.Option("--owner", help="Identity that owns the registered assets.",
                                       show_default=False)],
    prefix: Annotated[str, typer.Option("--prefix", help="Asset names become PREFIX-<corpus> and "
                                                         "PREFIX-<stage>.")] = "ref",
    as_json: Annotated[bool, typer.Option("--json", help="Print the registered subjects as JSON.")] = False,
) -> None:
    """Register a built family: every corpus as a dataset (checked, like `dataset register`) and the three
    checkpoints with their lineage pre-training → mid-training → post-training."""
    from forgegov.app.cli.context import state
    from forgegov.app.cli.datasets import run_check
    from forgegov.training.reference.register import register_reference

    workspace = state(ctx).workspace()
    family = register_reference(workspace, folder, owner=owner, prefix=prefix)
    for subject in family.datasets:
        run_check(workspace, subject, owner, as_json)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        console.print(f"registered and checked {len(family.datasets)} datasets: {', '.join(family.datasets)}")
        console.print(f"registered checkpoints: {' → '.join(family.checkpoints)}")

    emit(family.to_dict(), as_json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
