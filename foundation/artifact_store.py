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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from forgegov.foundation.canonical import check_digest
from forgegov.foundation.config import fsync_dir
from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, StateConflict
from forgegov.foundation.locks import exclusive

CHUNK = 1 << 20
MAX_BLOB = 1 << 40  # a TiB: larger than any checkpoint file this platform trains, smaller than a runaway declaration


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

    def _partial(self, digest: str) -> tuple[Path, Path]:
        hexdigest = check_digest(digest).removeprefix("sha256:")
        return self.uploads / f"{hexdigest}.part", self.uploads / f"{hexdigest}.json"

    @contextmanager
    def _locked(self, digest: str) -> Iterator[None]:
        """One writer per digest at a time, across processes and threads (a server may take two uploads of the
        same blob, from two members)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        with exclusive(self.uploads / f"{check_digest(digest).removeprefix('sha256:')}.lock"):
            yield

    def has(self, digest: str) -> int | None:
        return self.backend.has(check_digest(digest))

    def begin(self, digest: str, size: int) -> UploadState:
        """Start an upload of `size` bytes that must hash to `digest`, or report how far an earlier one got (resume
        from `received`). A blob already stored is complete at once: nothing is sent twice."""
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB:
            raise BadInput(f"an upload declares its size in bytes (0 to {MAX_BLOB}), not {size!r}")
        with self._locked(digest):
            stored = self.backend.has(digest)
            if stored is not None:
                if stored != size:
                    raise BadInput(f"{digest} is stored with {stored} bytes, not {size}")
                return UploadState(digest, size, size)
            part, meta = self._partial(digest)
            if meta.exists():
                declared = json.loads(meta.read_text(encoding="utf-8"))["size"]
                if declared != size:
                    raise StateConflict(f"an upload of {digest} with {declared} bytes is under way, not {size}")
                return UploadState(digest, size, part.stat().st_size if part.exists() else 0)
            meta.write_text(json.dumps({"size": size}), encoding="utf-8")
            part.touch()
            return UploadState(digest, size, 0)

    def write(self, digest: str, offset: int, chunk: bytes) -> UploadState:
        """Append `chunk` at `offset`, which must be exactly what was received so far (a retried chunk after a
        lost reply is refused with the offset to resume from, never written twice)."""
        with self._locked(digest):
            part, meta = self._partial(digest)
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

    def finish(self, digest: str) -> UploadState:
        """Verify every received byte against `digest` and publish the blob; a mismatch discards the upload."""
        with self._locked(digest):
            part, meta = self._partial(digest)
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
            self.backend.put(digest, part)
            meta.unlink()
            return UploadState(digest, size, size)

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


def folder_store(root: Path) -> ArtifactStore:
    return ArtifactStore(FolderBackend(root / "blobs"), root / "uploads")
