"""The audit log: append inside the caller's transaction, so an entry exists exactly when its state change does.

Appends also store every perfect subtree they complete (`audit_node`), so roots and proofs for any tree size are
read from O(log n) stored nodes rather than recomputed. Sequence numbers stay contiguous because every writer holds
the store's write lock (see `store/db.py`) for the whole transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlmodel import Session

from forgegov.audit.hashing import LEAF_PREFIX, node_hash
from forgegov.audit.merkle import (
    EMPTY_ROOT,
    Node,
    ProofError,
    consistency_ranges,
    hashes_from_nodes,
    inclusion_ranges,
    needed_nodes,
    range_nodes,
)
from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.store.models import RECORD_VERSION, AuditEntry, AuditNode
from forgegov.foundation.vocabulary import AuditAction

LEAF_VERSION = 1
_ENTRY = AuditEntry.__table__  # type: ignore[attr-defined]
_NODE = AuditNode.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class EntryDraft:
    actor: str
    action: AuditAction
    payload: dict[str, Any]
    subject_digest: str | None = None
    decision_id: str | None = None
    policy_revision: str | None = None


@dataclass(frozen=True)
class Appended:
    seq: int
    leaf_hash: bytes


def canonical_leaf(fields: dict[str, Any]) -> bytes:
    """RFC 8785 bytes for a flat object of strings, integers and nulls.

    For exactly these types RFC 8785 and Python's sorted, compact, non-ASCII-escaping JSON coincide (a test holds
    them equal over awkward strings); it is several times faster, which matters when verifying millions of leaves.
    """
    for key, value in fields.items():
        if not (value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            raise TypeError(f"leaf field {key!r} must be a string, an integer or null")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_hash_of(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


NODE_ID_SHIFT = 48


def node_id(level: int, index: int) -> int:
    return level << NODE_ID_SHIFT | index


def node_of(identifier: int) -> Node:
    return identifier >> NODE_ID_SHIFT, identifier & ((1 << NODE_ID_SHIFT) - 1)


def tree_size(session: Session) -> int:
    last = session.connection().execute(select(func.max(_ENTRY.c.seq))).scalar()
    return 0 if last is None else last + 1


def append(session: Session, draft: EntryDraft) -> Appended:
    return append_many(session, [draft])[0]


def append_many(session: Session, drafts: Sequence[EntryDraft]) -> list[Appended]:
    """Append entries in order. The caller's write transaction serialises writers, so `seq` stays contiguous."""
    connection = session.connection()
    size = tree_size(session)
    frontier = _frontier(session, size)
    entries, nodes, appended = [], [], []
    for offset, draft in enumerate(drafts):
        seq = size + offset
        action = AuditAction(draft.action).value  # an action outside the vocabulary is refused, not logged
        payload = canonical_bytes(draft.payload)
        fields = {
            "v": LEAF_VERSION, "seq": seq, "time": now_rfc3339(), "actor": draft.actor, "action": action,
            "subject_digest": draft.subject_digest, "decision_id": draft.decision_id,
            "policy_revision": draft.policy_revision, "payload_digest": "sha256:" + hashlib.sha256(payload).hexdigest(),
        }
        leaf = canonical_leaf(fields)
        digest = leaf_hash_of(leaf)
        entries.append({
            "seq": seq, "record_version": RECORD_VERSION, "leaf": leaf.decode(), "leaf_hash": digest.hex(),
            "time": fields["time"], "actor": draft.actor, "action": action,
            "subject_digest": draft.subject_digest, "decision_id": draft.decision_id,
            "policy_revision": draft.policy_revision, "payload_digest": fields["payload_digest"],
            "payload": payload.decode(),
        })
        # Completing leaf `seq` closes one perfect subtree per trailing 1-bit of seq.
        level, index, current = 0, seq, digest
        while index & 1:
            current = node_hash(frontier.pop(level), current)
            level, index = level + 1, index >> 1
            nodes.append({"id": node_id(level, index), "hash": current.hex()})
        frontier[level] = current
        appended.append(Appended(seq, digest))
    if entries:
        connection.execute(insert(_ENTRY), entries)
    if nodes:
        connection.execute(insert(_NODE), nodes)
    return appended


def _frontier_keys(size: int) -> list[Node]:
    """The perfect subtrees that make up a tree of `size` leaves: one per 1-bit of size."""
    keys, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def _frontier(session: Session, size: int) -> dict[int, bytes]:
    keys = _frontier_keys(size)
    found = fetch_nodes(session, keys)
    return {level: found[(level, index)] for level, index in keys}


_LEAF_HASHES = select(_ENTRY.c.seq, _ENTRY.c.leaf_hash).where(_ENTRY.c.seq.in_(bindparam("ids", expanding=True)))
_NODE_HASHES = select(_NODE.c.id, _NODE.c.hash).where(_NODE.c.id.in_(bindparam("ids", expanding=True)))


def fetch_nodes(session: Session, keys: Iterable[Node]) -> dict[Node, bytes]:
    """Stored hashes for the given nodes: one query for leaves, one for interior nodes."""
    keys = set(keys)
    connection = session.connection()
    found: dict[Node, bytes] = {}
    leaves = [index for level, index in keys if level == 0]
    if leaves:
        found.update({(0, seq): bytes.fromhex(h) for seq, h in connection.execute(_LEAF_HASHES, {"ids": leaves})})
    interior = [node_id(level, index) for level, index in keys if level > 0]
    if interior:
        found.update({node_of(i): bytes.fromhex(h) for i, h in connection.execute(_NODE_HASHES, {"ids": interior})})
    missing = keys - found.keys()
    if missing:
        raise ProofError(f"the log is missing stored nodes {sorted(missing)[:4]}")
    return found


def root_at(session: Session, size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    if size > tree_size(session):
        raise ProofError(f"the log has fewer than {size} entries")
    keys = range_nodes(0, size)
    return hashes_from_nodes([(0, size)], fetch_nodes(session, keys))[0]


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    if size > tree_size(session):
        raise ProofError(f"the log has fewer than {size} entries")
    ranges = inclusion_ranges(index, size)
    return hashes_from_nodes(ranges, fetch_nodes(session, needed_nodes(ranges)))


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    if new_size > tree_size(session):
        raise ProofError(f"the log has fewer than {new_size} entries")
    if old_size == new_size:
        return []
    ranges = consistency_ranges(old_size, new_size)
    return hashes_from_nodes(ranges, fetch_nodes(session, needed_nodes(ranges)))
