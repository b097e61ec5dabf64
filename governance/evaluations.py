"""Drift-evaluation results as signed, logged evidence.

An evaluation result is an in-toto Statement (predicate type `EVAL_PREDICATE`) naming the candidate checkpoint as
its subject and, in its predicate, the base it was compared with, every suite and dataset digest, the decoding,
scorer versions, code, the policy design it was decided under, and the numbers. forgegov signs it with the platform
key (DSSE, as provenance) and commits the envelope itself to the audit log (`eval.record`, never redactable); the
per-item outputs go to `artifacts/evaluations/<id>/items.jsonl`, whose digest the statement names.

Reading a result back (`verified_results`) trusts no row: it walks the log's `eval.record` entries of the checkpoint
and, for each,

1. proves the entry's payload is the one its leaf committed to (an edited payload);
2. verifies the envelope under the pinned platform key (a statement edited or made up);
3. checks that the statement's subject is the entry's subject, and its id the entry's (a result of other bytes, or
   one moved from another checkpoint's entry).

Any failure is tampering and stops whoever reads: the promotion gate, `eval show`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.config import Workspace, fsync_dir
from forgegov.foundation.crypto.dsse import sign_envelope, strict_json, verify_envelope
from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, SignatureInvalid
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.job_entries import JobKind, started
from forgegov.governance.runs.provenance import IN_TOTO_PAYLOAD_TYPE, PLATFORM_KEY, STATEMENT_TYPE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EVAL_PREDICATE = "https://forgegov.dev/attestations/drift-evaluation/v1"
ENVELOPE_FILE = "result.dsse.json"
ITEMS_FILE = "items.jsonl"


class EvaluationInvalid(SignatureInvalid):
    """The envelope verifies, but what it signs is not a drift-evaluation result for this entry's checkpoint."""


@dataclass(frozen=True)
class EvalRecord:
    """One verified evaluation result: the log entry that committed to it, and its signed statement."""

    seq: int
    time: str
    actor: str
    statement: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.predicate["evaluation_id"])

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement["predicate"]

    @property
    def job(self) -> int | None:
        """The job (its `job.start` entry) that made this result; None for a result made before results named one."""
        job = self.predicate.get("job")
        return job if isinstance(job, int) and not isinstance(job, bool) else None

    @property
    def candidate_digest(self) -> str:
        return "sha256:" + self.statement["subject"][0]["digest"]["sha256"]

    def summary(self) -> dict[str, Any]:
        """What a reader needs of the result (the whole signed statement is `statement`)."""
        predicate = self.predicate
        return {"id": self.id, "seq": self.seq, "time": self.time, "actor": self.actor, "job": self.job,
                "candidate": predicate["candidate"], "base": predicate["base"], "policy": predicate["policy"],
                "design": predicate["design"],
                "suites": [{"name": s["name"], "digest": s["digest"]} for s in predicate["suites"]],
                "metrics": {m["metric"]: {k: m[k] for k in _SUMMARY_FIELDS} for m in predicate["metrics"]}}


_SUMMARY_FIELDS = ("task", "verdict", "n", "base_mean", "candidate_mean", "difference", "interval", "margin", "power",
                   "required", "adjusted_p", "noise_floor")


def statement_for(candidate: dict[str, str], predicate: dict[str, Any]) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": candidate["label"],
                         "digest": {"sha256": candidate["digest"].removeprefix("sha256:")}}],
            "predicateType": EVAL_PREDICATE, "predicate": predicate}


def evaluation_folder(workspace: Workspace, evaluation_id: str) -> Path:
    return workspace.artifacts_dir / "evaluations" / str(uuid.UUID(evaluation_id))


def record_evaluation(workspace: Workspace, statement: dict[str, Any], items: bytes, *, actor: str) -> EvalRecord:
    """Sign `statement` with the platform key, keep it and the per-item lines `items` (whose sha256 the statement
    must name), and commit the envelope to the audit log. The files are written (and synced) before the entry, so a
    crash leaves at worst an unlogged folder that nothing reads, never an entry without its items."""
    predicate = statement["predicate"]
    if predicate["items"]["digest"] != "sha256:" + hashlib.sha256(items).hexdigest():
        raise BadInput("the statement names other per-item results than the ones handed over")
    envelope = sign_envelope(canonical_bytes(statement), IN_TOTO_PAYLOAD_TYPE, PLATFORM_KEY.load(workspace))
    folder = evaluation_folder(workspace, predicate["evaluation_id"])
    folder.mkdir(parents=True, exist_ok=False)
    for name, data in ((ITEMS_FILE, items), (ENVELOPE_FILE, canonical_bytes(envelope))):
        with (folder / name).open("wb") as handle:
            handle.write(data)
            handle.flush()
    fsync_dir(folder)
    candidate = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    with audited_transaction(workspace, tree_head=True) as tx:
        seq = tx.append(EntryDraft(actor=actor, action=AuditAction.EVAL_RECORD, subject_digest=candidate,
                                   payload={"evaluation_id": predicate["evaluation_id"], "envelope": envelope})).seq
    with read_session(workspace.database_url) as session:
        entry = session.get(AuditEntry, seq)
        if entry is None:
            raise NotFound(f"audit entry {seq} of the evaluation just recorded is gone")
        return _verified(workspace, session, entry)


def verified_results(workspace: Workspace, session: Session, candidate_digest: str) -> list[EvalRecord]:
    """Every evaluation result the log holds for `candidate_digest`, oldest first, each verified (see the module)."""
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.EVAL_RECORD,
                                                    AuditEntry.subject_digest == candidate_digest)
                           .order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    return [_verified(workspace, session, entry) for entry in entries]


def all_results(workspace: Workspace, session: Session) -> list[EvalRecord]:
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.EVAL_RECORD)
                           .order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    return [_verified(workspace, session, entry) for entry in entries]


def verify_recorded(workspace: Workspace) -> int:
    """Every `eval.record` entry in the log, verified as a reader would (see the module); the count. `audit verify`
    calls this after the log itself holds, so that a result appended by someone holding only the log key (a
    statement the platform never signed) is named even before a gate reads it."""
    with read_session(workspace.database_url) as session:
        return len(all_results(workspace, session))


def find_result(workspace: Workspace, session: Session, evaluation_id: str) -> EvalRecord:
    wanted = evaluation_id.strip().lower()
    found = [r for r in all_results(workspace, session) if r.id.startswith(wanted)] if len(wanted) >= 4 else []
    if len(found) != 1:
        raise NotFound(f"no single evaluation with id {evaluation_id!r} ({len(found)} match)",
                       hint="`forgegov eval list` shows the ids")
    return found[0]


def read_items(workspace: Workspace, record: EvalRecord) -> list[dict[str, Any]]:
    """The per-item lines of `record`, re-hashed against the digest its signed statement names."""
    path = evaluation_folder(workspace, record.id) / ITEMS_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DigestMismatch(f"the per-item results of evaluation {record.id} cannot be read: {exc.strerror or exc}",
                             file=str(path), expected=record.predicate["items"]["digest"]) from exc
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != record.predicate["items"]["digest"]:
        raise DigestMismatch(f"the per-item results of evaluation {record.id} changed since they were signed",
                             file=str(path), expected=record.predicate["items"]["digest"], actual=actual)
    return [json.loads(line) for line in data.decode().splitlines() if line]


def _verified(workspace: Workspace, session: Session, entry: AuditEntry) -> EvalRecord:
    what = f"evaluation result (audit entry {entry.seq})"
    # 1. The payload is the one the log committed to (a member proves it with the entry's inclusion proof).
    payload = committed_payload(session, what=what, action=AuditAction.EVAL_RECORD, seq=entry.seq,
                                subject_digest=entry.subject_digest, fields={})
    return signed_record(PLATFORM_KEY.public_key(workspace), entry.seq, entry.time, entry.actor,
                         entry.subject_digest, payload)


def signed_record(platform_key: Ed25519PublicKey, seq: int, time: str, actor: str, subject_digest: str | None,
                  payload: dict[str, Any]) -> EvalRecord:
    """The result an `eval.record` entry's payload holds, once its envelope verifies under PLATFORM_KEY and it is
    about the entry's checkpoint under the entry's id (steps 2-3 of the module's list; a member checking a team
    server's answer runs them on an entry it proved included)."""
    what = f"evaluation result (audit entry {seq})"
    # 2. The statement is forgegov's, signed by the pinned platform key.
    body = verify_envelope(payload.get("envelope"), platform_key, IN_TOTO_PAYLOAD_TYPE)
    statement = strict_json(body, f"the signed {what}", EvaluationInvalid)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE \
            or statement.get("predicateType") != EVAL_PREDICATE or not isinstance(statement.get("predicate"), dict):
        raise EvaluationInvalid(f"the signed {what} is not a drift-evaluation statement")
    # 3. About this entry's checkpoint, under this entry's id.
    subjects = statement.get("subject")
    sha = (subjects[0].get("digest") or {}).get("sha256") if isinstance(subjects, list) and len(subjects) == 1 \
        and isinstance(subjects[0], dict) else None
    if sha is None or "sha256:" + str(sha) != subject_digest:
        raise EvaluationInvalid(f"the signed {what} is about other bytes than the checkpoint its entry names",
                                hint="an evaluation counts only for the checkpoint it was made on: evaluate it")
    if statement["predicate"].get("evaluation_id") != payload.get("evaluation_id"):
        raise EvaluationInvalid(f"the signed {what} carries another evaluation's id")
    return EvalRecord(seq, time, actor, statement)


def job_of(session: Session, record: EvalRecord, counted: set[int]) -> dict[str, Any] | None:
    """The job that made RECORD, as the log holds its start: signed by the member the result names, its orders the
    result's candidate, base, suites and batch size, started before it, and no earlier result in COUNTED already its
    result (one job, one result). None otherwise: the result then counts neither way at the promotion gate."""
    job = record.job
    if job is None or job in counted or job >= record.seq:
        return None
    try:
        actor, kind, orders = started(session, job)
    except NotFound:
        return None
    predicate = record.predicate
    if actor != record.actor or kind is not JobKind.EVALUATION \
            or orders["candidate"] != predicate["candidate"]["label"] \
            or (orders["base"] is not None and orders["base"] != predicate["base"]["label"]) \
            or orders["suites"] != [suite["name"] for suite in predicate["suites"]] \
            or orders["batch_size"] != predicate.get("batch_size"):
        return None
    counted.add(job)
    return {"seq": job, "started_by": actor}
