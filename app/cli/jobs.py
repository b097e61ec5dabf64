"""`forgegov job cancel`: stop a job a team server is running (a run it trains, an evaluation), by a signed act."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import member_as, passphrase_for, state
from forgegov.app.cli.output import emit, stderr

job_app = typer.Typer(help="Jobs on the team server: a run it trains or an evaluation it makes, each named by the "
                           "number of its job.start audit entry.", no_args_is_help=True)
_AS = typer.Option("--as", help="Member acting (default: [server] member in forgegov.toml).", show_default=False)


def announce(actor: str) -> Callable[[int], None]:
    """What a member's CLI says when the server has started its job: how to stop it."""
    def started(job: int) -> None:
        stderr.print(f"job {job} started on the server (audit entry {job}); stop it with "
                     f"`forgegov job cancel {job} --as {actor} --reason TEXT`")

    return started


@job_app.command("cancel")
def cancel(ctx: typer.Context, job: int,
           reason: Annotated[str, typer.Option(help="Why it is stopped (signed, and logged).", show_default=False)],
           actor: Annotated[Optional[str], _AS] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Stop job JOB. The policy decides who may (who started it, or an ML lead); the job records that it stopped,
    and a run resumes from its last saved step when it is started again. In a workspace of one a job runs in the
    command that started it: stop that command instead."""
    from forgegov.app.member import cancel_job

    workspace = state(ctx).workspace()
    name = member_as(workspace, actor)
    stopped = cancel_job(workspace, job, reason, name, passphrase_for(name))
    emit(stopped, as_json, lambda out: out.print(f"job {job}: {stopped.get('state')}"))


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
