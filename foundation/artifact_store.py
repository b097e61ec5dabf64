"""The content-addressed artifact store: bytes kept under the SHA-256 of their content, shared by a team.

A blob is uploaded in chunks to a partial file beside the store, may be resumed from the offset the store reports
after a dropped connection, and becomes visible under its digest only once every byte has arrived and hashes to the
digest the uploader named (verified on receipt): a reader never sees half a blob or a blob under a name it does not
hash to. Readers verify again as they read (`read_verified`), so bytes changed in the store after receipt (a disk
fault, an edit on the object store) are refused rather than loaded.

Where the bytes live is a backend: a local folder (the default) or an S3-compatible object store. Both keep the
partial uploads in a local folder, because S3 objects cannot be appended to; the S3 backend uploads a blob once it
is complete and verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from forgegov.foundation.canonical import check_digest
from forgegov.foundation.config import ArtifactBackend, Workspace, fsync_dir
from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, StateConflict, StoreError
from forgegov.foundation.locks import exclusive

CHUNK = 1 << 20
MAX_BLOB = 1 << 40  # a TiB: larger than any checkpoint file this platform trains, smaller than a runaway declaration
MAX_PENDING = 1 << 40  # what one uploader's unfinished uploads may declare in all
LOCAL = "forgegov-local"  # the owner of uploads made on the store's own machine
_OWNER = re.compile(r"[a-z][a-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class UploadState:
    digest: str
    size: int
    received: int

    @property
    def complete(self) -> bool:
        return self.received == self.size

    def to_dict(self) -> dict[str, int | str | bool]:
        return {"digest": self.digest, "size": self.size, "received": self.received}


class BlobBackend(Protocol):
    """Where finished blobs live. `put` is given a verified local file and must make it readable under `digest`
    atomically (a reader sees all of it or none of it)."""

    def has(self, digest: str) -> int | None: ...

    def put(self, digest: str, path: Path) -> None: ...

    def open(self, digest: str) -> BinaryIO: ...


class FolderBackend:
    """Blobs as files under `root/sha256/ab/<hex>`, moved into place by rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        hexdigest = check_digest(digest).removeprefix("sha256:")
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def has(self, digest: str) -> int | None:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put(self, digest: str, path: Path) -> None:
        target = self._path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o444)
        os.replace(path, target)
        fsync_dir(target.parent)

    def open(self, digest: str) -> BinaryIO:
        try:
            return self._path(digest).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"the artifact store holds no blob {digest}",
                           hint="upload it first (`forgegov artifact put FILE`)") from exc


class ArtifactStore:
    """Chunked, resumable, verified uploads into a backend, and verified reads out of it."""

    def __init__(self, backend: BlobBackend, uploads: Path) -> None:
        self.backend = backend
        self.uploads = uploads

    def _partial(self, digest: str, owner: str) -> tuple[Path, Path]:
        """Where OWNER's upload of DIGEST waits: each uploader has their own, so no one can block, append to or
        discard another's upload of the same bytes."""
        if not _OWNER.match(owner):
            raise BadInput(f"an upload's owner is an identity name, not {owner!r}")
        hexdigest = check_digest(digest).removeprefix("sha256:")
        folder = self.uploads / owner
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{hexdigest}.part", folder / f"{hexdigest}.json"

    def _pending_bytes(self, owner: str, besides: Path) -> int:
        return sum(json.loads(meta.read_text(encoding="utf-8"))["size"]
                   for meta in (self.uploads / owner).glob("*.json") if meta != besides)

    @contextmanager
    def _locked(self, digest: str) -> Iterator[None]:
        """One writer per digest at a time, across processes and threads (a server may take two uploads of the
        same blob, from two members)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        with exclusive(self.uploads / f"{check_digest(digest).removeprefix('sha256:')}.lock"):
            yield

    def has(self, digest: str) -> int | None:
        return self.backend.has(check_digest(digest))

    def begin(self, digest: str, size: int, owner: str = LOCAL, *, prove: bool = False) -> UploadState:
        """Start an upload of `size` bytes that must hash to `digest`, or report how far an earlier one got (resume
        from `received`). A blob already stored is complete at once (nothing is sent twice), unless the uploader
        asks to `prove` they hold its bytes: then they send them all again, and once they hash to the digest the
        uploader may use the blob as theirs (registering a checkpoint that shares a tokenizer with another, say)."""
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB:
            raise BadInput(f"an upload declares its size in bytes (0 to {MAX_BLOB}), not {size!r}")
        with self._locked(digest):
            stored = self.backend.has(digest)
            if stored is not None and stored != size:
                raise BadInput(f"{digest} is stored with {stored} bytes, not {size}")
            if stored is not None and (not prove or self.received_from(digest, owner)):
                return UploadState(digest, size, size)
            part, meta = self._partial(digest, owner)
            if meta.exists():
                declared = json.loads(meta.read_text(encoding="utf-8"))["size"]
                if declared == size:
                    return UploadState(digest, size, part.stat().st_size if part.exists() else 0)
                part.unlink(missing_ok=True)  # the uploader's own earlier attempt, declared otherwise: start again
            if self._pending_bytes(owner, meta) + size > MAX_PENDING:
                raise BadInput(f"{owner}'s unfinished uploads and this one would hold more than {MAX_PENDING} bytes",
                               hint="finish the uploads under way first")
            meta.write_text(json.dumps({"size": size}), encoding="utf-8")
            part.touch()
            return UploadState(digest, size, 0)

    def write(self, digest: str, offset: int, chunk: bytes, owner: str = LOCAL) -> UploadState:
        """Append `chunk` at `offset`, which must be exactly what was received so far (a retried chunk after a
        lost reply is refused with the offset to resume from, never written twice)."""
        with self._locked(digest):
            part, meta = self._partial(digest, owner)
            if not meta.exists():
                if self.backend.has(digest) is not None:
                    raise StateConflict(f"{digest} is already stored")
                raise NotFound(f"no upload of {digest} is under way", hint="begin it first")
            size = json.loads(meta.read_text(encoding="utf-8"))["size"]
            received = part.stat().st_size
            if offset != received:
                raise StateConflict(f"the upload of {digest} has {received} bytes; a chunk at {offset} does not "
                                    f"follow them", hint=f"resume from byte {received}")
            if received + len(chunk) > size:
                raise BadInput(f"the upload of {digest} declared {size} bytes; this chunk would make "
                               f"{received + len(chunk)}")
            with part.open("ab") as handle:
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            return UploadState(digest, size, received + len(chunk))

    def finish(self, digest: str, owner: str = LOCAL) -> UploadState:
        """Verify every received byte against `digest` and publish the blob; a mismatch discards the upload."""
        with self._locked(digest):
            part, meta = self._partial(digest, owner)
            if not meta.exists():
                stored = self.backend.has(digest)
                if stored is not None:
                    return UploadState(digest, stored, stored)
                raise NotFound(f"no upload of {digest} is under way", hint="begin it first")
            size = json.loads(meta.read_text(encoding="utf-8"))["size"]
            received = part.stat().st_size
            if received != size:
                raise StateConflict(f"the upload of {digest} has {received} of {size} bytes",
                                    hint=f"resume from byte {received}")
            actual = _sha256_file(part)
            if actual != digest:
                part.unlink()
                meta.unlink()
                raise DigestMismatch(f"the uploaded bytes hash to {actual}, not {digest}: discarded",
                                     expected=digest, actual=actual, hint="upload the file again")
            if self.backend.has(digest) is None:
                self.backend.put(digest, part)
            else:
                part.unlink()  # the bytes proved again: the blob stays as stored
            meta.unlink()
            # The uploader sent every byte of it: they may read it back and register it (a blob that was already
            # stored is never marked for whoever merely names its digest, nor the server's own stocking for any name).
            if owner != LOCAL:
                (self.uploads / owner / "received").mkdir(exist_ok=True)
                (self.uploads / owner / "received" / digest.removeprefix("sha256:")).touch()
            return UploadState(digest, size, size)

    def received_from(self, digest: str, owner: str) -> bool:
        """Whether OWNER uploaded every byte of DIGEST here."""
        if not _OWNER.match(owner) or owner == LOCAL:
            return False
        return (self.uploads / owner / "received" / check_digest(digest).removeprefix("sha256:")).is_file()

    def put_file(self, path: Path) -> str:
        """Store a local file (the server's own uploads and tests); its digest."""
        digest = _sha256_file(path)
        state = self.begin(digest, path.stat().st_size)
        with path.open("rb") as handle:
            handle.seek(state.received)
            while not state.complete:
                state = self.write(digest, state.received, handle.read(CHUNK))
        self.finish(digest)
        return digest

    def read_verified(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes, in chunks; DigestMismatch after the last chunk if they do not hash to `digest` (a
        caller writes them to a staging file and keeps it only when the iteration ends without error)."""
        hasher = hashlib.sha256()
        with self.backend.open(check_digest(digest)) as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
                yield chunk
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise DigestMismatch(f"the artifact store's blob {digest} now hashes to {actual}: changed after it was "
                                 "received", expected=digest, actual=actual,
                                 hint="restore the store from backup, or upload the original bytes again")


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


class S3Backend:
    """Blobs as objects `<prefix>sha256/<hex>` in a bucket of an S3-compatible store, through boto3. An object
    appears only once its upload completes, so a reader never sees part of one."""

    def __init__(self, bucket: str, prefix: str, endpoint: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3", endpoint_url=endpoint or None, region_name=region,
                                   config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def _key(self, digest: str) -> str:
        return f"{self.prefix}sha256/{check_digest(digest).removeprefix('sha256:')}"

    def has(self, digest: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(digest))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"the object store refused to say whether it holds {digest}: {exc}",
                             hint="check the bucket, the endpoint and the credentials in the environment") from exc

    def put(self, digest: str, path: Path) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(path), self.bucket, self._key(digest))
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            raise StoreError(f"the object store refused {digest}: {exc}",
                             hint="check the bucket, the endpoint and the credentials in the environment") from exc
        path.unlink()

    def open(self, digest: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(digest))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"the artifact store holds no blob {digest}") from exc
            raise StoreError(f"the object store refused to read {digest}: {exc}") from exc
        return _S3Reader(digest, body)  # type: ignore[return-value]


class _S3Reader:
    """An object's body, whose read errors are forgegov's: the client checks the object store's own checksum as it
    reads, so bytes changed after receipt can fail there before the digest is recomputed."""

    def __init__(self, digest: str, body: Any) -> None:
        self.digest, self.body = digest, body

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError, FlexibleChecksumError

        try:
            return self.body.read(size)
        except FlexibleChecksumError as exc:
            raise DigestMismatch(f"the artifact store's blob {self.digest} fails the object store's own checksum: "
                                 "changed after it was received", expected=self.digest,
                                 hint="restore the store from backup, or upload the original bytes again") from exc
        except BotoCoreError as exc:
            raise StoreError(f"reading {self.digest} from the object store failed: {exc}") from exc

    def __enter__(self) -> _S3Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.body.close()


def folder_store(root: Path) -> ArtifactStore:
    return ArtifactStore(FolderBackend(root / "blobs"), root / "uploads")


def artifact_store(workspace: Workspace) -> ArtifactStore:
    """The workspace's artifact store, as `[artifacts]` in forgegov.toml configures it. Uploads in progress always
    wait in the workspace's own folder."""
    config = workspace.config.artifacts
    root = workspace.artifacts_dir / "store"
    if config.backend is ArtifactBackend.FOLDER:
        return folder_store(root)
    return ArtifactStore(S3Backend(config.s3_bucket, config.s3_prefix, config.s3_endpoint, config.s3_region),
                         root / "uploads")
