"""The asset registry: immutable records keyed by content digest, with name@version aliases.

Registering the same bytes again under the same kind is refused (it already has a name); new bytes under an
existing name become the next version. Records are never edited: only a gate changes an asset's state or release.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.recorder import AuditedTransaction, EntryDraft, audited_transaction
from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import AlreadyExists, BadInput, NotFound, StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry, GateRequest
from forgegov.foundation.vocabulary import (
    AssetKind,
    AssetState,
    AuditAction,
    CheckpointStage,
    GateAction,
    ReleaseStage,
    RequestStatus,
)
from forgegov.governance.asset_kinds import KINDS, DatasetSpec, Manifest
from forgegov.governance.datasets.intake import DatasetManifest
from forgegov.governance.identities import get_identity, require_active

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}\Z")
# Versions are bounded so that no reference parses into a number the store cannot hold.
_REF_RE = re.compile(r"^(?:(?P<kind>[a-z]+)/)?(?P<name>[a-z0-9][a-z0-9._-]{0,127})"
                     r"(?:@(?P<version>[1-9][0-9]{0,8}))?\Z")
_MIN_DIGEST_PREFIX = 12


def check_asset_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise BadInput(f"asset name {name!r} is invalid: use lowercase letters, digits, '.', '_' or '-' "
                       "(at most 128)")
    return name


def register_asset(workspace: Workspace, kind: AssetKind, path: Path, name: str, owner: str,
                   stage: CheckpointStage | None = None, registered_by: str | None = None,
                   progress: Callable[[int], None] | None = None, dataset: DatasetSpec | None = None,
                   parent: str | None = None, scanned: Manifest | None = None,
                   and_then: Callable[[AuditedTransaction, Asset], object] | None = None) -> Asset:
    """Register the bytes at `path`. A checkpoint may name the checkpoint it was trained from as its `parent`
    (a SUBJECT reference); its lineage then leads back through the parents to a checkpoint without one.

    `scanned` is the manifest when the caller already read the bytes through this kind's scan; `and_then` runs in the
    registration's transaction once the asset and its entry exist (a dataset's first check, written with it or not
    at all)."""
    check_asset_name(name)
    rules = KINDS[kind]
    if rules.has_stage and stage is None:
        raise BadInput(f"a {kind.value} needs --stage (pre-training, mid-training, post-training or candidate)")
    if not rules.has_stage and stage is not None:
        raise BadInput(f"--stage applies to checkpoints only, not to a {kind.value}")
    if not rules.has_parent and parent is not None:
        raise BadInput(f"--parent applies to checkpoints only, not to a {kind.value}")
    if rules.is_dataset != (dataset is not None):
        raise BadInput(f"a {kind.value} needs --kind and --classification" if dataset is None
                       else f"--kind and --classification apply to datasets only, not to a {kind.value}")
    manifest = scanned if scanned is not None else rules.scan(workspace, path, dataset, progress)
    digest = manifest.digest
    actor = registered_by or owner
    with audited_transaction(workspace) as tx:
        session = tx.session
        for person in {owner, actor}:
            require_active(get_identity(session, person))
        parent_digest = resolve(session, parent, AssetKind.CHECKPOINT).digest if parent is not None else None
        existing = session.exec(select(Asset).where(Asset.kind == kind, Asset.digest == digest)).first()
        if existing is not None:
            raise AlreadyExists(f"these bytes are already registered as {kind.value}/{existing.name}@"
                                f"{existing.version} ({digest})")
        last = session.exec(select(func.max(Asset.version)).where(Asset.kind == kind, Asset.name == name)).one()
        asset = Asset(
            kind=kind, name=name, version=(last or 0) + 1, digest=digest, owner=owner,
            state=AssetState.REGISTERED, stage=stage.value if stage else None, parent_digest=parent_digest,
            release=ReleaseStage.NONE.value if rules.has_release else None,
            dataset_kind=dataset.kind.value if dataset else None,
            classification=dataset.classification.value if dataset else None,
            records=manifest.records if isinstance(manifest, DatasetManifest) else None,
            manifest=canonical_bytes(manifest.to_document()).decode(), source_path=str(path.resolve()),
            registered_by=actor, registered_at=now_rfc3339(),
        )
        session.add(asset)
        if rules.keep is not None:
            rules.keep(session, manifest)
        session.flush()
        tx.append(EntryDraft(
            actor=actor, action=AuditAction.registered(kind), subject_digest=digest,
            payload={"kind": kind.value, "name": name, "version": asset.version, "owner": owner,
                     "stage": asset.stage, "parent_digest": parent_digest, "dataset_kind": asset.dataset_kind,
                     "classification": asset.classification, "records": asset.records, "files": len(manifest.files),
                     "bytes": sum(f.size for f in manifest.files), "source_path": asset.source_path},
        ))
        if and_then is not None:
            and_then(tx, asset)
        session.refresh(asset)
        session.expunge(asset)
    return asset


def resolve(session: Session, ref: str, kind: AssetKind | None = None,
            prefer: Callable[[Asset], bool] | None = None) -> Asset:
    """SUBJECT is `sha256:<hex or unique prefix>` or `[kind/]name[@version]` (latest version when omitted). Where a
    name matches several kinds, `prefer` (a verb's sense of what is meant: the one with an open request, say) picks
    when it holds for exactly one of them."""
    matches = candidates(session, ref, kind)
    if not matches:
        raise NotFound(f"no registered {kind.value if kind else 'asset'} matches {ref!r}",
                       hint=_did_you_mean(session, ref, kind))
    # Only for names: two assets under one digest prefix are never told apart by what is open on them.
    if len(matches) > 1 and prefer is not None and not ref.startswith("sha256:"):
        preferred = [asset for asset in matches if prefer(asset)]
        matches = preferred if len(preferred) == 1 else matches
    if len(matches) > 1:
        names = [label(a) for a in matches]
        raise BadInput(f"{ref!r} is ambiguous: {', '.join(names)}", hint=f"name one: {' or '.join(names)}")
    check_recorded(session, matches[0])
    return matches[0]


def candidates(session: Session, ref: str, kind: AssetKind | None = None) -> list[Asset]:
    """Every asset SUBJECT could mean (for a name, the latest version of each kind holding it); not yet held
    against the log."""
    query = select(Asset)
    if kind is not None:
        query = query.where(Asset.kind == kind)
    if ref.startswith("sha256:"):
        prefix = ref[len("sha256:"):]
        if len(prefix) < _MIN_DIGEST_PREFIX or not re.fullmatch(r"[0-9a-f]+", prefix):
            raise BadInput(f"digest reference {ref!r} needs at least {_MIN_DIGEST_PREFIX} lowercase hex digits")
        return list(session.exec(query.where(Asset.digest.startswith(ref))))  # type: ignore[attr-defined]
    found = _REF_RE.match(ref)
    if not found:
        raise BadInput(f"cannot read subject {ref!r}: use [kind/]name[@version] or sha256:<digest>")
    if found["kind"]:
        try:
            wanted = AssetKind(found["kind"])
        except ValueError as exc:
            raise BadInput(f"unknown kind {found['kind']!r} in {ref!r}; kinds: "
                           f"{', '.join(k.value for k in AssetKind)}") from exc
        if kind is not None and wanted is not kind:
            raise BadInput(f"{ref!r} names a {wanted.value}, but a {kind.value} is needed here",
                           hint=f"name the {kind.value}: {kind.value}/{found['name']}")
        query = query.where(Asset.kind == wanted)
    query = query.where(Asset.name == found["name"])
    if found["version"]:
        return list(session.exec(query.where(Asset.version == int(found["version"]))))
    latest: dict[AssetKind, Asset] = {}
    for asset in session.exec(query):
        if asset.kind not in latest or asset.version > latest[asset.kind].version:
            latest[asset.kind] = asset
    return list(latest.values())


def _did_you_mean(session: Session, ref: str, kind: AssetKind | None) -> str:
    listing = f"see `forgegov list{' ' + kind.value if kind else ''}`"
    found = _REF_RE.match(ref)
    if found is None:
        return listing
    wanted = found["kind"] or (kind.value if kind else None)
    query = select(Asset.kind, Asset.name).distinct()
    if wanted is not None and wanted in {k.value for k in AssetKind}:
        query = query.where(Asset.kind == AssetKind(wanted))
    known = {f"{k.value}/{n}": n for k, n in session.exec(query)}
    close = difflib.get_close_matches(found["name"], sorted(set(known.values())), n=3, cutoff=0.75)
    if not close:
        return listing
    return "did you mean " + " or ".join(sorted(key for key, name in known.items() if name in close)) + "?"


def check_recorded(session: Session, asset: Asset) -> None:
    """StoreTampered unless the asset's row says what the audit log does: its name, version, owner, stage, parent
    (what a drift evaluation compares it with), dataset kind and classification are those of its registration entry,
    and its state and release those of the last entry that set them (its registration or a decision of one of its
    gates). Every reader of an asset goes through here, so `UPDATE asset SET state=...`
    stops the gate, loader or run that would rely on it."""
    rules = KINDS[asset.kind]
    registered = AuditAction.registered(asset.kind)
    setting = [registered, *(AuditAction.of_gate(gate, action) for gate in rules.gates for action in GateAction)]
    entries = session.exec(select(AuditEntry.seq, AuditEntry.action).where(
        AuditEntry.subject_digest == asset.digest, AuditEntry.action.in_(setting))  # type: ignore[attr-defined]
        .order_by(AuditEntry.seq)).all()
    if not entries or entries[0][1] != registered:
        raise StoreTampered(f"{label(asset)} has no registration entry in the audit log: the store was altered",
                            hint="run `forgegov audit verify`")
    committed_payload(session, what=f"{label(asset)}", action=registered, seq=entries[0][0],
                      subject_digest=asset.digest,
                      fields={"kind": asset.kind.value, "name": asset.name, "version": asset.version,
                              "owner": asset.owner, "stage": asset.stage, "parent_digest": asset.parent_digest,
                              "dataset_kind": asset.dataset_kind, "classification": asset.classification})
    last_seq, last_action = entries[-1]
    if last_action == registered:
        recorded = (AssetState.REGISTERED.value, ReleaseStage.NONE.value if rules.has_release else None)
    else:
        payload = committed_payload(session, what=f"the last decision on {label(asset)}",
                                    action=AuditAction(last_action), seq=last_seq, subject_digest=asset.digest,
                                    fields={})
        recorded = (payload.get("state"), payload.get("release"))
    if (asset.state.value, asset.release) != recorded:
        raise StoreTampered(f"{label(asset)} is {asset.state.value} (release {asset.release}) in the store, but the "
                            f"audit log's last word on it, entry {last_seq} ({last_action}), is {recorded[0]} "
                            f"(release {recorded[1]}): the store was altered", hint="run `forgegov audit verify`")


def recorded_asset(session: Session, kind: AssetKind, digest: str, named_by: str) -> Asset:
    """The registered asset of `kind` with exactly `digest`, held against the log; something signed (a suite, an
    evaluation) that names an asset no one registered means the store was altered."""
    found = session.exec(select(Asset).where(Asset.kind == kind, Asset.digest == digest)).first()
    if found is None:
        raise StoreTampered(f"{named_by} names {kind.value} {digest}, which is not registered",
                            hint="run `forgegov audit verify`")
    check_recorded(session, found)
    return found


def find_asset(workspace: Workspace, ref: str, kind: AssetKind | None = None) -> Asset:
    with read_session(workspace.database_url) as session:
        asset = resolve(session, ref, kind)
        session.expunge(asset)
        return asset


def lineage(workspace: Workspace, ref: str) -> list[Asset]:
    """The checkpoint `ref`, then its parent, its parent's parent, and so on to the checkpoint without one."""
    with read_session(workspace.database_url) as session:
        chain = [resolve(session, ref, AssetKind.CHECKPOINT)]
        seen = {chain[0].digest}
        while (digest := chain[-1].parent_digest) is not None:
            # Registration only names parents that already exist, so neither a loop nor a gap can arise through
            # forgegov; finding one means the store was edited behind its back.
            if digest in seen:
                raise StoreTampered(f"the lineage of {label(chain[0])} loops back to {digest}; the store was altered")
            parent = session.exec(select(Asset).where(Asset.kind == AssetKind.CHECKPOINT,
                                                      Asset.digest == digest)).first()
            if parent is None:
                raise StoreTampered(f"{label(chain[-1])} names parent {digest}, which is not a registered checkpoint; "
                                    "the store was altered")
            chain.append(parent)
            seen.add(digest)
        for asset in chain:
            session.expunge(asset)
        return chain


def list_assets(workspace: Workspace, kind: AssetKind | None) -> list[Asset]:
    with read_session(workspace.database_url) as session:
        query = select(Asset).order_by(Asset.kind, Asset.name, Asset.version)
        if kind is not None:
            query = query.where(Asset.kind == kind)
        return list(session.exec(query))


def open_requests(workspace: Workspace) -> dict[int, list[dict[str, str | None]]]:
    """Each asset's open requests (gate, target, requester), oldest first, by asset id."""
    with read_session(workspace.database_url) as session:
        opened: dict[int, list[dict[str, str | None]]] = {}
        for request in session.exec(select(GateRequest).where(GateRequest.status == RequestStatus.OPEN)
                                    .order_by(GateRequest.requested_at)):
            opened.setdefault(request.asset_id, []).append(
                {"gate": request.gate.value, "target": request.target, "requested_by": request.requested_by})
        return opened


def manifest_of(asset: Asset) -> dict:
    return json.loads(asset.manifest)


def label(asset: Asset) -> str:
    return f"{asset.kind.value}/{asset.name}@{asset.version}"
