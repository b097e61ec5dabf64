"""`forgegov audit verify|tail`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from forgegov.governance.cli.context import state
from forgegov.governance.cli.output import emit

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Check every entry's payload digest and leaf hash, and that sequence numbers have no gaps."""
    from forgegov.audit.log import verify_entries
    from forgegov.governance.store.db import read_session

    with read_session(state(ctx).workspace().database_url) as session:
        count = verify_entries(session)
    emit({"entries": count, "ok": True}, as_json, lambda out: out.print(f"audit log verified: {count} entries"))


@audit_app.command("tail")
def tail(ctx: typer.Context, n: Annotated[int, typer.Option("-n", help="How many entries.")] = 10,
         as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Show the newest entries."""
    from sqlmodel import select

    from forgegov.governance.store.db import read_session
    from forgegov.governance.store.models import AuditEntry

    with read_session(state(ctx).workspace().database_url) as session:
        entries = list(session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(n)))  # type: ignore[union-attr]
    rows = [{"seq": e.seq, "time": e.time, "actor": e.actor, "action": e.action, "subject_digest": e.subject_digest,
             "decision_id": e.decision_id, "policy_revision": e.policy_revision, "payload": json.loads(e.payload),
             "leaf_hash": e.leaf_hash} for e in reversed(entries)]

    def human(out) -> None:  # type: ignore[no-untyped-def]
        for r in rows:
            result = r["payload"].get("result", "")
            out.print(f"{r['seq']:>6}  {r['time']}  {r['actor']:<14} {r['action']:<28} {result}")

    emit(rows, as_json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
