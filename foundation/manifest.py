"""Files manifests: the content identity of a registered directory (or single file).

The manifest lists every regular file by relative POSIX path with its size and SHA-256; the asset's digest is the
digest of the manifest's canonical bytes. Symlinks are refused outright: what is approved must be the bytes inside
the folder, not whatever a link points at later.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from forgegov.foundation.canonical import digest_of
from forgegov.foundation.errors import BadInput, UnreadablePath

MANIFEST_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class FilesManifest:
    files: tuple[FileEntry, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }

    @property
    def digest(self) -> str:
        return digest_of(self.to_document())

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


MAX_FILES = 100_000
_SEGMENT = re.compile(r"[^/\x00]+\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def relative_path(path: Any) -> str:
    """A manifest path that stays inside the folder it describes (a manifest received from elsewhere is written out
    file by file: `../` or an absolute path would write outside it)."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path \
            or any(part in ("", ".", "..") or not _SEGMENT.match(part) for part in path.split("/")):
        raise BadInput(f"the manifest names a file path that would leave its folder: {path!r}")
    return path


def manifest_from(document: Any) -> FilesManifest:
    """A files manifest received as a document, every path inside its folder and every file named by its SHA-256."""
    if not isinstance(document, dict) or document.get("manifest_version") != MANIFEST_VERSION:
        raise BadInput("not a version-1 files manifest")
    return FilesManifest(file_entries(document))


def file_entries(document: Any) -> tuple[FileEntry, ...]:
    """The files a manifest document received from elsewhere lists (a files manifest, or a dataset's, which adds
    record counts): every path inside its folder, every file named by its size and SHA-256."""
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise BadInput("the manifest lists no files")
    try:
        # A policy bundle's manifest names its files' hashes with the "sha256:" prefix; the other kinds' without.
        entries = tuple(FileEntry(relative_path(f["path"]), int(f["size"]), str(f["sha256"]).removeprefix("sha256:"))
                        for f in files)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"the manifest's file entries are malformed: {exc}") from exc
    if len({e.path for e in entries}) != len(entries) or not all(_SHA256.match(e.sha256) for e in entries) \
            or any(e.size < 0 for e in entries):
        raise BadInput("the manifest names a file twice, or a file by something other than its size and SHA-256")
    paths = {e.path for e in entries}
    nested = next((e.path for e in entries if any(str(p) in paths for p in PurePosixPath(e.path).parents)), None)
    if nested is not None:
        raise BadInput(f"the manifest names {nested} inside a path it also names as a file")
    return entries


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UnreadablePath(f"cannot read {path}: {exc.strerror or exc}") from exc
    return size, digest.hexdigest()


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []

    def onerror(exc: OSError) -> None:
        raise UnreadablePath(f"cannot list {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise BadInput(f"{full} is a symbolic link; register the real files instead")
            if stat.S_ISREG(mode):
                found.append(full)
            elif not stat.S_ISDIR(mode):
                raise BadInput(f"{full} is not a regular file or folder")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def list_files(path: Path) -> tuple[Path, list[Path]]:
    """The root that relative paths start from, and every regular file under `path` (or `path` itself)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError as exc:
        raise UnreadablePath(f"{path} does not exist") from exc
    except OSError as exc:
        raise UnreadablePath(f"cannot read {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(mode):
        raise BadInput(f"{path} is a symbolic link; register the real files instead")
    if stat.S_ISREG(mode):
        files, root = [path], path.parent
    elif stat.S_ISDIR(mode):
        files, root = _walk(path), path
    else:
        raise BadInput(f"{path} is not a regular file or folder")
    if not files:
        raise BadInput(f"{path} holds no files; an empty asset cannot be registered")
    return root, files


def build_manifest(path: Path, progress: Callable[[int], None] | None = None) -> FilesManifest:
    """Hash every file under `path`. `progress` is told the bytes of each file as it finishes."""
    root, files = list_files(path)
    entries = []
    for file in files:
        size, sha = hash_file(file)
        entries.append(FileEntry(file.relative_to(root).as_posix(), size, sha))
        if progress is not None:
            progress(size)
    return FilesManifest(tuple(entries))


def total_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
