"""What the `forgegov audit` commands do against a workspace or an export file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from forgegov.audit.log import node_of
from forgegov.audit.log_key import pinned_public_key
from forgegov.audit.recorder import AuditedTransaction, EntryDraft
from forgegov.audit.state import rows_against_log
from forgegov.audit.tree_heads import sign_tree_head, stored_tree_heads, witness_notes, witness_state
from forgegov.audit.verify import (
    PROJECTED,
    AuditIntegrityError,
    EntryRow,
    VerifyReport,
    WitnessCopy,
    verify_log,
)
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.signing import public_key_from_b64
from forgegov.foundation.errors import BadInput, NotFound, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, AuditNode
from forgegov.foundation.vocabulary import NOT_REDACTABLE, AuditAction

EXPORT_FORMAT = "forgegov-audit-export/v1"
_ENTRY = AuditEntry.__table__  # type: ignore[attr-defined]
_NODE = AuditNode.__table__  # type: ignore[attr-defined]


def witness_copies(folders: list[Path]) -> list[WitnessCopy]:
    copies = []
    for folder in folders:
        if not folder.is_dir():
            raise BadInput(f"witness folder {folder} does not exist")
        cosigners = (witness_state(folder) or {}).get("cosigners", {})
        copies.extend(WitnessCopy(source, note, cosigners) for source, note in witness_notes(folder))
    return copies


def verify_workspace(workspace: Workspace, extra_witnesses: list[Path] | None = None) -> VerifyReport:
    # A witness elsewhere that has cosigned nothing here yet (or a restored workspace, whose folders start afresh)
    # has no folder: nothing of it to check.
    remote = [workspace.remote_witness_dir(w) for w in workspace.config.audit.remote_witnesses]
    folders = [workspace.root / w for w in workspace.config.audit.witnesses] + [f for f in remote if f.is_dir()] \
        + list(extra_witnesses or [])
    entries_query = select(_ENTRY.c.seq, _ENTRY.c.leaf, _ENTRY.c.payload, _ENTRY.c.leaf_hash,
                           *(_ENTRY.c[name] for name in PROJECTED)).order_by(_ENTRY.c.seq)
    with read_session(workspace.database_url) as session, ExitStack() as cursors:
        connection = session.connection()

        def nodes() -> Iterator[tuple[int, int, str]]:
            # Read on the entries' connection once they are consumed, so an early failure leaves nothing open.
            for identifier, value in _stream(connection, select(_NODE.c.id, _NODE.c.hash), cursors):
                yield (*node_of(identifier), value)

        report = verify_log(
            workspace.config.audit.origin, pinned_public_key(workspace), _stream(connection, entries_query, cursors),
            nodes(), stored_tree_heads(workspace), witness_copies(folders),
        )
        # The log holds; now the store's rows against what the log says they are.
        state = rows_against_log(session)
    if state.differences:
        shown = "; ".join(state.differences[:20])
        more = f" (and {len(state.differences) - 20} more)" if len(state.differences) > 20 else ""
        raise AuditIntegrityError(f"{len(state.differences)} store row(s) differ from the log: {shown}{more}")
    report.rows = state.rows
    report.limits.extend(state.unprovable)
    return report


def _stream(connection, query, cursors: ExitStack) -> Iterator[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """Rows of a large query without holding them all. On SQLite its own cursor, which returns a million rows
    several times faster than Row objects do; elsewhere a server-side cursor."""
    if connection.dialect.name == "sqlite":
        cursor = connection.connection.driver_connection.cursor()
        cursors.callback(cursor.close)
        return iter(cursor.execute(str(query.compile(connection))))
    result = connection.execution_options(stream_results=True, yield_per=10_000).execute(query)
    cursors.callback(result.close)
    return (row for partition in result.partitions() for row in partition)


def export_log(workspace: Workspace, path: Path) -> int:
    """JSON lines: a header with the log key, the entries, then the signed tree heads. It ends at a tree head signed
    now, so that all of it can be verified offline; entries appended meanwhile go into the next export."""
    if not path.parent.is_dir():
        raise BadInput(f"cannot export to {path}: {path.parent} is not a folder", hint="create the folder first")
    size = sign_tree_head(workspace).head.size
    count = 0
    tmp = path.with_name(path.name + ".partial")
    with read_session(workspace.database_url) as session, open(tmp, "w", encoding="utf-8") as out:
        out.write(json.dumps({"format": EXPORT_FORMAT, "origin": workspace.config.audit.origin,
                              "log_public_key": workspace.config.audit.log_public_key}) + "\n")
        rows = session.connection().execution_options(stream_results=True, yield_per=10_000).execute(
            select(_ENTRY.c.seq, _ENTRY.c.leaf, _ENTRY.c.payload).where(_ENTRY.c.seq < size).order_by(_ENTRY.c.seq))
        for seq, leaf, payload in rows:
            out.write(json.dumps({"entry": seq, "leaf": leaf, "payload": payload}, ensure_ascii=False) + "\n")
            count += 1
        for note in stored_tree_heads(workspace, up_to=size):
            out.write(json.dumps({"checkpoint": note}) + "\n")
    tmp.replace(path)
    return count


def verify_export(path: Path, witnesses: list[Path], at_sizes: tuple[int, ...] = ()) -> VerifyReport:
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read export {path}: {exc.strerror}") from exc
    with handle:
        try:
            header = json.loads(handle.readline())
        except ValueError as exc:
            raise BadInput(f"{path} is not a forgegov audit export") from exc
        if header.get("format") != EXPORT_FORMAT:
            raise BadInput(f"{path} is not a {EXPORT_FORMAT} file")
        checkpoints: list[str] = []

        def entries() -> Iterator[EntryRow]:
            for line in handle:
                item = json.loads(line)
                if "checkpoint" in item:
                    checkpoints.append(item["checkpoint"])
                else:
                    yield item["entry"], item["leaf"], item["payload"], None

        # `checkpoints` fills while the entries stream; verify_log reads it only after the last entry.
        report = verify_log(header["origin"], public_key_from_b64(header["log_public_key"]), entries(), None,
                            checkpoints, witness_copies(witnesses), at_sizes)
    if report.covered < report.entries:
        # An export travels without the store: entries no signed tree head covers are the exporter's word only
        # (an export with its tree-head lines removed would otherwise pass).
        raise AuditIntegrityError(f"the export's entries {report.covered}..{report.entries - 1} are covered by no "
                                  "signed tree head in it (or in the witnesses given): they cannot be verified",
                                  report.covered)
    return report


def redact_entry(tx: AuditedTransaction, seq: int, actor: str, payload: dict[str, Any]) -> int:
    """Erase an entry's payload (its digest stays in the leaf) and log the erasure in the caller's transaction (the
    administrative act that decided it, `governance/admin.py`); returns the new entry's seq. Entries that hold the
    keys, names and digests the log and the state derived from it are checked against are refused whatever any
    policy says."""
    connection = tx.session.connection()
    row = connection.execute(select(_ENTRY.c.payload_digest, _ENTRY.c.payload, _ENTRY.c.action)
                             .where(_ENTRY.c.seq == seq)).first()
    if row is None:
        raise NotFound(f"no audit entry {seq}")
    if row.payload is None:
        raise StateConflict(f"audit entry {seq} is already redacted")
    if row.action in NOT_REDACTABLE:
        raise StateConflict(
            f"entry {seq} is a {row.action} record: it holds the keys or digests that verify the rest of the "
            "log (and no personal data beyond a name), so it cannot be redacted")
    connection.execute(update(_ENTRY).where(_ENTRY.c.seq == seq).values(payload=None))
    return tx.append(EntryDraft(actor=actor, action=AuditAction.AUDIT_REDACT,
                                payload={"seq": seq, "payload_digest": row.payload_digest, **payload})).seq


def entry_action(tx: AuditedTransaction, seq: int) -> str:
    action = tx.session.connection().execute(select(_ENTRY.c.action).where(_ENTRY.c.seq == seq)).scalar()
    if action is None:
        raise NotFound(f"no audit entry {seq}")
    return str(action)
