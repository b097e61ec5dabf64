"""`forgegov request`, `approve`, `reject`, `promote`, `withdraw`: signed statements through the gate.

Exit codes: 0 recorded (allowed, or pending more approvals); 3 denied by policy, or no trustworthy decision; 4 a
forged or replayed statement, or a stored record the audit log does not back (tampered).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import passphrase_for, state, verbs_for
from forgegov.app.cli.output import emit
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import ForgegovError, PolicyDenied
from forgegov.foundation.vocabulary import Gate, GateAction, ReleaseStage

_SUBJECT = typer.Argument(help="[kind/]name[@version] or sha256:<digest prefix>.", show_default=False)
_AS = typer.Option("--as", help="Identity acting (signs with its own key).", show_default=False)
_JSON = typer.Option("--json", help="Print the decision as JSON.")


def holders_line(holders: dict[str, list[str]]) -> str:
    return "; ".join(f"{role}: {', '.join(names) or 'nobody'}" for role, names in holders.items())


def holders_of(workspace: Workspace, gate: Gate) -> dict[str, list[str]]:
    """Read after a decision, for people: if it cannot be read, the decision is still reported as it was made."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.review import gate_holders

    try:
        with read_session(workspace.database_url) as session:
            return gate_holders(session, gate)
    except ForgegovError:
        return {}


def print_outcome(outcome, as_json: bool, workspace: Workspace | None = None) -> None:  # type: ignore[no-untyped-def]
    holders = holders_of(workspace, outcome.gate) if workspace is not None and outcome.missing else {}

    def human(out) -> None:  # type: ignore[no-untyped-def]
        verb = {"allow": "allowed", "pending": "recorded, pending", "deny": "denied"}[outcome.result.value]
        where = f"state {outcome.state}" + (f", release {outcome.release}" if outcome.release else "")
        out.print(f"{outcome.gate.value} gate: {outcome.action.value} on {outcome.subject} {verb} ({where})")
        for item in outcome.missing:
            out.print(f"  still required: {item}")
        if holders:
            out.print(f"  role holders: {holders_line(holders)}")
        if outcome.evidence_digest:
            out.print(f"  signed for evidence digest {outcome.evidence_digest}")
        out.print(f"  decision {outcome.decision_id}, policy {outcome.policy_revision}, audit entry "
                  f"{outcome.audit_seq}")

    emit({**outcome.to_dict(), "holders": holders}, as_json, human)


@contextmanager
def decided(as_json: bool, workspace: Workspace | None = None) -> Iterator[None]:
    """A denial is a decision too: with --json it is printed on stdout like any other (the exit code stays 3, the
    reasons still go to stderr), and it names who holds the roles of the gate, so the next step has a person."""
    try:
        yield
    except PolicyDenied as denied:
        if denied.outcome is not None and workspace is not None:
            denied.outcome["holders"] = holders_of(workspace, Gate(denied.outcome["gate"]))
        if as_json and denied.outcome is not None:
            emit(denied.outcome, True, lambda out: None)
        raise


def request(ctx: typer.Context, subject: Annotated[str, _SUBJECT], actor: Annotated[str, _AS],
            gate: Annotated[Optional[Gate], typer.Option(help="Gate to pass (default: the subject's own gate).")] = None,
            to: Annotated[Optional[ReleaseStage], typer.Option("--to", help="Promotion target (checkpoints).")] = None,
            comment: Annotated[str, typer.Option(help="Recorded with the signed request.")] = "",
            as_json: Annotated[bool, _JSON] = False) -> None:
    """Open a gate request for SUBJECT, signed by the requester."""
    workspace = state(ctx).workspace()
    actions = verbs_for(workspace)
    with decided(as_json, workspace):
        outcome = actions.request(workspace, subject, actor, passphrase_for(actor), gate=gate,
                                  target=to, comment=comment)
    print_outcome(outcome, as_json, workspace)


def approve(ctx: typer.Context, subject: Annotated[str, _SUBJECT], actor: Annotated[str, _AS],
            comment: Annotated[str, typer.Option(help="Recorded with the signed approval; a privacy officer's "
                                                 "justification when the policy asks for one.")] = "",
            gate: Annotated[Optional[Gate], typer.Option(help="Gate of the open request (default: the subject's "
                                                               "own gate).")] = None,
            expect_digest: Annotated[Optional[str], typer.Option(
                "--expect-digest", help="The evidence digest `forgegov review` printed: refuse to sign if the "
                                        "evidence changed since.", show_default=False)] = None,
            as_json: Annotated[bool, _JSON] = False) -> None:
    """Approve SUBJECT's open request, signing the approval with your own key.

    The approval is signed for the digest of the evidence the gate is shown (`forgegov review SUBJECT` prints it):
    the gate refuses it if that evidence changed before it decides, and the policy stops counting it if the evidence
    changes later. The gate is decided again with your approval added;
    when the policy's quorum is met the change applies at once (dataset approved, checkpoint promoted, ...). The
    policy refuses self-approval and approving twice.
    """
    workspace = state(ctx).workspace()
    actions = verbs_for(workspace)
    with decided(as_json, workspace):
        outcome = actions.answer(workspace, subject, actor, passphrase_for(actor), GateAction.APPROVE,
                                 gate=gate, comment=comment, expect_digest=expect_digest)
    print_outcome(outcome, as_json, workspace)


def reject(ctx: typer.Context, subject: Annotated[str, _SUBJECT], actor: Annotated[str, _AS],
           reason: Annotated[str, typer.Option(help="Why (recorded with the signed rejection).")],
           gate: Annotated[Optional[Gate], typer.Option(help="Gate of the open request.")] = None,
           as_json: Annotated[bool, _JSON] = False) -> None:
    """Reject SUBJECT's open request, signed with your own key."""
    from forgegov.foundation.errors import BadInput

    if not reason.strip():
        raise BadInput("a rejection needs a reason (--reason)")
    workspace = state(ctx).workspace()
    actions = verbs_for(workspace)
    with decided(as_json, workspace):
        outcome = actions.answer(workspace, subject, actor, passphrase_for(actor), GateAction.REJECT,
                                 gate=gate, comment=reason)
    print_outcome(outcome, as_json, workspace)


def withdraw(ctx: typer.Context, subject: Annotated[str, _SUBJECT], actor: Annotated[str, _AS],
             reason: Annotated[str, typer.Option(help="Why (recorded with the signed statement).")],
             gate: Annotated[Optional[Gate], typer.Option(help="Gate whose approval to take back (a checkpoint's: "
                                                               "base).")] = None,
             as_json: Annotated[bool, _JSON] = False) -> None:
    """Withdraw SUBJECT's approval at once (a dataset found to hold data it must not, a reward with a bug, a base
    pulled by its vendor), signed with your own key; the policy decides who may. Runs and promotions that depend on
    it are refused from then on."""
    from forgegov.foundation.errors import BadInput

    if not reason.strip():
        raise BadInput("a withdrawal needs a reason (--reason)")
    workspace = state(ctx).workspace()
    actions = verbs_for(workspace)
    with decided(as_json, workspace):
        outcome = actions.withdraw(workspace, subject, actor, passphrase_for(actor), gate=gate,
                                   comment=reason)
    print_outcome(outcome, as_json, workspace)


def promote(ctx: typer.Context,
            checkpoint: Annotated[str, typer.Argument(help="Checkpoint: name[@version] or sha256:<prefix>.",
                                                      show_default=False)],
            to: Annotated[ReleaseStage, typer.Option("--to", help="Target stage: staging or production.")],
            actor: Annotated[str, _AS],
            comment: Annotated[str, typer.Option(help="Recorded with the signed request.")] = "",
            as_json: Annotated[bool, _JSON] = False) -> None:
    """Ask to promote CHECKPOINT to a release stage; it moves once the promotion gate's approvals are met."""
    workspace = state(ctx).workspace()
    actions = verbs_for(workspace)
    with decided(as_json, workspace):
        outcome = actions.promote(workspace, checkpoint, to, actor, passphrase_for(actor),
                                  comment=comment)
    print_outcome(outcome, as_json, workspace)


def register(app: typer.Typer) -> None:
    app.command("request")(request)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("promote")(promote)
    app.command("withdraw")(withdraw)
