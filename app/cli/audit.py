"""`forgegov audit verify|show|tail|proof|consistency|checkpoint|export|redact`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from forgegov.app.cli.context import passphrase_for, state
from forgegov.app.cli.output import acted, emit, stderr

audit_app = typer.Typer(help="The signed, tamper-evident audit log (RFC 6962 Merkle tree, signed checkpoints).",
                        no_args_is_help=True)
_JSON = typer.Option("--json", help="Print the result as JSON.")
_WITNESS = typer.Option("--witness", help="Witness folder to check against (repeatable; adds to audit.witnesses).")

# Entry numbers and sizes are signed 64-bit in the store (and in C2SP checkpoints): larger is a usage error.
MAX_SEQ = 2**63 - 1


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@audit_app.command("verify")
def verify(ctx: typer.Context,
           from_export: Annotated[Optional[Path], typer.Option("--from-export", help="Verify an export file "
                                                               "offline (no database).")] = None,
           witness: Annotated[Optional[list[Path]], _WITNESS] = None,
           replay: Annotated[bool, typer.Option("--replay", help="Also re-evaluate every recorded gate decision "
                                                "with the real OPA under the policy recorded with it.")] = False,
           actor: Annotated[Optional[str], typer.Option("--as", help="In a member's workspace: who asks the server "
                                                        "for its log (default: [server] member).",
                                                        show_default=False)] = None,
           as_json: Annotated[bool, _JSON] = False) -> None:
    """Check every leaf, stored node, checkpoint signature, witnessed checkpoint and signed statement, and every
    evaluation result's platform signature.

    Exit 0 only if everything holds, and then says what it could not prove (entries no signed tree head covers, no
    witness); otherwise exit 4 with the first bad entry and what is wrong with it. With --replay, a decision that
    the recorded policy does not reproduce (another decider ruled) is exit 4 too, each one named.
    """
    from forgegov.audit.operations import verify_export, verify_workspace
    from forgegov.foundation.errors import BadInput, DecisionDiffers

    workspace = state(ctx).workspace() if from_export is None else None
    if workspace is not None and workspace.server_url:
        from forgegov.app.cli.context import member_as, passphrase_for
        from forgegov.app.member import verify_log

        if replay:
            raise BadInput("--replay runs on the server's own workspace (it needs the stored inputs and policies)")
        name = member_as(workspace, actor)
        report = verify_log(workspace, name, passphrase_for(name), list(witness or []))
        report.limits.append(f"verified the log {workspace.server_url} exported, under the log key pinned when "
                             "this workspace joined; the store's rows and evaluation results are checked on the "
                             "server (`forgegov audit verify` there)")
        emit(report.to_dict(), as_json, lambda out: out.print(
            f"audit log of {workspace.server_url} verified here: {report.entries} entries, {report.checkpoints} "
            f"signed tree heads, {report.statements} signed statements\nroot {report.root}"
            + "".join(f"\nnot proven: {limit}" for limit in report.limits)))
        return
    if from_export is not None:
        if replay:
            raise BadInput("--replay needs the workspace (its stored inputs and policies), not an export")
        report = verify_export(from_export, list(witness or []))
    else:
        report = verify_workspace(state(ctx).workspace(), list(witness or []))
    evaluations = None
    if from_export is None:
        from forgegov.governance.evaluations import verify_recorded

        evaluations = verify_recorded(state(ctx).workspace())
    else:
        report.limits.append("evaluation results are not checked against the platform key offline (an export "
                             "does not carry it): run `forgegov audit verify` in the workspace for that")
    data = {**report.to_dict(), **({"evaluations": evaluations} if evaluations is not None else {})}
    replayed = None
    if replay:
        from forgegov.governance.replay import replay_decisions

        replayed = replay_decisions(state(ctx).workspace())
        data["replay"] = replayed.to_dict()

    def human(out) -> None:  # type: ignore[no-untyped-def]
        out.print(f"audit log verified: {report.entries} entries, {report.nodes} stored nodes, {report.checkpoints} "
                  f"signed checkpoints, {report.witnessed} witnessed, {report.statements} signed statements"
                  + (f", {len(report.redacted)} redacted payloads" if report.redacted else "")
                  + (f", {evaluations} signed evaluation results" if evaluations else "")
                  + f"\nroot {report.root}" + "".join(f"\nnot proven: {limit}" for limit in report.limits))
        if replayed is not None:
            out.print(f"replayed {replayed.replayed} of {replayed.decisions} decisions with OPA: {replayed.agreed} "
                      f"agree, {len(replayed.differing)} differ, {replayed.unanswered} were denials without an OPA "
                      f"answer ({replayed.seconds:.1f} s)"
                      + "".join(f"\nnot proven: {limit}" for limit in replayed.limits))

    if replayed is not None and replayed.differing:
        lines = [f"{'decision ' + d['decision_id'] if d['decision_id'] else 'the act'} (audit entry {d['audit_seq']}, "
                 f"{d['what']} on "
                 f"{d['subject']}) was recorded as {d['recorded']['result']}; policy {d['policy_revision']} decides "
                 f"{d['replayed']['result']}" for d in replayed.differing]
        raise DecisionDiffers(f"{len(lines)} recorded decisions are not what their policy decides: another decider "
                              "ruled, or the records were edited\n" + "\n".join(lines),
                              hint="find out who ran the decider at those times (OPA URL, FORGEGOV_OPA)")
    emit(data, as_json, human)


def _entry_rows(ctx: typer.Context, query_filter, limit: int | None, newest: bool,  # type: ignore[no-untyped-def]
                subject: str | None = None) -> list[dict]:
    from sqlmodel import select

    from forgegov.foundation.errors import ForgegovError
    from forgegov.foundation.store.db import read_session
    from forgegov.foundation.store.models import Asset, AuditEntry
    from forgegov.governance.registry import check_recorded, label, resolve

    with read_session(state(ctx).workspace().database_url) as session:
        query = select(AuditEntry)
        if query_filter is not None:
            query = query.where(query_filter(AuditEntry))
        if subject is not None:
            query = query.where(AuditEntry.subject_digest == resolve(session, subject).digest)
        query = query.order_by(AuditEntry.seq.desc() if newest else AuditEntry.seq)  # type: ignore[union-attr]
        if limit is not None:
            query = query.limit(limit)
        entries = list(session.exec(query))
        digests = {e.subject_digest for e in entries if e.subject_digest}
        # A digest can name assets of several kinds only if the same bytes were registered as each; list them all.
        labels: dict[str, list[str]] = {}
        for asset in session.exec(select(Asset).where(Asset.digest.in_(digests))):  # type: ignore[attr-defined]
            try:
                check_recorded(session, asset)  # a renamed row must not put a false name in a forensic listing
            except ForgegovError:
                continue  # not held to the log (its registration redacted, or the row altered): the digest shows
            labels.setdefault(asset.digest, []).append(label(asset))
    if newest:
        entries.reverse()
    return [{"seq": e.seq, "leaf": json.loads(e.leaf), "leaf_hash": e.leaf_hash,
             "subject": ", ".join(sorted(labels.get(e.subject_digest or "", []))) or e.subject_digest,
             "payload": json.loads(e.payload) if e.payload is not None else None} for e in entries]


def _print_rows(out, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    for row in rows:
        leaf, payload = row["leaf"], row["payload"]
        result = payload.get("result", "") if isinstance(payload, dict) else "(payload redacted)"
        subject = row["subject"] or "-"
        out.print(f"{row['seq']:>7}  {leaf['time'][:19]}Z  {leaf['actor']:<16} {leaf['action']:<28} {subject:<36} "
                  f"{result}")


@audit_app.command("tail")
def tail(ctx: typer.Context, n: Annotated[int, typer.Option("-n", help="How many entries.", min=0, max=MAX_SEQ)] = 10,
         as_json: Annotated[bool, _JSON] = False) -> None:
    """Show the newest entries."""
    rows = _entry_rows(ctx, None, n, newest=True)
    emit(rows, as_json, lambda out: _print_rows(out, rows))


@audit_app.command("show")
def show(ctx: typer.Context,
         entry: Annotated[Optional[int], typer.Argument(help="Entry number (default: all).", min=0, max=MAX_SEQ)] = None,
         action: Annotated[Optional[str], typer.Option(help="Only entries with this action, e.g. "
                                                            "gate.dataset.approve.")] = None,
         subject: Annotated[Optional[str], typer.Option(help="Only entries about this SUBJECT ([kind/]name[@version] "
                                                             "or sha256:<digest prefix>).")] = None,
         as_json: Annotated[bool, _JSON] = False) -> None:
    """Show one entry in full, or list entries (optionally of one action, about one subject)."""
    from forgegov.foundation.errors import NotFound

    if entry is not None:
        rows = _entry_rows(ctx, lambda e: e.seq == entry, None, newest=False)
        if not rows:
            raise NotFound(f"no audit entry {entry}")
        emit(rows[0], as_json, lambda out: out.print(json.dumps(rows[0], indent=2, ensure_ascii=False)))
        return
    rows = _entry_rows(ctx, (lambda e: e.action == action) if action else None, None, newest=False, subject=subject)
    emit(rows, as_json, lambda out: _print_rows(out, rows))


@audit_app.command("proof")
def proof(ctx: typer.Context, entry: Annotated[int, typer.Argument(help="Entry number.", min=0, max=MAX_SEQ)],
          size: Annotated[Optional[int], typer.Option("--size", help="Tree size (default: current).")] = None,
          as_json: Annotated[bool, _JSON] = False) -> None:
    """Inclusion proof of ENTRY in the tree of --size entries (RFC 6962), checked before it is printed."""
    from forgegov.audit.log import inclusion_proof, leaf_hash_of, root_at, tree_size
    from forgegov.audit.merkle import verify_inclusion
    from forgegov.foundation.store.db import read_session
    from forgegov.foundation.store.models import AuditEntry

    with read_session(state(ctx).workspace().database_url) as session:
        size = tree_size(session) if size is None else size
        row = session.get(AuditEntry, entry)
        path = inclusion_proof(session, entry, size)
        root = root_at(session, size)
    leaf = leaf_hash_of(row.leaf.encode()) if row is not None else b""
    verify_inclusion(entry, size, leaf, path, root)
    data = {"entry": entry, "tree_size": size, "leaf_hash": _b64(leaf), "root": _b64(root),
            "proof": [_b64(p) for p in path]}
    emit(data, as_json, lambda out: out.print(
        f"entry {entry} in tree of size {size}\nleaf {data['leaf_hash']}\nroot {data['root']}\n"
        + "\n".join(f"  {p}" for p in data["proof"])))


@audit_app.command("consistency")
def consistency(ctx: typer.Context, old: Annotated[int, typer.Argument(help="Older tree size.", min=0, max=MAX_SEQ)],
                new: Annotated[int, typer.Argument(help="Newer tree size.", min=0, max=MAX_SEQ)],
                as_json: Annotated[bool, _JSON] = False) -> None:
    """Consistency proof that the tree of OLD entries is a prefix of the tree of NEW entries."""
    from forgegov.audit.log import consistency_proof, root_at
    from forgegov.audit.merkle import verify_consistency
    from forgegov.foundation.store.db import read_session

    with read_session(state(ctx).workspace().database_url) as session:
        path = consistency_proof(session, old, new)
        old_root, new_root = root_at(session, old), root_at(session, new)
    verify_consistency(old, new, old_root, new_root, path)
    data = {"old_size": old, "new_size": new, "old_root": _b64(old_root), "new_root": _b64(new_root),
            "proof": [_b64(p) for p in path]}
    emit(data, as_json, lambda out: out.print(
        f"{old} → {new}\nold root {data['old_root']}\nnew root {data['new_root']}\n"
        + "\n".join(f"  {p}" for p in data["proof"])))


@audit_app.command("checkpoint")
def checkpoint(ctx: typer.Context,
               witness: Annotated[Optional[list[Path]], typer.Option(
                   "--witness", help="Also store it in this witness folder (or git repository); repeatable.")] = None,
               cosign_as: Annotated[Optional[str], typer.Option(
                   "--cosign-as", help="Witness identity that cosigns after checking consistency.")] = None,
               as_json: Annotated[bool, _JSON] = False) -> None:
    """Sign a checkpoint of the log now (C2SP signed note) and hand it to witnesses."""
    from forgegov.audit.tree_heads import hand_to_witness, sign_tree_head
    from forgegov.governance.identities import unlock

    ws = state(ctx).workspace()
    cosigner = unlock(ws, cosign_as, passphrase_for(cosign_as)) if cosign_as else None
    signed = sign_tree_head(ws)
    stored = [str(hand_to_witness(ws, signed, folder, cosigner)) for folder in (witness or [])]
    data = {"size": signed.head.size, "root": _b64(signed.head.root), "note": signed.note,
            "witnessed": stored}
    emit(data, as_json, lambda out: out.print(signed.note, end=""))


@audit_app.command("export")
def export(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="File to write (JSON lines).")]) -> None:
    """Write entries, checkpoints and the log key to PATH, verifiable offline with `audit verify --from-export`."""
    from forgegov.audit.operations import export_log

    count = export_log(state(ctx).workspace(), path)
    stderr.print(f"exported {count} entries to {path}")


@audit_app.command("redact")
def redact(ctx: typer.Context, entry: Annotated[int, typer.Argument(help="Entry whose payload to erase.", min=0, max=MAX_SEQ)],
           reason: Annotated[str, typer.Option(help="Legal basis (recorded).")],
           actor: Annotated[str, typer.Option("--as", help="Who erases it (signs the act; the policy decides "
                                                           "who may).")],
           as_json: Annotated[bool, _JSON] = False) -> None:
    """Erase an entry's payload lawfully: the leaf (and its payload digest) stays, the erasure is itself logged.

    A signed act decided by the policy in force (`policies/admin/`: by default a privacy officer, and never a
    decision, run or policy record)."""
    from forgegov.governance import actions

    ws = state(ctx).workspace()
    outcome = actions.redact(ws, entry, reason, actor, passphrase_for(actor))
    acted(outcome, as_json, f"payload of entry {entry} erased")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
