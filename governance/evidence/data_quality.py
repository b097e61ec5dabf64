"""`forgegov dataset check`: the data-quality evidence the dataset gate decides on.

A check reads the dataset through the digest-verified reader (so its findings are about exactly the registered
bytes), runs the kind's quality suite and the contamination check, stores the full result, and appends the result's
digest to the audit log with a statement the checker signs over it. The gate later re-reads every check of the
dataset's bytes, re-verifies both digests and each signature under its checker's key, and hands OPA the summary that
`summarize` makes of each; the policy decides whose checks count, and a finding in any current check stands (a modified
client that records "no findings" afterwards hides nothing). Results and summaries hold counts, rates and `file:line` locations, never the
values found.

Contamination runs in both directions: an eval dataset is compared with every registered training dataset, and a
training dataset with every registered eval dataset, so the order of registration does not matter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload, logged_string
from forgegov.audit.recorder import AuditedTransaction, EntryDraft, audited_transaction
from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import Purpose, public_key_from_b64, sign, verify
from forgegov.foundation.errors import BadInput, DigestMismatch, SignatureInvalid, StateConflict, StoreTampered
from forgegov.foundation.manifest import FilesManifest
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry, DatasetCheck
from forgegov.foundation.vocabulary import AssetKind, AssetState, AuditAction, DatasetKind
from forgegov.governance.asset_kinds import KINDS, DatasetSpec
from forgegov.governance.datasets.contamination import NgramIndex, check
from forgegov.governance.datasets.quality import load_suite, run_suite
from forgegov.governance.datasets.reader import VerifiedData, read_verified
from forgegov.governance.identities import get_identity, require_active, signing_key
from forgegov.governance.registry import check_asset_name, label, manifest_of, register_asset, resolve

CHECK_VERSION = 1
STATEMENT_VERSION = 1

# Which part of the data gate an expectation speaks for. The policy lets duplicates, PII and secrets through under
# thresholds; every other failed expectation (schema, required fields, lengths, and any kind added later) blocks.
_CATEGORY_BY_COLUMN = {"_length": "length", "_record_key": "duplicates", "_pii": "pii", "_secrets": "secrets"}
_CATEGORY_BY_TYPE = {"expect_column_to_exist": "schema", "expect_column_values_to_not_be_null": "non-null"}


@dataclass(frozen=True)
class CheckOutcome:
    check_id: str
    dataset: str
    dataset_digest: str
    result_digest: str
    audit_seq: int
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"check_id": self.check_id, "dataset": self.dataset, "dataset_digest": self.dataset_digest,
                "result_digest": self.result_digest, "audit_seq": self.audit_seq, "summary": self.summary}


@dataclass(frozen=True)
class UnsignedCheck:
    """A check computed, its statement not yet signed: the signer adds their name, key id and time, and signs."""

    check_id: str
    result: dict[str, Any]
    result_digest: str
    summary: dict[str, Any]
    statement: dict[str, Any]  # without the signer's fields

    def signed_by(self, signer: Signer) -> PendingCheck:
        statement = {**self.statement, "signer": signer.name, "key_id": signer.key_id, "signed_at": now_rfc3339()}
        return PendingCheck(self.check_id, self.result, self.result_digest, self.summary, statement,
                            sign(signer.private_key, Purpose.DATA_QUALITY, statement))


@dataclass(frozen=True)
class PreparedRegistration:
    """A dataset as it will be registered, its bytes scanned and its first check computed, unsigned."""

    draft: Asset
    manifest: FilesManifest
    unsigned: UnsignedCheck

    @property
    def label(self) -> str:
        return label(self.draft)


@dataclass(frozen=True)
class PendingCheck:
    """A check computed and signed, not yet recorded: `record_check` writes it in the caller's transaction."""

    check_id: str
    result: dict[str, Any]
    result_digest: str
    summary: dict[str, Any]
    statement: dict[str, Any]
    signature: str


def check_dataset(workspace: Workspace, ref: str, *, signer: Signer,
                  progress: Callable[[str], None] | None = None) -> CheckOutcome:
    """Check a registered dataset again (after new eval or training data arrived, or a new suite version)."""
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, signer.name))
        asset = resolve(session, ref, AssetKind.DATASET)
        counterparts = counterparts_of(session, asset)
        session.expunge_all()
    pending = compute_check(asset, counterparts, signer, progress)
    with audited_transaction(workspace) as tx:
        seq = record_check(tx, asset, pending)
    return CheckOutcome(pending.check_id, label(asset), asset.digest, pending.result_digest, seq, pending.summary)


def register_and_check(workspace: Workspace, path: Path, name: str, owner: str, spec: DatasetSpec, *,
                       signer: Signer, hashing: Callable[[int], None] | None = None,
                       progress: Callable[[str], None] | None = None) -> tuple[Asset, CheckOutcome]:
    """Register a dataset and record its first check as one step: the check is computed (and signed) before the
    registration's transaction and written inside it, so a process killed at any point leaves both or neither,
    never a dataset registered without its check."""
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, signer.name))
    prepared = prepare_registration(workspace, path, name, owner, spec, hashing, progress)
    return register_prepared(workspace, path, name, owner, spec, prepared, prepared.unsigned.signed_by(signer))


def prepare_registration(workspace: Workspace, path: Path, name: str, owner: str, spec: DatasetSpec,
                         hashing: Callable[[int], None] | None = None,
                         progress: Callable[[str], None] | None = None) -> PreparedRegistration:
    """Scan the bytes at PATH and compute their first check, as the dataset will be registered (by the team server
    for a member, who then signs the check it computed)."""
    manifest = KINDS[AssetKind.DATASET].scan(workspace, path, spec, hashing)
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, owner))
        version = (session.exec(select(func.max(Asset.version)).where(Asset.kind == AssetKind.DATASET,
                                                                      Asset.name == name)).one() or 0) + 1
        # The asset as it will be registered; what the check reads of it (bytes, kind, label) is fixed now.
        draft = Asset(kind=AssetKind.DATASET, name=check_asset_name(name), version=version, digest=manifest.digest,
                      owner=owner, state=AssetState.REGISTERED, dataset_kind=spec.kind.value,
                      classification=spec.classification.value, manifest=canonical_bytes(manifest.to_document()).decode(),
                      source_path=str(path.resolve()), registered_by=owner, registered_at=now_rfc3339())
        counterparts = counterparts_of(session, draft)
        session.expunge_all()
    return PreparedRegistration(draft, manifest, compute_unsigned(draft, counterparts, progress))


def register_prepared(workspace: Workspace, path: Path, name: str, owner: str, spec: DatasetSpec,
                      prepared: PreparedRegistration, pending: PendingCheck) -> tuple[Asset, CheckOutcome]:
    """Register the dataset `prepared` describes with its signed first check, in one transaction."""
    draft, manifest = prepared.draft, prepared.manifest
    recorded: list[int] = []

    def record(tx: AuditedTransaction, asset: Asset) -> None:
        if label(asset) != label(draft):
            raise StateConflict(f"{label(draft)} was registered by someone else meanwhile",
                                hint="run the command again")
        recorded.append(record_check(tx, asset, pending))

    asset = register_asset(workspace, AssetKind.DATASET, path, name, owner, dataset=spec, scanned=manifest,
                           and_then=record)
    return asset, CheckOutcome(pending.check_id, label(asset), asset.digest, pending.result_digest, recorded[0],
                               pending.summary)


def compute_check(asset: Asset, counterparts: list[Asset], signer: Signer,
                  progress: Callable[[str], None] | None = None) -> PendingCheck:
    """Run the kind's suite and the contamination check on `asset`'s verified bytes, and sign the result."""
    return compute_unsigned(asset, counterparts, progress).signed_by(signer)


def compute_unsigned(asset: Asset, counterparts: list[Asset],
                     progress: Callable[[str], None] | None = None) -> UnsignedCheck:
    """Run the kind's suite and the contamination check on `asset`'s verified bytes."""
    step = progress or (lambda _stage: None)
    if asset.dataset_kind is None:
        raise BadInput(f"{label(asset)} was registered before datasets had a kind, so no suite applies to it",
                       hint="register its bytes again with --kind and --classification")
    kind = DatasetKind(asset.dataset_kind)
    step(f"verifying the bytes of {label(asset)}")
    data = read_verified(Path(asset.source_path), manifest_of(asset), digest=asset.digest)
    step(f"running the {kind.value} quality suite on {len(data.records)} records")
    quality = run_suite(data.records, data.locations, kind)
    step("checking train/eval contamination")
    contamination = _contamination(asset, kind, data, counterparts)
    result = {
        "check_version": CHECK_VERSION, "dataset": label(asset), "dataset_digest": asset.digest,
        "classification": asset.classification, "format": data.format.value,
        "quality": quality, "contamination": contamination,
    }
    result_digest = digest_of(result)
    check_id = str(uuid.uuid4())
    statement = {"v": STATEMENT_VERSION, "check_id": check_id, "dataset_digest": asset.digest,
                 "result_digest": result_digest, "suite_digest": quality["suite_digest"],
                 "suite_version": quality["suite_version"]}
    return UnsignedCheck(check_id, result, result_digest, summarize(result), statement)


def record_check(tx: AuditedTransaction, asset: Asset, pending: PendingCheck) -> int:
    """Store the check and append its entry (the result's digest, the signed statement); the entry's seq."""
    summary, contamination = pending.summary, pending.result["contamination"]
    actor = pending.statement["signer"]
    entry = tx.append(EntryDraft(
        actor=actor, action=AuditAction.DATASET_CHECK, subject_digest=asset.digest,
        payload={"check_id": pending.check_id, "dataset": label(asset), "result_digest": pending.result_digest,
                 "statement": pending.statement, "signature": pending.signature,
                 "suite_digest": summary["suite_digest"], "failed": [f["check"] for f in summary["failed"]],
                 "pii_rate": summary["pii"]["rate"], "secrets_rate": summary["secrets"]["rate"],
                 "contaminated": sum(c["contaminated"] for c in contamination["compared"]),
                 "unchecked": len(contamination["unchecked"])},
    ))
    tx.session.add(DatasetCheck(
        id=pending.check_id, asset_id=asset.id, dataset_digest=asset.digest,
        suite_digest=summary["suite_digest"], result=canonical_bytes(pending.result).decode(),
        result_digest=pending.result_digest, checked_by=actor, checked_at=pending.statement["signed_at"],
        audit_seq=entry.seq,
    ))
    return entry.seq


def counterparts_of(session: Session, asset: Asset) -> list[Asset]:
    """The datasets on the other side of the train/eval line; rejected ones can never be trained or scored on."""
    is_eval = asset.dataset_kind == DatasetKind.EVAL.value
    query = select(Asset).where(Asset.kind == AssetKind.DATASET, Asset.state != AssetState.REJECTED,
                                Asset.id != asset.id)
    others = session.exec(query.order_by(Asset.name, Asset.version)).all()
    return [o for o in others if (o.dataset_kind == DatasetKind.EVAL.value) != is_eval]


def _contamination(asset: Asset, kind: DatasetKind, data: VerifiedData, counterparts: list[Asset]) -> dict[str, Any]:
    suite = load_suite(kind)
    own_texts = [suite.text_of(record) for record in data.records]
    is_eval = kind is DatasetKind.EVAL
    own_index = None if is_eval else NgramIndex().add_all(own_texts)
    compared, unchecked = [], []
    for other in counterparts:
        try:
            other_data = read_verified(Path(other.source_path), manifest_of(other), digest=other.digest)
        except DigestMismatch as exc:
            # Reported, not skipped silently: the policy decides whether an unverifiable counterpart blocks.
            unchecked.append({"dataset": label(other), "digest": other.digest, "reason": exc.message})
            continue
        other_suite = load_suite(DatasetKind(other.dataset_kind))
        other_texts = [other_suite.text_of(record) for record in other_data.records]
        if is_eval:
            report = check(zip(data.locations, own_texts, strict=True), NgramIndex().add_all(other_texts))
        else:
            report = check(zip(other_data.locations, other_texts, strict=True), own_index)
        compared.append({"dataset": label(other), "digest": other.digest, **report.to_evidence()})
    return {"direction": "eval-against-training" if is_eval else "training-against-eval",
            "compared": compared, "unchecked": unchecked}


def category_of(expectation: dict[str, Any]) -> str:
    return _CATEGORY_BY_COLUMN.get(expectation.get("column") or "",
                                   _CATEGORY_BY_TYPE.get(expectation["type"], "schema"))


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a check that OPA reads. Every figure the policy compares is here, or the policy denies."""
    quality = result["quality"]
    by_category: dict[str, dict[str, Any]] = {}
    for expectation in quality["expectations"]:
        by_category.setdefault(category_of(expectation), expectation)
    findings = quality["sensitive"]["findings"]

    def figures(category: str) -> dict[str, Any]:
        expectation = by_category.get(category)
        if expectation is None:
            return {}
        return {"records": expectation["unexpected_count"], "rate": expectation["unexpected_percent"] / 100,
                "sample_locations": expectation["sample_locations"]}

    def sensitive(category: str) -> dict[str, Any]:
        return {**figures(category),
                "findings": {name: {k: v for k, v in finding.items() if k != "category"}
                             for name, finding in findings.items()
                             if finding["category"] == ("pii" if category == "pii" else "secret") and finding["count"]}}

    return {
        "check_version": result["check_version"], "dataset_digest": result["dataset_digest"],
        "suite": quality["suite"], "suite_version": quality["suite_version"], "suite_digest": quality["suite_digest"],
        "records": quality["records"],
        "failed": [{"check": category_of(e), "expectation": e["type"], "column": e["column"],
                    "unexpected_count": e["unexpected_count"], "unexpected_percent": e["unexpected_percent"],
                    "sample_locations": e["sample_locations"]}
                   for e in quality["expectations"] if not e["success"]],
        "duplicates": figures("duplicates"),
        "pii": sensitive("pii"),
        "secrets": sensitive("secrets"),
        "contamination": result["contamination"],
    }


def checks_evidence(session: Session, asset: Asset, *, before: int | None = None) -> list[dict[str, Any]]:
    """Every check of `asset`'s bytes as gate evidence, newest first, each proven before the policy sees it:

    1. the stored result hashes to its recorded digest and is about these bytes (an edited result);
    2. the audit entry that recorded it committed to that digest (a planted or moved check);
    3. the statement in that entry verifies under the key the log bound to its checker's name, and names this check,
       these bytes and this result (a check recorded in someone else's name, or one nobody signed).

    Any failure stops the gate: evidence that cannot be trusted must not reach the policy at all.
    """
    rows = select(DatasetCheck).where(DatasetCheck.dataset_digest == asset.digest)
    logged = select(AuditEntry.seq, AuditEntry.payload).where(AuditEntry.action == AuditAction.DATASET_CHECK,
                                                              AuditEntry.subject_digest == asset.digest)
    if before is not None:  # as the decision at entry `before` saw them (replay)
        rows, logged = rows.where(DatasetCheck.audit_seq < before), logged.where(AuditEntry.seq < before)
    stored = {check.id: check for check in session.exec(rows)}
    entries = session.exec(logged.order_by(AuditEntry.seq.desc())).all()  # type: ignore[attr-defined]
    proven = []
    # The log says which checks exist; a stored result deleted to hide its finding is missed here, not ignored.
    for seq, payload in entries:
        check_id = _logged_check_id(seq, payload)
        check = stored.pop(check_id, None) if check_id is not None else None
        if check is None and check_id is not None:
            raise StoreTampered(f"audit entry {seq} records data-quality check {check_id} of {label(asset)}, whose "
                                "stored result is gone: the store was altered",
                                hint="run `forgegov audit verify`, then check the data again")
        if check is not None:
            proven.append(_proven(session, asset, check))
    # A stored check no entry records was planted; _proven names it.
    proven.extend(_proven(session, asset, check) for check in stored.values())
    return proven


def _logged_check_id(seq: int, payload: str | None) -> str | None:
    """The check an entry records; None when the entry was lawfully redacted (its check then cannot count)."""
    return None if payload is None else logged_string(seq, payload, AuditAction.DATASET_CHECK, "check_id")


def _proven(session: Session, asset: Asset, stored: DatasetCheck) -> dict[str, Any]:
    what = f"data-quality check {stored.id} of {label(asset)}"
    try:
        result = json.loads(stored.result)
    except ValueError as exc:
        raise StoreTampered(f"stored {what} is not JSON: the store was altered",
                            hint="run `forgegov audit verify`, then check the data again") from exc
    if not isinstance(result, dict) or digest_of(result) != stored.result_digest or stored.dataset_digest != asset.digest \
            or result.get("dataset_digest") != asset.digest:
        raise StoreTampered(f"stored {what} does not match its digest: the store was altered",
                            hint="run `forgegov audit verify`, then check the data again")
    try:
        payload = committed_payload(session, what=what, action=AuditAction.DATASET_CHECK, seq=stored.audit_seq,
                                    subject_digest=asset.digest,
                                    fields={"check_id": stored.id, "result_digest": stored.result_digest})
    except StateConflict as redacted:
        raise StateConflict(redacted.message, hint=f"run `forgegov dataset check {label(asset)}` again") from redacted
    statement, signature = payload.get("statement"), payload.get("signature")
    if not isinstance(statement, dict) or not isinstance(signature, str):
        raise StoreTampered(f"{what} carries no signed statement: it was not recorded by this forgegov",
                            hint=f"run `forgegov dataset check {label(asset)}` again")
    expected = {"check_id": stored.id, "dataset_digest": asset.digest, "result_digest": stored.result_digest,
                "signer": stored.checked_by}
    try:
        if {name: statement.get(name) for name in expected} != expected:
            raise SignatureInvalid(f"the statement names another check, dataset, result or signer than {what}")
        # The key the log bound to the checker's name when they signed (a rotation since does not void the check).
        signer = signing_key(session, stored.checked_by, str(statement.get("key_id")))
        verify(public_key_from_b64(signer.public_key), Purpose.DATA_QUALITY, statement, signature)
    except SignatureInvalid as exc:
        raise StoreTampered(f"{what} is not what {stored.checked_by} signed: {exc.message}",
                            hint="run `forgegov audit verify`") from exc
    return {"check_id": stored.id, "result_digest": stored.result_digest, "checked_at": stored.checked_at,
            "checked_by": stored.checked_by, **summarize(result)}
