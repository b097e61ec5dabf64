"""Files manifests: the content identity of a registered directory (or single file).

The manifest lists every regular file by relative POSIX path with its size and SHA-256; the asset's digest is the
digest of the manifest's canonical bytes. Symlinks are refused outright: what is approved must be the bytes inside
the folder, not whatever a link points at later.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
