"""Is this stored record the one the audit log committed to? The one check for every record a gate or a run relies on
(data-quality results, run-gate decisions, evaluation results next).

A record stored beside the log (a row with a result, a decision's input) is only as trustworthy as the entry that
committed to its digest. This proves, inside the caller's transaction:

1. the entry exists, with the expected action, subject and decision (a record pointing at another entry, or at none,
   was planted or moved);
2. the entry's payload re-hashes to the digest in its leaf, and the leaf to its stored leaf hash (an edited payload
   or leaf; the Merkle tree and its signed tree heads, which `audit verify` checks, commit to the leaf hash);
3. the payload states exactly what the stored record says (`fields`, typically the record's id and digest: an edited
   record no longer matches what was logged).

What this does not prove on its own: that the leaf is in the tree a signed tree head committed to. An insider who
rewrites a record, its entry's payload, leaf and leaf hash together passes steps 1-3; the stored Merkle nodes and
signed tree heads then disagree, which `forgegov audit verify` reports. Proving inclusion under the newest signed
tree head here, so that the gate itself refuses, is the next step (issue 12: authority flows only from signatures).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.hashing import leaf_hash
from forgegov.foundation.errors import StateConflict, StoreTampered
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import AuditAction

_HINT = "run `forgegov audit verify`; the store was edited outside forgegov"


def committed_payload(session: Session, *, what: str, action: AuditAction, subject_digest: str | None,
                      fields: Mapping[str, Any], seq: int | None = None,
                      decision_id: str | None = None) -> dict[str, Any]:
    """The payload of the entry that committed to the record `what` describes, found by `seq` or by `decision_id`,
    once steps 1-3 hold; StoreTampered otherwise, StateConflict when the payload was redacted (lawfully erased, so
    the record can no longer be tied to the log)."""
    if (seq is None) == (decision_id is None):
        raise ValueError("find the entry by seq or by decision_id, exactly one")
    # 1. The entry the record names, as the record says it was made.
    if seq is not None:
        entry = session.get(AuditEntry, seq)
    else:
        entry = session.exec(select(AuditEntry).where(AuditEntry.decision_id == decision_id,
                                                      AuditEntry.action == action)).first()
    if entry is None or entry.action != action or entry.subject_digest != subject_digest \
            or (decision_id is not None and entry.decision_id != decision_id):
        raise StoreTampered(f"{what} has no matching {action.value} entry in the audit log", hint=_HINT)
    if entry.payload is None:
        # Lawful erasure leaves a record of itself; a payload missing without one was deleted behind the log's back.
        redaction = session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.AUDIT_REDACT,
                                                          AuditEntry.seq > entry.seq)).all()
        if not any(_payload_object(r).get("seq") == entry.seq for r in redaction if r.payload is not None):
            raise StoreTampered(f"the audit entry of {what} (seq {entry.seq}) has lost its payload, and no "
                                "audit.redact entry erased it", hint=_HINT)
        raise StateConflict(f"the audit entry of {what} (seq {entry.seq}) was redacted, so it can no longer be tied "
                            "to the log", hint="redo the step that produced it")
    # 2. Payload → leaf → leaf hash.
    try:
        leaf = json.loads(entry.leaf)
    except ValueError as exc:
        raise StoreTampered(f"the audit entry of {what} (seq {entry.seq}) holds no readable leaf", hint=_HINT) from exc
    payload_digest = "sha256:" + hashlib.sha256(entry.payload.encode()).hexdigest()
    if not isinstance(leaf, dict) or leaf.get("payload_digest") != payload_digest \
            or leaf_hash(entry.leaf.encode()).hex() != entry.leaf_hash \
            or (leaf.get("seq"), leaf.get("action"), leaf.get("subject_digest"), leaf.get("decision_id"),
                leaf.get("time"), leaf.get("actor")) \
            != (entry.seq, entry.action, entry.subject_digest, entry.decision_id, entry.time, entry.actor):
        raise StoreTampered(f"the audit entry of {what} (seq {entry.seq}) no longer hashes to what the log committed "
                            "to", hint=_HINT)
    # 3. What the entry says about the record.
    payload = _payload_object(entry)
    differing = sorted(name for name, value in fields.items() if payload.get(name) != value)
    if differing:
        raise StoreTampered(f"{what} differs from what its audit entry (seq {entry.seq}) committed to "
                            f"({', '.join(differing)})", hint=_HINT)
    return payload


def _payload_object(entry: AuditEntry) -> dict[str, Any]:
    try:
        payload = json.loads(entry.payload or "")
    except ValueError as exc:
        raise StoreTampered(f"audit entry {entry.seq} holds a payload that is not JSON", hint=_HINT) from exc
    if not isinstance(payload, dict):
        raise StoreTampered(f"audit entry {entry.seq} holds a payload that is not an object", hint=_HINT)
    return payload


def logged_string(seq: int, payload: str | None, action: str, name: str) -> str:
    """Field `name` of entry `seq`'s payload, a string, or StoreTampered naming the entry (for lookups that walk
    entries of one action, such as revocations or checks, before holding any record against them)."""
    try:
        value = json.loads(payload or "").get(name)
    except (ValueError, AttributeError) as exc:
        raise StoreTampered(f"audit entry {seq} ({action}) holds no readable payload", hint=_HINT) from exc
    if not isinstance(value, str):
        raise StoreTampered(f"audit entry {seq} ({action}) names no {name}", hint=_HINT)
    return value
