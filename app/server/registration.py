"""Registering a dataset through the team server: the member uploads the files, the server checks the bytes it holds,
and the member signs the check the server computed.

    1. the member uploads each file to the artifact store by its digest (verified on receipt);
    2. `prepare`: the member names the dataset and its files manifest; the server assembles the folder from the
       store (every blob re-hashed as it is read), scans it (the manifest must be the member's), and runs the kind's
       quality suite and the contamination check against every dataset it holds — the member could not run that
       one, holding only their own data;
    3. `register`: the member signs the check's statement as the server computed it (only their name, key and time
       added) and sends it; the server verifies it, then registers the dataset and records the check in one
       transaction, as `dataset register` does in a workspace of one.

A modified client cannot make a check up: the server signs nothing, and accepts a signature only over the result it
computed itself. What the member's signature adds is who asked for the registration and stands behind it.

Checkpoints, rewards, suites and policy bundles take steps 1 and 2 only: the server assembles the folder from the
member's uploads and registers it through the same `register_asset` (each kind's scan: safetensors only for a
checkpoint, `opa check --strict` for a policy, datasets resolved to digests for a suite), owned by the member whose
signed request asked for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from forgegov.foundation.artifact_store import ArtifactStore
from forgegov.foundation.clock import now, parse_rfc3339
from forgegov.foundation.config import Workspace, fsync_dir
from forgegov.foundation.crypto.signing import Purpose, verify
from forgegov.foundation.errors import BadInput, ForgegovError, NotFound, SignatureInvalid, StateConflict
from forgegov.foundation.manifest import FilesManifest, manifest_from
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry
from forgegov.foundation.vocabulary import AssetKind, AuditAction, CheckpointStage, Classification, DatasetKind
from forgegov.governance.asset_kinds import KINDS, DatasetSpec
from forgegov.governance.evidence.data_quality import (
    PendingCheck,
    PreparedRegistration,
    prepare_registration,
    register_prepared,
)
from forgegov.governance.fetches import require_readable
from forgegov.governance.identities import get_identity, public_key, require_active
from forgegov.governance.registry import label, manifest_of, register_asset
from forgegov.governance.statements import MAX_CLOCK_SKEW

PENDING_FOR_S = 600.0
SIGNER_FIELDS = {"signer", "key_id", "signed_at"}


@dataclass
class _Pending:
    caller: str
    name: str
    spec: DatasetSpec
    folder: Path
    prepared: PreparedRegistration
    expires: float


class Registrations:
    def __init__(self, workspace: Workspace, artifacts: ArtifactStore) -> None:
        self.workspace = workspace
        self.artifacts = artifacts
        self.root = workspace.artifacts_dir / "datasets"
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}

    def _assemble(self, manifest: FilesManifest, caller: str, root: Path | None = None,
                  uploaded_only: bool = False) -> Path:
        """The asset's folder (under ROOT, the datasets' by default), built from the store's blobs (each re-hashed
        as read), whole or not at all; only from blobs the caller may read (uploaded, or fetched), so that nobody
        registers another's files under a classification of their choosing to read them; with UPLOADED_ONLY, only
        from blobs the caller sent every byte of (a file one may merely read, a restricted dataset's, would become
        readable by all as part of a checkpoint or a policy bundle)."""
        with read_session(self.workspace.database_url) as session:
            for entry in manifest.files:
                digest = f"sha256:{entry.sha256}"
                if uploaded_only and not self.artifacts.received_from(digest, caller):
                    raise StateConflict(f"{caller} has not uploaded {entry.path} ({digest}): only files one sent "
                                        "oneself are registered as one's own",
                                        hint="upload it (forgegov sends every file again to prove it holds them)")
                require_readable(session, self.artifacts, caller, digest)
        root = root or self.root
        folder = root / manifest.digest.removeprefix("sha256:")
        if folder.is_dir():
            return folder  # the scan below re-hashes it against the manifest all the same
        for entry in manifest.files:
            if self.artifacts.has(f"sha256:{entry.sha256}") != entry.size:
                raise NotFound(f"the artifact store holds no blob of {entry.size} bytes for {entry.path} "
                               f"(sha256:{entry.sha256})", hint="upload the dataset's files first")
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
        try:
            for entry in manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    for chunk in self.artifacts.read_verified(f"sha256:{entry.sha256}"):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            try:
                os.rename(staging, folder)
            except OSError:
                if not folder.is_dir():
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # another request assembled the same files meanwhile
            fsync_dir(root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    def prepare(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str):
            raise BadInput("the registration names no dataset")
        spec = DatasetSpec(DatasetKind(body.get("kind")), Classification(body.get("classification")))
        manifest = manifest_from(body.get("manifest"))
        folder = self._assemble(manifest, caller)
        # The folder holds exactly the blobs the manifest names (each re-hashed as it was read); the dataset's
        # manifest (format, records per file) and so its digest come from the server's own scan of it.
        prepared = prepare_registration(self.workspace, folder, name, caller, spec)
        unsigned = prepared.unsigned
        with self._lock:
            moment = time.monotonic()
            self._pending = {k: v for k, v in self._pending.items() if v.expires > moment}
            self._pending[unsigned.check_id] = _Pending(caller, name, spec, folder, prepared, moment + PENDING_FOR_S)
        return {"check_id": unsigned.check_id, "dataset": prepared.label, "dataset_digest": prepared.manifest.digest,
                "statement": unsigned.statement, "summary": unsigned.summary}

    def register(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pending = self._pending.pop(str(body.get("check_id")), None)
        if pending is None or pending.expires < time.monotonic():
            raise NotFound("no registration of that check is waiting (it expired, or was used)",
                           hint="register the dataset again")
        if pending.caller != caller:
            raise SignatureInvalid("a registration is completed by the member who asked for it")
        statement, signature = body.get("statement"), body.get("signature")
        unsigned = pending.prepared.unsigned.statement
        if not isinstance(statement, dict) or not isinstance(signature, str) \
                or set(statement) != set(unsigned) | SIGNER_FIELDS \
                or any(statement[key] != value for key, value in unsigned.items()) or statement["signer"] != caller:
            raise SignatureInvalid("the signed statement is not the check the server computed")
        with read_session(self.workspace.database_url) as session:
            identity = get_identity(session, caller)
        require_active(identity)
        if statement["key_id"] != identity.key_id:
            raise SignatureInvalid(f"the check is signed with a key that is not {caller}'s")
        verify(public_key(identity), Purpose.DATA_QUALITY, statement, signature)
        try:
            signed_at = parse_rfc3339(str(statement["signed_at"]))
        except ValueError as exc:
            raise SignatureInvalid("the check's signing time is not RFC 3339") from exc
        if abs(now() - signed_at) > MAX_CLOCK_SKEW:
            raise SignatureInvalid("the check was signed too long ago: refused as a possible replay")
        check = PendingCheck(pending.prepared.unsigned.check_id, pending.prepared.unsigned.result,
                             pending.prepared.unsigned.result_digest, pending.prepared.unsigned.summary, statement,
                             signature)
        _asset, outcome = register_prepared(self.workspace, pending.folder, pending.name, caller, pending.spec,
                                            pending.prepared, check)
        return outcome.to_dict()

    def register_asset(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint, reward, suite or policy bundle of the caller's uploaded files, registered as theirs: its
        label, digest, files manifest and the number of its registration entry (the member proves it logged)."""
        try:
            kind = AssetKind(body.get("kind"))
            stage = CheckpointStage(body["stage"]) if body.get("stage") is not None else None
        except ValueError as exc:
            raise BadInput(f"not a kind or stage forgegov knows: {exc}") from exc
        if kind not in MEMBER_REGISTERED:
            raise BadInput(f"a {kind.value} is registered through its own call here, not this one",
                           hint="forgegov dataset register, or forgegov run start for a run's recipe")
        name, parent = body.get("name"), body.get("parent")
        if not isinstance(name, str) or (parent is not None and not isinstance(parent, str)):
            raise BadInput("the registration names no asset name (or a parent that is not a reference)")
        sent = manifest_from(body.get("manifest"))
        folder = self._assemble(sent, caller, self.workspace.artifacts_dir / kind.value, uploaded_only=True)
        try:
            # The kind's scan, before anything is written: it must read exactly the files sent (a policy bundle's
            # scan skips files that are no bundle's, which would otherwise be found out only after registering).
            scanned = KINDS[kind].scan(self.workspace, folder, None, None)
            files = getattr(scanned, "files", None)
            if files is not None and sorted((f.path, f.size, f.sha256.removeprefix("sha256:")) for f in files) \
                    != sorted((f.path, f.size, f.sha256) for f in sent.files):
                raise BadInput(f"a {kind.value} is made of exactly the files it reads; these are not all "
                               f"{kind.value} files", hint="send only the files the asset consists of")
            asset = register_asset(self.workspace, kind, folder, name, caller, stage=stage, parent=parent,
                                   scanned=scanned)
        except ForgegovError:
            # A refused registration leaves no copy of its files behind, unless a registered asset is kept there.
            with read_session(self.workspace.database_url) as session:
                kept = session.exec(select(Asset.id).where(Asset.source_path == str(folder.resolve()))).first()
            if kept is None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        with read_session(self.workspace.database_url) as session:
            seq = session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.registered(kind),
                                                            AuditEntry.subject_digest == asset.digest)).one()
        return {"subject": label(asset), "digest": asset.digest, "manifest": manifest_of(asset),
                "files": sent.to_document(), "audit_seq": seq}


# The kinds a member registers from their uploaded files alone (a dataset also signs its check; a run is its recipe).
MEMBER_REGISTERED = (AssetKind.CHECKPOINT, AssetKind.REWARD, AssetKind.ENVIRONMENT, AssetKind.SUITE,
                     AssetKind.POLICY)

