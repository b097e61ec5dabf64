"""`forgegov review` and `forgegov inbox`: what an approver sees before signing, and what is waiting for them."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from forgegov.app.cli.context import state
from forgegov.app.cli.output import emit
from forgegov.foundation.vocabulary import Gate

_JSON = typer.Option("--json", help="Print the result as JSON.")


def render(out, value: Any, indent: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Nested evidence as indented lines: every field the policy is shown, none dropped or reworded."""
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item and not _flat(item):
                out.print(f"{pad}{key}:")
                render(out, item, indent + 2)
            else:
                out.print(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item and not _flat(item):
                out.print(f"{pad}-")
                render(out, item, indent + 2)
            else:
                out.print(f"{pad}- {_scalar(item)}")
    else:
        out.print(f"{pad}{_scalar(value)}")


def _flat(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(item, dict | list) for item in value)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{}"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def review(ctx: typer.Context,
           subject: Annotated[str, typer.Argument(help="[kind/]name[@version] or sha256:<digest prefix>.",
                                                  show_default=False)],
           gate: Annotated[Optional[Gate], typer.Option(help="The gate to review for (default: the gate of the "
                                                             "subject's open request, else its own gate).")] = None,
           as_json: Annotated[bool, _JSON] = False) -> None:
    """Show exactly what the gate will be shown about SUBJECT (the evidence forgegov gathers, as OPA receives it),
    the open request, who has signed, what is still required and who can give it, the policy's settings for the
    gate, and the digest an approval signs. Approve with `--expect-digest DIGEST` to refuse signing if any of it
    changed since."""
    from forgegov.governance.review import review as gather_review

    shown = gather_review(state(ctx).workspace(), subject, gate)

    def human(out) -> None:  # type: ignore[no-untyped-def]
        release = f", release {shown.release}" if shown.release else ""
        out.print(f"{shown.subject}  {shown.subject_digest}")
        out.print(f"  {shown.gate.value} gate; state {shown.state}{release}; policy {shown.policy['revision']}")
        request = shown.request
        if request is None:
            out.print(f"  no open {shown.gate.value} request: nothing to sign yet")
        else:
            target = f" → {request['target']}" if request["target"] else ""
            comment = f": {request['comment']!r}" if request["comment"] else ""
            out.print(f"  request {request['id']}{target} by {request['requested_by']} at "
                      f"{request['requested_at']}{comment}")
            for signed in shown.signed:
                roles = ", ".join(signed["roles"]) or "no role"
                why = f": {signed['justification']!r}" if signed["justification"] else ""
                revoked = " (key since revoked)" if signed["key_revoked"] else ""
                out.print(f"    {signed['verdict']} by {signed['signer']} ({roles}) at {signed['signed_at']}"
                          f"{revoked}{why}")
            for item in shown.still_required:
                out.print(f"  still required: {item}")
        out.print("evidence (as the policy receives it):")
        render(out, shown.evidence)
        out.print(f"policy settings for the {shown.gate.value} gate:")
        render(out, shown.settings)
        out.print("role holders: " + "; ".join(f"{role}: {', '.join(names) or 'nobody'}"
                                               for role, names in shown.holders.items()))
        if shown.digest is not None:
            out.print(f"review digest {shown.digest}")
            out.print(f"  sign it: forgegov approve {shown.subject} --gate {shown.gate.value} --as NAME "
                      f"--expect-digest {shown.digest}")

    emit(shown.to_dict(), as_json, human)


def inbox(ctx: typer.Context,
          actor: Annotated[str, typer.Option("--as", help="The identity whose work to list.", show_default=False)],
          as_json: Annotated[bool, _JSON] = False) -> None:
    """Every open request NAME may approve or reject under the policy in force, oldest first (each previewed with
    the policy; nothing is signed or recorded)."""
    from forgegov.governance.actions import policy_engine
    from forgegov.governance.inbox import inbox as waiting

    workspace = state(ctx).workspace()
    with policy_engine(workspace) as engine:
        items = waiting(workspace, engine, actor)

    def human(out) -> None:  # type: ignore[no-untyped-def]
        if not items:
            out.print(f"nothing waits for {actor}")
            return
        for item in items:
            target = f" → {item.target}" if item.target else ""
            out.print(f"{item.subject} ({item.gate}{target}) requested by {item.requested_by} at "
                      f"{item.requested_at}: you may {' or '.join(item.may)}")
            if item.approve_would == "allow":
                out.print("  your approval completes it")
            for reason in item.reasons:
                out.print(f"  an approval would be denied: {reason}")
            for missing in item.missing:
                out.print(f"  after your approval, still required: {missing}")
            out.print(f"  review: forgegov review {item.subject} --gate {item.gate}")

    emit([item.to_dict() for item in items], as_json, human)


def register(app: typer.Typer) -> None:
    app.command("review")(review)
    app.command("inbox")(inbox)
