"""`forgegov review` and `forgegov inbox`: what an approver sees before signing, and what is waiting for them."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from forgegov.app.cli.context import read, state
from forgegov.app.cli.output import emit, printable
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
    return printable(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_plain(item) for item in value) + "]"
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
           actor: Annotated[Optional[str], typer.Option("--as", help="In a member's workspace: who asks the server "
                                                        "(default: [server] member).", show_default=False)] = None,
           as_json: Annotated[bool, _JSON] = False) -> None:
    """Show exactly what the gate will be shown about SUBJECT (the evidence forgegov gathers, as OPA receives it),
    the open request, who has signed, what is still required and who can give it, the policy's settings for the
    gate, and the digest an approval signs. Approve with `--expect-digest DIGEST` to refuse signing if any of it
    changed since."""
    workspace = state(ctx).workspace()
    if workspace.server_url:
        from forgegov.app.cli.context import member_as, passphrase_for
        from forgegov.app.member import review as ask_server

        name = member_as(workspace, actor)
        shown = ask_server(workspace, subject, gate, name, passphrase_for(name))
    else:
        from forgegov.governance.review import review as gather_review

        shown = gather_review(workspace, subject, gate)

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
        if shown.context:
            out.print("also worth knowing (not read by this gate's policy):")
            render(out, shown.context)
        out.print(f"what the policy holds it to (policies/data/data.json, policy {shown.policy['revision']}):")
        render(out, shown.settings)
        out.print("role holders: " + "; ".join(f"{role}: {', '.join(names) or 'nobody'}"
                                               for role, names in shown.holders.items()))
        if shown.digest is not None:
            out.print(f"evidence digest {shown.digest} (what an approval is given for)")
            out.print(f"  sign it: forgegov approve {shown.subject} --gate {shown.gate.value} --as NAME "
                      f"--expect-digest {shown.digest}")

    emit(shown.to_dict(), as_json, human)


def inbox(ctx: typer.Context,
          actor: Annotated[str, typer.Option("--as", help="The identity whose work to list.", show_default=False)],
          as_json: Annotated[bool, _JSON] = False) -> None:
    """Every open request NAME may approve or reject under the policy in force, oldest first (each previewed with
    the policy; nothing is signed or recorded)."""
    items = read(ctx, "inbox", name=actor)

    def human(out) -> None:  # type: ignore[no-untyped-def]
        if not items:
            out.print(f"nothing waits for {actor}")
            return
        for item in items:
            target = f" → {item['target']}" if item['target'] else ""
            out.print(f"{item['subject']} ({item['gate']}{target}) requested by {item['requested_by']} at "
                      f"{item['requested_at']}: you may {' or '.join(item['may'])}")
            if item["justification_needed"]:
                out.print("  your approval must say why (--comment)")
            if item["approve_would"] == "allow":
                out.print("  your approval completes it")
            for reason in item["reasons"]:
                out.print(f"  an approval would be denied: {reason}")
            for missing in item["missing"]:
                out.print(f"  after your approval, still required: {missing}")
            out.print(f"  review: forgegov review {item['subject']} --gate {item['gate']}")

    emit(items, as_json, human)


class _CleanTree:
    """A rich Tree whose labels pass through `printable` (they carry names, comments and justifications)."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree.tree if isinstance(tree, _CleanTree) else tree

    def add(self, label: str) -> _CleanTree:
        return _CleanTree(self.tree.add(printable(label)))


def lineage(ctx: typer.Context,
            checkpoint: Annotated[str, typer.Argument(help="Checkpoint: name[@version] or sha256:<digest prefix>.",
                                                      show_default=False)],
            as_json: Annotated[bool, _JSON] = False) -> None:
    """What went into CHECKPOINT and who approved it: the tree back to the first base (checkpoints, the runs that
    produced them with recipe digest and realised mixture, their datasets), each node with the decisions that
    admitted it, who signed them with their roles then and justifications, and the policy revision and digest."""
    report = read(ctx, "lineage", checkpoint=checkpoint)

    def human(out) -> None:  # type: ignore[no-untyped-def]
        from rich.tree import Tree

        def add(tree, node) -> None:  # type: ignore[no-untyped-def]
            tree = _CleanTree(tree)
            facts = [node["state"]] + [f"{key} {node[key]}" for key in ("stage", "release", "dataset_kind",
                                                                        "classification") if node.get(key)]
            branch = tree.add(f"{node['label']}  {node['digest'][:19]}…  owner {node['owner']}; "
                              + ", ".join(facts))
            for decision in node["decisions"]:
                target = f" → {decision['target']}" if decision["target"] else ""
                item = branch.add(f"{decision['gate']} {decision['action']}{target}: allowed, decision "
                                  f"{decision['decision_id']} (audit entry {decision['audit_seq']}, policy "
                                  f"{decision['policy']['revision']} {decision['policy']['digest'][:19]}…)")
                item.add(f"requested by {decision['requested_by']} "
                         f"({', '.join(decision['requester_roles']) or 'no role'})")
                for signed in decision["signatures"]:
                    why = f": {signed['justification']!r}" if signed["justification"] else ""
                    item.add(f"{signed['verdict']} by {signed['signer']} ({', '.join(signed['roles']) or 'no role'})"
                             f" at {signed['signed_at']}{why}")
            run = node.get("produced_by")
            if run:
                made = branch.add(f"produced by {run['label']} (run {run['run_id']}, recipe "
                                  f"{str(run['recipe_digest'])[:19]}…, {run['steps']} steps)")
                for decision in run["decisions"]:
                    signers = ", ".join(f"{s['signer']} ({', '.join(s['roles']) or 'no role'})"
                                        for s in decision["signatures"])
                    made.add(f"run gate {decision['action']}: allowed, decision {decision['decision_id']} "
                             f"(policy {decision['policy']['revision']}); requested by {decision['requested_by']}"
                             + (f"; signed by {signers}" if signers else ""))
                mixture = made.add(f"realised mixture: {run['mixture']['total_tokens']:,} tokens")
                for source in run["mixture"]["sources"]:
                    mixture.add(f"{source['label']} ({source['role']}): planned {source['planned_share']:.1%}, "
                                f"realised {source['realised_share']:.1%}")
                for dataset in run["datasets"]:
                    add(made, dataset)
            if node.get("base"):
                add(branch.add("trained from" if run else "parent"), node["base"])

        root = Tree(f"lineage of {report['checkpoint']['label']}")
        add(root, report["checkpoint"])
        out.print(root)

    emit(report, as_json, human)


def register(app: typer.Typer) -> None:
    app.command("review")(review)
    app.command("inbox")(inbox)
    app.command("lineage")(lineage)
