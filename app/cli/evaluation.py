"""`forgegov eval run|show|list`: drift evaluations of a candidate against its base, as signed evidence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from forgegov.app.cli.context import passphrase_for, read, state
from forgegov.app.cli.jobs import announce
from forgegov.app.cli.output import PhaseBars, emit

eval_app = typer.Typer(help="Drift evaluation: a candidate and its base on the same items, decided by paired "
                            "non-inferiority against the margins policy states.", no_args_is_help=True)
_JSON = typer.Option("--json", help="Print the result as JSON.")


def print_metrics(console: Any, metrics: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("metric", "n", "base", "candidate", "difference", "interval", "margin", "power (needs n)",
                  "noise floor", "verdict")
    for name, m in metrics.items():
        noise = m["noise_floor"]
        floor = (f"{noise['flips']} flips" if "flips" in noise else f"±{noise['max_abs_difference']:.2g}")
        table.add_row(name, str(m["n"]), f"{m['base_mean']:.3f}", f"{m['candidate_mean']:.3f}",
                      f"{m['difference']:+.3f}", f"[{m['interval'][0]:+.3f}, {m['interval'][1]:+.3f}]",
                      f"−{m['margin']:g}", f"{m['power']:.2f} ({m['required']})", floor, m["verdict"])
    console.print(table)


@eval_app.command("run")
def run(
    ctx: typer.Context,
    candidate: Annotated[str, typer.Argument(help="The checkpoint to evaluate: checkpoint/NAME[@VERSION] or "
                                                  "sha256:<digest prefix>.", show_default=False)],
    suites: Annotated[list[str], typer.Option("--suite", help="A suite approved at the suite gate: suite/NAME[@VERSION]"
                                                              " (repeat for several; see docs/evaluation.md).",
                                              show_default=False)],
    actor: Annotated[str, typer.Option("--as", help="Identity running the evaluation (recorded with it).",
                                       show_default=False)],
    base: Annotated[str | None, typer.Option(help="The checkpoint to compare with (default: the candidate's "
                                                  "parent).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(help="Items per batch.")] = 32,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Ask the candidate and its base the suites' items with the same greedy decoding, compare them per metric
    (paired non-inferiority against the margins in policy data, Holm across metrics, a power check), and record the
    signed result in the audit log, where the promotion gate reads it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    workspace = state(ctx).workspace()
    with PhaseBars() as bars:
        if workspace.server_url:  # the server evaluates, as a job, and signs the result with the platform key
            from forgegov.app.member import run_evaluation as evaluate_remotely

            found = evaluate_remotely(workspace, candidate, suites, actor, passphrase_for(actor), base=base,
                                      batch_size=batch_size, progress=bars.update, on_start=announce(actor))
        else:
            from forgegov.app.evaluate import evaluate

            found = evaluate(workspace, candidate, suites, actor, passphrase_for(actor), base=base,
                             batch_size=batch_size, progress=bars.update).summary()

    def human(console: Any) -> None:
        console.print(f"evaluation {found['id']}: {found['candidate']['label']} against {found['base']['label']} "
                      f"(audit entry {found['seq']}, α {found['design']['alpha']}, power {found['design']['power']})")
        print_metrics(console, found["metrics"])

    emit(found, as_json, human)


@eval_app.command("list")
def list_results(
    ctx: typer.Context,
    candidate: Annotated[str | None, typer.Option(help="Only evaluations of this checkpoint.",
                                                  show_default=False)] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Every evaluation the audit log holds, each re-verified, oldest first."""
    found = read(ctx, "eval.list", candidate=candidate)

    def human(console: Any) -> None:
        from rich.table import Table

        table = Table("id", "time", "candidate", "base", "metrics")
        for item in found:
            verdicts = ", ".join(f"{name} {m['verdict']}" for name, m in item["metrics"].items())
            table.add_row(item["id"][:8], item["time"], item["candidate"]["label"], item["base"]["label"], verdicts)
        console.print(table)

    emit(found, as_json, human)


@eval_app.command("show")
def show(
    ctx: typer.Context,
    evaluation: Annotated[str, typer.Argument(help="Evaluation id (or its first 4+ characters).", show_default=False)],
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """One evaluation, re-verified: per metric the paired difference, its interval, margin, power and verdict, and
    the items that flipped."""
    found = read(ctx, "eval.show", evaluation=evaluation)

    def human(console: Any) -> None:
        console.print(f"evaluation {found['id']} by {found['actor']} at {found['time']} (audit entry {found['seq']})")
        console.print(f"  candidate {found['candidate']['label']} ({found['candidate']['digest']})")
        console.print(f"  base      {found['base']['label']} ({found['base']['digest']})")
        console.print(f"  policy {found['policy']['revision']} ({found['policy']['digest']})")
        print_metrics(console, found["metrics"])
        for m in found["statement"]["predicate"]["metrics"]:
            if m["flipped_to_fail"] or m["flipped_to_pass"]:
                console.print(f"  {m['metric']}: {len(m['flipped_to_fail'])} items pass → fail "
                              f"({', '.join(m['flipped_to_fail'][:10])}{' …' if len(m['flipped_to_fail']) > 10 else ''}),"
                              f" {len(m['flipped_to_pass'])} fail → pass")

    emit(found, as_json, human)


@eval_app.command("report")
def report(
    ctx: typer.Context,
    evaluation: Annotated[str, typer.Argument(help="Evaluation id (or its first 4+ characters).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The HTML page to write; its JSON goes beside it (.json).",
                                      show_default=False)],
    inspect_log: Annotated[Path | None, typer.Option("--inspect-log", help="Also write an Inspect eval log "
                                                                           "(.eval) for `inspect view`.",
                                                     show_default=False)] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Write a verified evaluation as a self-contained HTML drift report (each metric's difference with its interval
    against the margin, the noise floor, the flipped items with both outputs, the verdicts) and its JSON."""
    from forgegov.evaluation.report import write_inspect_log, write_report
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.evaluations import find_result, read_items

    workspace = state(ctx).workspace()
    with read_session(workspace.database_url) as session:
        record = find_result(workspace, session, evaluation)
    items = read_items(workspace, record)
    page, data = write_report(record, items, out)
    found = {"evaluation": record.id, "html": str(page), "json": str(data),
             "inspect_log": str(write_inspect_log(record, items, inspect_log)) if inspect_log else None}

    def human(console: Any) -> None:
        console.print(f"drift report of evaluation {record.id}: {page} (and {data})")
        if found["inspect_log"]:
            console.print(f"Inspect log: {found['inspect_log']} (open it with `inspect view`)")

    emit(found, as_json, human)


@eval_app.command("import-xstest")
def import_xstest(
    csv_file: Annotated[Path, typer.Argument(help="Your copy of XSTest's xstest_prompts.csv.", show_default=False)],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the converted dataset.", show_default=False)],
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Convert XSTest's prompt file into an eval dataset (JSONL, with `expect` = comply | refuse), to register with
    `forgegov dataset register OUT_DIR --name xstest --owner NAME --kind eval --classification public` and use with
    evaluation/suites/xstest.toml."""
    from forgegov.evaluation.xstest import read_xstest, write_xstest

    written = write_xstest(csv_file, out_dir)
    records = read_xstest(csv_file)
    found = {"file": str(written), "records": len(records),
             "refuse": sum(r["expect"] == "refuse" for r in records),
             "comply": sum(r["expect"] == "comply" for r in records)}

    def human(console: Any) -> None:
        console.print(f"{found['file']}: {found['records']} prompts ({found['refuse']} to refuse, {found['comply']} "
                      f"to answer); register it with `forgegov dataset register {out_dir} --name xstest --owner NAME "
                      "--kind eval --classification public`")

    emit(found, as_json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
