"""`forgegov run start|list|show|verify`: governed training runs from a recipe file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from forgegov.app.cli.context import member_as, passphrase_for, read, state
from forgegov.app.cli.jobs import announce
from forgegov.app.cli.output import PhaseBars, emit

run_app = typer.Typer(help="Training runs: a recipe passes the run gate, then trains on approved inputs only.",
                      no_args_is_help=True)
_JSON = typer.Option("--json", help="Print the result as JSON.")
_RUN = typer.Argument(help="The run: run/NAME[@VERSION] (the recipe's name), a run id, or sha256:<digest prefix>.",
                      show_default=False)


@run_app.command("start")
def start(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML file (see docs/training.md).", show_default=False)],
    actor: Annotated[str, typer.Option("--as", help="Identity starting the run (signs the gate request).",
                                       show_default=False)],
    comment: Annotated[str, typer.Option(help="Recorded with the signed run request.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ask the run gate what it would decide, registering, "
                                                           "signing and logging nothing.")] = False,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Register RECIPE as a run spec, ask the run gate, and train once it has approved.

    The first call opens the gate request; while approvals are missing it says which (exit 0, nothing trained).
    Once an ML lead has approved (`forgegov approve run/NAME --as LEAD`), the same command trains on the base
    checkpoint and datasets the gate approved, by digest, and registers the output as a candidate checkpoint with
    its lineage and signed provenance. After a crash, the same command resumes from the last saved step.
    """
    if dry_run:
        _dry_run(ctx, recipe, actor, as_json)
        return
    from forgegov.app.cli.gates import decided, holders_line, holders_of
    from forgegov.foundation.vocabulary import Gate

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see `reference build`: spinning OpenMP threads on a busy CPU
    workspace = state(ctx).workspace()
    with decided(as_json, workspace), PhaseBars() as bars:
        if workspace.server_url:  # the server trains, as a job, and signs its provenance
            from forgegov.app import member

            outcome = member.start_run(workspace, recipe, actor, lambda: passphrase_for(actor), comment=comment,
                                       progress=bars.update, on_start=announce(actor))
        else:
            from forgegov.app.run_start import start_run

            outcome = start_run(workspace, recipe, actor, lambda: passphrase_for(actor), comment=comment,
                                progress=bars.update)

    if outcome.worker:
        return  # the main process of the launch reports the run

    def human(console) -> None:  # type: ignore[no-untyped-def]
        if outcome.trained is None:
            console.print(f"{outcome.run}: run gate {outcome.state}; not started")
            for item in outcome.missing:
                console.print(f"  still required: {item}")
            if outcome.missing:
                console.print(f"  role holders: {holders_line(holders_of(workspace, Gate.RUN))}")
            console.print(f"  once approved, run `forgegov run start {recipe} --as {actor}` again")
            return
        done = outcome.trained
        resumed = f", resumed from step {done.resumed_from_step}" if done.resumed_from_step else ""
        console.print(f"{outcome.run}: run {done.run_id} completed (attempt {done.attempts}{resumed})")
        _print_mixture(console, done.realised)
        console.print(f"candidate {done.candidate} ({done.candidate_digest})")
        console.print(f"signed provenance in {done.provenance}")

    emit(outcome.to_dict(), as_json, human)


def _dry_run(ctx: typer.Context, recipe: Path, actor: str, as_json: bool) -> None:
    from forgegov.app.cli.gates import holders_line, holders_of
    from forgegov.app.cli.review import render
    from forgegov.foundation.vocabulary import Gate
    from forgegov.governance.actions import policy_engine
    from forgegov.governance.dry_run import dry_run

    workspace = state(ctx).workspace()
    with policy_engine(workspace) as engine:
        seen = dry_run(workspace, engine, recipe, actor)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        known = f"already registered, {seen.state}" if seen.registered else "not registered"
        verdict = {"allow": "would be allowed", "pending": "would be recorded, pending", "deny": "would be denied"}
        console.print(f"dry run: {seen.run} ({known}): a run-gate request by {actor} {verdict[seen.result]}")
        for reason in seen.reasons:
            console.print(f"  denied: {reason}")
        for item in seen.missing:
            console.print(f"  still required: {item}")
        if seen.reasons or seen.missing:
            console.print(f"  role holders: {holders_line(holders_of(workspace, Gate.RUN))}")
        console.print("evidence (as the policy would receive it):")
        render(console, seen.evidence)
        console.print("nothing was registered, signed or logged")

    emit(seen.to_dict(), as_json, human)
    if seen.result == "deny":
        raise typer.Exit(3)  # what the gate would do: a script can stop on it as on a real denial


def _print_mixture(console, realised: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table("source", "role", "planned share", "tokens", "realised share",
                  title=f"mixture: {realised['total_tokens']:,} tokens trained on")
    for source in realised["sources"]:
        table.add_row(source["label"], source["role"], f"{source['planned_share']:.1%}", f"{source['tokens']:,}",
                      f"{source['realised_share']:.1%}")
    console.print(table)


@run_app.command("list")
def list_runs(ctx: typer.Context, as_json: Annotated[bool, _JSON] = False) -> None:
    """Every training run, newest first."""
    records = read(ctx, "run.list")

    def human(console) -> None:  # type: ignore[no-untyped-def]
        from rich.table import Table

        table = Table("run id", "run", "status", "attempts", "started", "candidate")
        for item in records:
            table.add_row(item["run_id"], item["run"], item["status"], str(item["attempts"]), item["started_at"],
                          item["candidate"] or "")
        console.print(table)

    emit(records, as_json, human)


@run_app.command("show")
def show(ctx: typer.Context, run: Annotated[str, _RUN], as_json: Annotated[bool, _JSON] = False) -> None:
    """A run's plan (what the gate approved, by digest), status, realised mixture and lineage."""
    found = read(ctx, "run.show", run=run)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        console.print(f"{found['run']}: run {found['run_id']} {found['status']} (attempts {found['attempts']}, "
                      f"started {found['started_at']} by {found['started_by']})")
        plan = found["plan"]
        console.print(f"  approved by decision {plan['decision_id']} under policy {plan['policy_revision']}")
        console.print(f"  base {plan['base']['label']} ({plan['base']['digest']})")
        for source in plan["sources"]:
            console.print(f"  {source['role']:<11} {source['share']:.1%}  {source['label']} ({source['digest']})")
        if found["realised"]:
            _print_mixture(console, found["realised"])
        if found["candidate"]:
            console.print(f"  candidate {found['candidate']} ({found['candidate_digest']})")
        if found["error"]:
            console.print(f"  last error: {found['error']}")

    emit(found, as_json, human)


@run_app.command("rescore")
def rescore(ctx: typer.Context, run: Annotated[str, _RUN],
            actor: Annotated[str, typer.Option("--as", help="Who re-scores (the reward loads are recorded under this "
                                                            "name).", show_default=False)],
            as_json: Annotated[bool, _JSON] = False) -> None:
    """Re-score a grpo run's every recorded reward call with the approved reward code (in the sandbox, through the
    reward door), after verifying the run's provenance and that its rollouts file is the one it signed. Exit 4 if the
    record or the code changed, 1 if a call scores differently."""
    from forgegov.foundation.errors import BadInput
    from forgegov.training.grpo import rescore_run

    workspace = state(ctx).workspace()
    if workspace.server_url:
        raise BadInput("re-scoring reads the run's rollouts and reward code where they are stored",
                       hint="run `forgegov run rescore` in the server's workspace")
    found = rescore_run(workspace, run, actor=actor)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        console.print(f"{found['run']}: {found['reproduced']} of {found['calls']} reward calls reproduced exactly "
                      "with the approved code")

    emit(found, as_json, human)


@run_app.command("verify")
def verify(ctx: typer.Context, run: Annotated[str, _RUN], as_json: Annotated[bool, _JSON] = False) -> None:
    """Check a completed run's signed provenance: both DSSE signatures against the pinned platform key, and every
    file of the registered candidate against the signed statement and manifest (exit 4 on any difference). In a
    member's workspace the candidate's files are fetched from the server's store and hashed here, and the key is
    the one pinned when this member joined."""
    workspace = state(ctx).workspace()
    if workspace.server_url:
        from forgegov.app.member import verify_run

        actor = member_as(workspace, None)
        verified = verify_run(workspace, run, actor, passphrase_for(actor))
    else:
        from forgegov.governance.runs.records import verify_run as verify_here

        verified = verify_here(workspace, run)

    def human(console) -> None:  # type: ignore[no-untyped-def]
        console.print(f"{verified['run']}: provenance verified for {verified['candidate']} "
                      f"({verified['files']} files, key {verified['keyid']})")

    emit(verified, as_json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
