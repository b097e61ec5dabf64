"""Reading a dataset once, as a stream: every file is hashed, decoded and parsed in the same pass, so the manifest
that becomes the dataset's identity also records how many records each file holds, and bad bytes are refused before
anything is registered.

Layouts read here: one `.jsonl` file or a folder of them (one JSON object per line), and plain-text folders (`.txt`,
UTF-8, a record per non-blank line). Every refusal names the file and, where there is one, the line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from forgegov.governance.canonical import digest_of
from forgegov.governance.errors import BadInput, UnreadablePath
from forgegov.governance.manifest import list_files

DATASET_MANIFEST_VERSION = 1
_CHUNK = 1 << 20


class DataFormat(StrEnum):
    JSONL = "jsonl"
    TEXT = "text"


_SUFFIXES = {".jsonl": DataFormat.JSONL, ".txt": DataFormat.TEXT}
# Columnar layouts need pyarrow; they are refused by name rather than read wrongly as text.
_COLUMNAR = {".parquet": "Parquet", ".arrow": "a `datasets` save_to_disk folder"}


@dataclass(frozen=True)
class IntakeLimits:
    """A single line beyond this is refused: it is a sign of a broken export, and it would stall every reader."""

    max_line_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1024:
            raise BadInput("max_line_bytes must be at least 1024")


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    sha256: str
    records: int


@dataclass(frozen=True)
class DatasetManifest:
    format: DataFormat
    files: tuple[DataFile, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "dataset_manifest_version": DATASET_MANIFEST_VERSION,
            "format": self.format.value,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256, "records": f.records}
                      for f in self.files],
        }

    @property
    def digest(self) -> str:
        return digest_of(self.to_document())

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


def detect_format(root: Path, files: list[Path]) -> DataFormat:
    formats = set()
    for file in files:
        suffix = file.suffix.lower()
        if suffix in _COLUMNAR or file.name in ("dataset_info.json", "state.json"):
            raise BadInput(f"{file}: {_COLUMNAR.get(suffix, 'a `datasets` save_to_disk folder')} is not readable "
                           "by this version of forgegov yet; export it as JSONL")
        if suffix not in _SUFFIXES:
            raise BadInput(f"{file.relative_to(root) if file != root else file} is neither .jsonl nor .txt: a dataset "
                           "folder holds data files only")
        formats.add(_SUFFIXES[suffix])
    if len(formats) > 1:
        raise BadInput(f"{root} mixes .jsonl and .txt files; register them as separate datasets")
    return formats.pop()


def scan_dataset(path: Path, limits: IntakeLimits = IntakeLimits(),
                 progress: Callable[[int], None] | None = None) -> DatasetManifest:
    root, files = list_files(path)
    data_format = detect_format(root, files)
    scanned = tuple(_scan_file(root, file, data_format, limits, progress) for file in files)
    manifest = DatasetManifest(data_format, scanned)
    if manifest.records == 0:
        raise BadInput(f"{path} holds no records; an empty dataset cannot be registered")
    return manifest


def _scan_file(root: Path, file: Path, data_format: DataFormat, limits: IntakeLimits,
               progress: Callable[[int], None] | None) -> DataFile:
    name = file.relative_to(root).as_posix()
    digest, size, records, line_no, pending = hashlib.sha256(), 0, 0, 0, b""
    try:
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if b"\x00" in chunk:
                    raise BadInput(f"{name}: binary data (a NUL byte near byte {size - len(chunk) + chunk.index(0)}) "
                                   "in a text dataset")
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                if len(pending) > limits.max_line_bytes:
                    raise BadInput(f"{name}: line {line_no + len(lines) + 1} is longer than "
                                   f"{limits.max_line_bytes} bytes")
                for line in lines:
                    line_no += 1
                    records += _check_line(name, line_no, line, data_format, limits)
                if progress is not None:
                    progress(len(chunk))
    except OSError as exc:
        raise UnreadablePath(f"cannot read {file}: {exc.strerror or exc}") from exc
    if pending:
        line_no += 1
        records += _check_line(name, line_no, pending, data_format, limits)
    return DataFile(name, size, digest.hexdigest(), records)


def _check_line(name: str, line_no: int, line: bytes, data_format: DataFormat, limits: IntakeLimits) -> int:
    """1 if the line is a record, 0 if it is blank; raises on anything else."""
    if len(line) > limits.max_line_bytes:
        raise BadInput(f"{name}: line {line_no} is longer than {limits.max_line_bytes} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{name}: line {line_no} is not valid UTF-8 (byte {exc.start} of the line)") from exc
    if not text.strip():
        return 0
    if data_format is DataFormat.JSONL:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"{name}: line {line_no} is not valid JSON ({exc.msg}); is the file truncated?") from exc
        if not isinstance(value, dict):
            raise BadInput(f"{name}: line {line_no} is a JSON {type(value).__name__}, not an object")
    return 1
