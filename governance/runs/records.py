"""Reading runs back: the list, one run's record, and the check of its signed provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import NotFound, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, TrainingRun
from forgegov.foundation.vocabulary import AssetKind, RunStatus
from forgegov.governance.registry import label, resolve

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from forgegov.governance.runs.provenance import SignedProvenance

_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _document(session: Session, row: TrainingRun) -> dict[str, Any]:
    run = session.get(Asset, row.run_asset_id)
    candidate = None
    if row.candidate_digest is not None:
        found = session.exec(select(Asset).where(Asset.kind == AssetKind.CHECKPOINT,
                                                 Asset.digest == row.candidate_digest)).first()
        candidate = label(found) if found is not None else None
    return {"run_id": row.id, "run": label(run) if run is not None else None, "run_digest": run.digest if run else None,
            "status": row.status.value, "attempts": row.attempts, "started_by": row.started_by,
            "started_at": row.started_at, "finished_at": row.finished_at, "error": row.error,
            "recipe_digest": row.recipe_digest, "decision_id": row.decision_id, "plan": json.loads(row.plan),
            "realised": json.loads(row.realised) if row.realised else None,
            "code": json.loads(row.code) if row.code else None, "candidate": candidate,
            "candidate_digest": row.candidate_digest, "provenance_digest": row.provenance_digest,
            "output_dir": row.output_dir}


def list_run_records(workspace: Workspace) -> list[dict[str, Any]]:
    with read_session(workspace.database_url) as session:
        rows = session.exec(select(TrainingRun).order_by(TrainingRun.started_at.desc()))  # type: ignore[attr-defined]
        return [_document(session, row) for row in rows]


def _find(session: Session, ref: str) -> TrainingRun:
    if _RUN_ID.match(ref):
        row = session.get(TrainingRun, ref)
        if row is None:
            raise NotFound(f"no training run has id {ref}", hint="see `forgegov run list`")
        return row
    run = resolve(session, ref, AssetKind.RUN)
    row = session.exec(select(TrainingRun).where(TrainingRun.run_asset_id == run.id)).first()
    if row is None:
        raise NotFound(f"{label(run)} has not started training", hint="see `forgegov run start`")
    return row


def run_record(workspace: Workspace, ref: str) -> dict[str, Any]:
    with read_session(workspace.database_url) as session:
        return _document(session, _find(session, ref))


def verify_run(workspace: Workspace, ref: str) -> dict[str, Any]:
    """Verify a completed run's provenance against the pinned platform key and the candidate's registered folder,
    and that what was signed is the checkpoint the run registered."""
    from forgegov.governance.runs.provenance import PLATFORM_KEY, SignedProvenance

    found = run_record(workspace, ref)
    _require_completed(found)
    with read_session(workspace.database_url) as session:
        candidate = session.exec(select(Asset).where(Asset.kind == AssetKind.CHECKPOINT,
                                                     Asset.digest == found["candidate_digest"])).one()
    signed = SignedProvenance.read(Path(found["output_dir"]) / "provenance")
    return check_run_provenance(PLATFORM_KEY.public_key(workspace), found, signed, label(candidate),
                                candidate.digest, json.loads(candidate.manifest), Path(candidate.source_path))


def _require_completed(found: dict[str, Any]) -> None:
    if found["status"] != RunStatus.COMPLETED.value or found["candidate_digest"] is None:
        raise StateConflict(f"run {found['run_id']} is {found['status']}: only a completed run has provenance")


def check_run_provenance(public_key: Ed25519PublicKey, found: dict[str, Any], signed: SignedProvenance,
                         candidate: str, candidate_digest: str, manifest: Any, folder: Path) -> dict[str, Any]:
    """The checks of `run verify`, wherever the pieces come from (this store, or a team server and its artifact
    store): the envelope is the one the run recorded; both envelopes verify under `public_key` and describe exactly
    the files in `folder`, re-hashed; those files are the candidate's manifest, whose digest is the candidate's."""
    from forgegov.foundation.canonical import digest_of
    from forgegov.foundation.errors import SignatureInvalid, StoreTampered
    from forgegov.governance.runs.provenance import signed_checkpoint_digest, verify_provenance

    _require_completed(found)
    if found["candidate_digest"] != candidate_digest:
        raise StoreTampered(f"run {found['run_id']} registered {found['candidate_digest']}, not {candidate} "
                            f"({candidate_digest})")
    if digest_of(signed.statement_envelope) != found["provenance_digest"]:
        raise SignatureInvalid(f"the provenance of run {found['run_id']} is not the envelope the run recorded",
                               hint="restore the run's provenance folder")
    statement = verify_provenance(public_key, signed.statement_envelope, signed.manifest_envelope, folder)
    # What the record says must be what was signed: the checkpoint, the run and the recipe. A record handed over by
    # someone else (a team server) is held to the signature, not the other way round.
    signed_digest = signed_checkpoint_digest(statement)
    metadata = statement["predicate"]["runDetails"].get("metadata") or {}
    parameters = statement["predicate"]["buildDefinition"].get("externalParameters") or {}
    if signed_digest != candidate_digest or metadata.get("invocationId") != found["run_id"] \
            or parameters.get("recipeDigest") != found["recipe_digest"]:
        raise SignatureInvalid(f"the signed provenance is of run {metadata.get('invocationId')} and checkpoint "
                               f"{signed_digest}, not of run {found['run_id']} and {candidate} ({candidate_digest})")
    if digest_of(manifest) != candidate_digest:
        raise StoreTampered(f"{candidate}'s stored manifest does not match its digest: the store was altered",
                            hint="run `forgegov audit verify`")
    files = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    if {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} != files:
        raise SignatureInvalid(f"the signed provenance describes other files than {candidate}")
    return {"run_id": found["run_id"], "run": found["run"], "candidate": found["candidate"],
            "candidate_digest": found["candidate_digest"], "files": len(files),
            "keyid": signed.statement_envelope["signatures"][0]["keyid"], "verified": True}
