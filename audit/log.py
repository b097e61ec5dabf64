"""The audit log: append inside the caller's transaction, so an entry exists exactly when its state change does.

An entry's leaf bytes are the RFC 8785 form of its fields; the payload itself is kept beside the leaf and committed
to by digest, so a payload can later be erased lawfully without breaking the tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from forgegov.audit.hashing import leaf_hash
from forgegov.governance.canonical import canonical_bytes, digest_of, sha256_digest
from forgegov.governance.clock import now_rfc3339
from forgegov.governance.errors import ForgegovError
from forgegov.governance.store.models import RECORD_VERSION, AuditEntry


class AuditIntegrityError(ForgegovError):
    exit_code = 1


@dataclass(frozen=True)
class EntryDraft:
    actor: str
    action: str
    payload: dict[str, Any]
    subject_digest: str | None = None
    decision_id: str | None = None
    policy_revision: str | None = None


def leaf_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "v": entry.record_version, "seq": entry.seq, "time": entry.time, "actor": entry.actor,
        "action": entry.action, "subject_digest": entry.subject_digest, "decision_id": entry.decision_id,
        "policy_revision": entry.policy_revision, "payload_digest": entry.payload_digest,
    }


def append(session: Session, draft: EntryDraft) -> AuditEntry:
    """Append one entry. The caller's write transaction serialises writers, so `seq` stays contiguous."""
    last = session.exec(select(func.max(AuditEntry.seq))).one()
    payload = canonical_bytes(draft.payload)
    entry = AuditEntry(
        seq=0 if last is None else last + 1,
        record_version=RECORD_VERSION,
        time=now_rfc3339(),
        actor=draft.actor,
        action=draft.action,
        subject_digest=draft.subject_digest,
        decision_id=draft.decision_id,
        policy_revision=draft.policy_revision,
        payload=payload.decode(),
        payload_digest=sha256_digest(payload),
        leaf_hash="",
    )
    entry.leaf_hash = leaf_hash(canonical_bytes(leaf_fields(entry))).hex()
    session.add(entry)
    return entry


def verify_entries(session: Session) -> int:
    """Check sequence contiguity, every payload digest and every leaf hash; returns the number of entries."""
    expected = 0
    for entry in session.exec(select(AuditEntry).order_by(AuditEntry.seq)):
        if entry.seq != expected:
            raise AuditIntegrityError(f"audit entry {expected} is missing (next present is {entry.seq})")
        if digest_of(json.loads(entry.payload)) != entry.payload_digest:
            raise AuditIntegrityError(f"audit entry {entry.seq}: payload does not match its digest")
        if leaf_hash(canonical_bytes(leaf_fields(entry))).hex() != entry.leaf_hash:
            raise AuditIntegrityError(f"audit entry {entry.seq}: fields do not match its leaf hash")
        expected += 1
    return expected
