"""The state the log says, recomputed from its entries, held against the rows the store keeps.

Every fact a gate relies on about an asset or an identity was set by an audit entry: an asset's name, version and
owner by its registration, its state and release by the last gate decision on it; an identity's key by its
`identity.create`, its revocation by `identity.revoke`; the policies put in force, one `policy.activate` each, in
order. `audit verify` replays those entries and lists every row that
says otherwise, so that an edit of the store (`UPDATE asset SET state = 'approved'`) is reported by the verifier, not
only refused by the gate that meets it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from forgegov.foundation.store.models import Asset, AuditEntry, DatasetCheck, Decision, Identity, PolicyActivation
from forgegov.foundation.vocabulary import AssetKind, AuditAction

_REGISTERED = {AuditAction.registered(kind).value: kind.value for kind in AssetKind}
_IDENTITY = (AuditAction.IDENTITY_CREATE.value, AuditAction.IDENTITY_ENROL.value, AuditAction.IDENTITY_REVOKE.value,
             AuditAction.IDENTITY_ROTATE.value)
_ACTIVATE = AuditAction.POLICY_ACTIVATE.value
_CHECK = AuditAction.DATASET_CHECK.value


@dataclass
class _Recorded:
    seq: int
    facts: dict[str, Any]
    decided: bool = False  # a gate decision has set state and release since the registration


@dataclass
class StateReport:
    rows: int = 0  # asset and identity rows held against the log
    differences: list[str] = field(default_factory=list)
    unprovable: list[str] = field(default_factory=list)  # entries whose payload was lawfully erased


def rows_against_log(session: Session) -> StateReport:
    report = StateReport()
    assets: dict[tuple[str, str], _Recorded] = {}
    identities: dict[str, _Recorded] = {}
    activations: list[_Recorded] = []
    # Records kept beside the log, by id: the entry that committed to each, and what it committed to.
    recorded_rows: dict[str, dict[str, _Recorded]] = {"decision": {}, "dataset_check": {}}
    erased_checks: set[int] = set()
    entries = session.execute(select(AuditEntry.seq, AuditEntry.action, AuditEntry.subject_digest, AuditEntry.payload,
                                     AuditEntry.decision_id)
                              .where(AuditEntry.action.in_([*_REGISTERED, *_IDENTITY, _ACTIVATE, _CHECK])  # type: ignore[attr-defined]
                                     | (AuditEntry.action.like("gate.%.%")))  # type: ignore[attr-defined]
                              .order_by(AuditEntry.seq))
    for seq, action, digest, payload_text, decision_id in entries:
        if decision_id is not None and action != AuditAction.GATE_REFUSED:
            recorded_rows["decision"][decision_id] = _Recorded(seq, {} if payload_text is None else {
                name: json.loads(payload_text).get(name) for name in ("result", "input_digest", "policy_digest")})
        if action == _CHECK and payload_text is None:
            erased_checks.add(seq)
        elif action == _CHECK:
            check = json.loads(payload_text)
            recorded_rows["dataset_check"][str(check.get("check_id"))] = _Recorded(seq, {
                "result_digest": check.get("result_digest"), "audit_seq": seq})
        if payload_text is None:
            # Lawfully erased: what it set can no longer be recomputed, so it is not held against the rows.
            report.unprovable.append(f"entry {seq} ({action}) was redacted: the rows it set are not checked")
            if action in _REGISTERED:
                assets[(_REGISTERED[action], digest)] = _Recorded(seq, {})
            for (_, subject), recorded in assets.items():
                if subject == digest and action not in _REGISTERED:
                    recorded.facts.pop("state", None)
                    recorded.decided = False
            continue
        payload = json.loads(payload_text)
        if action == _ACTIVATE:
            activations.append(_Recorded(seq, {name: payload.get(name) for name in ("digest", "revision",
                                                                                     "decision_id")}))
        elif action in _REGISTERED:
            assets[(_REGISTERED[action], digest)] = _Recorded(seq, {
                "name": payload.get("name"), "version": payload.get("version"), "owner": payload.get("owner"),
                "state": "registered"})
        elif action in (AuditAction.IDENTITY_CREATE, AuditAction.IDENTITY_ENROL):
            identities.setdefault(payload.get("name"), _Recorded(seq, {
                "key_id": payload.get("key_id"), "public_key": payload.get("public_key"), "revoked": False}))
        elif action == AuditAction.IDENTITY_ROTATE:
            if payload.get("name") in identities:
                recorded = identities[payload["name"]]
                recorded.seq = seq
                recorded.facts.update(key_id=payload.get("key_id"), public_key=payload.get("public_key"))
        elif action == AuditAction.IDENTITY_REVOKE:
            if payload.get("name") in identities:
                recorded = identities[payload["name"]]
                recorded.seq, recorded.facts["revoked"] = seq, True
        elif action != AuditAction.GATE_REFUSED and isinstance(payload.get("subject"), str):
            kind = payload["subject"].split("/", 1)[0]
            recorded_asset = assets.get((kind, digest))
            if recorded_asset is not None:
                recorded_asset.seq, recorded_asset.decided = seq, True
                recorded_asset.facts.update(state=payload.get("state"), release=payload.get("release"))
    found: set[tuple[str, str]] = set()
    for asset in session.scalars(select(Asset)):
        report.rows += 1
        key = (asset.kind.value, asset.digest)
        found.add(key)
        where = f"asset row {asset.id} ({asset.kind.value}/{asset.name}@{asset.version})"
        recorded = assets.get(key)
        if recorded is None:
            report.differences.append(f"{where} has no registration entry in the log")
            continue
        row = {name: value for name, value in (("name", asset.name), ("version", asset.version),
                                               ("owner", asset.owner), ("state", asset.state.value))
               if name in recorded.facts}
        if recorded.decided:
            row["release"] = asset.release
        elif "state" in recorded.facts and asset.release not in (None, "none"):
            row["release"], recorded.facts["release"] = asset.release, "none"
        report.differences.extend(f"{where}: {name} is {row[name]!r}, the log (entry {recorded.seq}) says "
                                  f"{recorded.facts.get(name)!r}" for name in row if row[name] != recorded.facts.get(name))
    report.differences.extend(f"the {kind} {digest} registered in the log (entry {recorded.seq}) has no row in the "
                              "store" for (kind, digest), recorded in assets.items() if (kind, digest) not in found)
    for identity in session.scalars(select(Identity)):
        report.rows += 1
        recorded = identities.get(identity.name)
        where = f"identity row {identity.name!r}"
        if recorded is None:
            report.differences.append(f"{where} has no identity.create or identity.enrol entry in the log")
            continue
        row = {"key_id": identity.key_id, "public_key": identity.public_key,
               "revoked": identity.revoked_at is not None}
        report.differences.extend(f"{where}: {name} is {row[name]!r}, the log (entry {recorded.seq}) says "
                                  f"{recorded.facts[name]!r}" for name in row if row[name] != recorded.facts[name])
    _activations_against_log(session, activations, report)
    _records_against_log(session, recorded_rows, erased_checks, report)
    return report


def _records_against_log(session: Session, recorded: dict[str, dict[str, _Recorded]], erased_checks: set[int],
                         report: StateReport) -> None:
    """Decision and data-quality check rows: one per entry that recorded it, saying what the entry committed to. A
    row deleted hides a decision from replay or a finding from the gate; one planted or edited changes what they
    read."""
    stored = {
        "decision": session.execute(select(Decision.id, Decision.result, Decision.input_digest,
                                           Decision.policy_digest)),
        "dataset_check": session.execute(select(DatasetCheck.id, DatasetCheck.result_digest, DatasetCheck.audit_seq)),
    }
    for table, rows in stored.items():
        logged = recorded[table]
        for row_id, *values in rows:
            report.rows += 1
            entry = logged.pop(row_id, None)
            where = f"{table} row {row_id}"
            if table == "dataset_check" and entry is None and values[1] in erased_checks:
                continue  # its entry was lawfully redacted: it no longer counts, and cannot be checked
            if entry is None:
                report.differences.append(f"{where} has no audit entry that recorded it")
                continue
            names = list(entry.facts)
            facts = dict(zip(("result", "input_digest", "policy_digest") if table == "decision"
                             else ("result_digest", "audit_seq"), values, strict=True))
            report.differences.extend(
                f"{where}: {name} is {getattr(facts[name], 'value', facts[name])!r}, the log (entry {entry.seq}) says "
                f"{entry.facts[name]!r}" for name in names if getattr(facts[name], "value", facts[name]) != entry.facts[name])
        report.differences.extend(f"audit entry {entry.seq} records {table} {row_id}, which has no row in the store"
                                  for row_id, entry in logged.items())


def _activations_against_log(session: Session, activations: list[_Recorded], report: StateReport) -> None:
    rows = list(session.scalars(select(PolicyActivation).order_by(PolicyActivation.id)))
    report.rows += len(rows)
    for index in range(max(len(rows), len(activations))):
        if index >= len(rows):
            report.differences.append(f"policy.activate entry {activations[index].seq} has no policy_activation row")
            continue
        row = rows[index]
        where = f"policy_activation row {row.id} ({row.revision})"
        if index >= len(activations):
            report.differences.append(f"{where} has no policy.activate entry in the log")
            continue
        recorded = activations[index]
        values = {"digest": row.digest, "revision": row.revision, "decision_id": row.decision_id}
        report.differences.extend(f"{where}: {name} is {values[name]!r}, the log (entry {recorded.seq}) says "
                                  f"{recorded.facts[name]!r}" for name in values if values[name] != recorded.facts[name])
