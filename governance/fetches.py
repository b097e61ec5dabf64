"""Reading an asset's bytes from the team's artifact store: a signed act (`asset.fetch`, `governance/admin.py`) the
admin policy decides, so that who may read proprietary data is the policy's to say, and every read is in the log.

A privacy officer answering "who has read this dataset?" reads the `asset.fetch` entries: each names the member, the
asset, the files it covers and why (the signed reason). The artifact store serves a file's bytes only to a member
with such an entry covering it (`covered`) from the last `GRANT` hours, or to the member who uploaded every byte of
it. The entry is checked against what the log committed to before it opens anything.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.artifact_store import ArtifactStore
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.clock import now, rfc3339
from forgegov.foundation.errors import BadInput, NotFound, StateConflict, StoreTampered
from forgegov.foundation.manifest import file_entries
from forgegov.foundation.store.models import Asset, AuditEntry
from forgegov.foundation.vocabulary import AssetKind, AuditAction, reference_names
from forgegov.governance.policy import policy_in_force
from forgegov.governance.registry import check_recorded, label, manifest_of, resolve

# How long an allowed fetch lets its member read the files it covers.
GRANT = timedelta(hours=24)


def fetch_target(session: Session, signed: dict[str, Any]) -> dict[str, Any]:
    """What the policy is told about a fetch: the asset, as its registration entry says it is."""
    subject, kind = signed.get("subject"), signed.get("kind")
    if not set(signed) <= {"subject", "kind"} or not isinstance(subject, str) or not subject \
            or (kind is not None and kind not in {k.value for k in AssetKind}):
        raise BadInput("asset.fetch names the asset (subject) and, optionally, its kind")
    asset = resolve(session, subject, AssetKind(kind) if kind is not None else None)
    check_recorded(session, asset)
    return {**signed, "asset": {"kind": asset.kind.value, "label": label(asset), "digest": asset.digest,
                                "state": asset.state.value, "classification": asset.classification,
                                "dataset_kind": asset.dataset_kind}}


def fetch_reference_holds(signed: dict[str, Any], target: dict[str, Any]) -> bool:
    """Whether the asset the policy was told of is one the member's signed reference (and kind, if given) names."""
    asset = target.get("asset")
    if not isinstance(asset, dict) or not isinstance(signed.get("subject"), str):
        return False
    return (signed.get("kind") in (None, asset.get("kind"))
            and reference_names(signed["subject"], str(asset.get("label")), str(asset.get("digest"))))


def fetched_files(asset: Asset) -> list[str]:
    """The digests of the files a fetch of ASSET lets its member read: its manifest's, once that hashes to the
    asset's digest (a manifest edited in the store would grant other files)."""
    manifest = manifest_of(asset)
    if digest_of(manifest) != asset.digest:
        raise StoreTampered(f"{label(asset)}'s stored manifest no longer hashes to its digest",
                            hint="run `forgegov audit verify`")
    return sorted({f"sha256:{entry.sha256}" for entry in file_entries(manifest)})


def fetched_asset(session: Session, target: dict[str, Any]) -> Asset:
    return resolve(session, target["asset"]["digest"], AssetKind(target["asset"]["kind"]))


def covered(session: Session, actor: str, digest: str) -> bool:
    """Whether an allowed fetch by ACTOR from the last GRANT hours, under the policy still in force, covers the file
    DIGEST: a fetch of an asset whose registered manifest (held to its digest and its registration entry) names that
    file. A policy change (a role taken away, say) ends the grants the old policy decided, and so does a change of
    the asset's state (a dataset rejected for the PII it holds): a grant is for the asset as the policy saw it."""
    in_force = policy_in_force(session).digest
    since = rfc3339(now() - GRANT)
    entries = session.exec(select(AuditEntry).where(
        AuditEntry.action == AuditAction.ASSET_FETCH, AuditEntry.actor == actor, AuditEntry.time >= since,
        AuditEntry.payload.contains(digest, autoescape=True))).all()  # type: ignore[union-attr]
    for entry in entries:
        payload = committed_payload(session, what=f"fetch {entry.seq}", action=AuditAction.ASSET_FETCH,
                                    subject_digest=entry.subject_digest, fields={}, seq=entry.seq)
        if payload.get("statement", {}).get("signer") != actor or entry.subject_digest is None \
                or payload.get("decision", {}).get("policy_digest") != in_force:
            continue
        # The files the fetched asset holds, from the registry, not from the entry's list.
        try:
            kind = AssetKind(payload["decision"]["input"]["target"]["asset"]["kind"])
            asset = resolve(session, entry.subject_digest, kind)
        except (KeyError, TypeError, ValueError, NotFound):
            continue
        check_recorded(session, asset)
        if asset.state.value != payload["decision"]["input"]["target"]["asset"].get("state"):
            continue
        if digest in fetched_files(asset):
            return True
    return False


def require_readable(session: Session, artifacts: ArtifactStore, actor: str, digest: str) -> None:
    """StateConflict unless ACTOR may read the stored file DIGEST: an allowed fetch of theirs covers it, or they
    uploaded every byte of it. Asked before whether the store holds it at all, so that nobody learns that."""
    if not artifacts.received_from(digest, actor) and not covered(session, actor, digest):
        raise StateConflict(f"no fetch by {actor} in the last day covers blob {digest}",
                            hint="fetch the asset that holds it (`forgegov dataset fetch SUBJECT`, "
                                 "`forgegov run verify RUN`); the policy decides who may")
