"""Reading a dataset once: every file is hashed, decoded and parsed in the same pass, so the manifest that becomes the
dataset's identity also records how many records each file holds, and bad bytes are refused before anything is
registered. Verified reading (`reader.py`) and the quality suite parse through the same pass, so the records a
trainer gets are exactly those intake accepted.

Layouts read here: one `.jsonl` file or a folder of them (one JSON object per line), plain-text folders (`.txt`,
UTF-8, a record per non-blank line), Parquet files (a record per row) and a `datasets` `save_to_disk` folder (Arrow
IPC stream shards beside `state.json` and `dataset_info.json`). Every refusal names the file and, where there is
one, the line.

Columnar files are read whole into memory, hashed while they are read, and parsed from those same bytes: reading the
path a second time to parse it could parse bytes other than the ones hashed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from forgegov.foundation.canonical import digest_of
from forgegov.foundation.errors import BadInput, UnreadablePath
from forgegov.foundation.manifest import list_files

DATASET_MANIFEST_VERSION = 1
_CHUNK = 1 << 20
# Handing a small chunk to the hashing thread costs more than hashing it here.
_THREAD_MIN = 64 << 10
# Records must survive canonical JSON (RFC 8785, I-JSON numbers): integers beyond 2^53 - 1 are not exact there, and
# orjson turns integers of more than 64 bits into floats. A chunk with digits this long, or with an exponent (1e999
# is no number JSON can carry), is parsed line by line by `_parse_line`, which refuses what cannot be canonical.
_MAX_EXACT_INT = (1 << 53) - 1
_NEEDS_CARE = re.compile(rb"[0-9]{16}|[0-9.][eE][+-]?[0-9]")


class DataFormat(StrEnum):
    JSONL = "jsonl"
    TEXT = "text"
    PARQUET = "parquet"
    ARROW = "arrow"


_LINE_FORMATS = (DataFormat.JSONL, DataFormat.TEXT)
_SUFFIXES = {".jsonl": DataFormat.JSONL, ".txt": DataFormat.TEXT, ".parquet": DataFormat.PARQUET}
_SUFFIX_OF = {fmt: suffix for suffix, fmt in _SUFFIXES.items()}
_SAVE_TO_DISK_METADATA = ("dataset_info.json", "state.json")
_DATASET_DICT = "dataset_dict.json"


@dataclass(frozen=True)
class IntakeLimits:
    """A single line beyond this is refused: it is a sign of a broken export, and it would stall every reader."""

    max_line_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1024:
            raise BadInput("max_line_bytes must be at least 1024")


# Reading back bytes that intake already accepted: the limit was enforced then.
READ_BACK_LIMITS = IntakeLimits(max_line_bytes=sys.maxsize)


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


@dataclass(frozen=True)
class Collected:
    """What a pass keeps when asked to: records with their locations and, for columnar files, the Arrow tables they
    came from (so a `datasets.Dataset` keeps the files' own column types)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    tables: list[Any] = field(default_factory=list)


def detect_format(root: Path, files: list[Path]) -> DataFormat:
    names = [file.relative_to(root).as_posix() for file in files]
    for name in names:
        if name.rsplit("/", 1)[-1] == _DATASET_DICT:
            folder = (root / name).parent
            splits = sorted(str(folder / n.split("/")[-2]) for n in names
                            if n.endswith("/state.json") and (root / n).parent.parent == folder)
            raise BadInput(f"{root / name}: this is a `datasets` DatasetDict folder, which holds several splits; "
                           "register one split folder (the one holding state.json) as a dataset",
                           hint=f"the splits here: {', '.join(splits)}" if splits else None)
    if any(name.rsplit("/", 1)[-1] in _SAVE_TO_DISK_METADATA or name.lower().endswith(".arrow") for name in names):
        _check_save_to_disk(root, names)
        return DataFormat.ARROW
    formats = set()
    for name in names:
        data_format = _SUFFIXES.get(Path(name).suffix.lower())
        if data_format is None:
            raise BadInput(f"{name} is neither .jsonl nor .txt nor .parquet: a dataset "
                           "folder holds data files only")
        formats.add(data_format)
    if len(formats) > 1:
        raise BadInput(f"{root} mixes {' and '.join(sorted(_SUFFIX_OF[f] for f in formats))} files; register them "
                       "as separate datasets")
    return formats.pop()


def _check_save_to_disk(root: Path, names: list[str]) -> None:
    what = "`datasets` save_to_disk folder"
    for name in names:
        if "/" in name:
            raise BadInput(f"{root / name}: a {what} holds its files at its top level only",
                           hint="register the folder that holds state.json itself")
        if name not in _SAVE_TO_DISK_METADATA and not name.lower().endswith(".arrow"):
            raise BadInput(f"{root / name} does not belong in a {what} (data-*.arrow, dataset_info.json and "
                           "state.json only); register the other files separately")
    for needed in _SAVE_TO_DISK_METADATA:
        if needed not in names:
            raise BadInput(f"{root} is not a complete {what}: {needed} is missing",
                           hint="register the whole folder that `Dataset.save_to_disk` wrote")
    if not any(name.lower().endswith(".arrow") for name in names):
        raise BadInput(f"{root} is a {what} without any .arrow data file")


def scan_dataset(path: Path, limits: IntakeLimits = IntakeLimits(),
                 progress: Callable[[int], None] | None = None) -> DatasetManifest:
    root, files = list_files(path)
    data_format = detect_format(root, files)
    with DatasetPass(root, data_format, limits, progress) as scan:
        scanned = tuple(scan.read(file) for file in files)
        scan.finish()
    manifest = DatasetManifest(data_format, scanned)
    if manifest.records == 0:
        raise BadInput(f"{path} holds no records; an empty dataset cannot be registered")
    return manifest


def collect_records(path: Path) -> Collected:
    """Every record under `path`, parsed by the same code that admitted it (no digest check: see `reader.py`)."""
    root, files = list_files(path)
    kept = Collected()
    with DatasetPass(root, detect_format(root, files), READ_BACK_LIMITS, keep=kept) as scan:
        for file in files:
            scan.read(file)
        scan.finish()
    return kept


class _Hasher:
    """SHA-256 fed on a worker thread while the caller parses: hashlib lets go of the GIL on large buffers, so on a
    second core the digest costs almost no wall time. One chunk at most is in flight, so memory stays bounded and
    the digest sees chunks in order."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._digest = hashlib.sha256()
        self._pool = pool
        self._inflight: Future[None] | None = None
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._settle()
        self.size += len(chunk)
        if len(chunk) >= _THREAD_MIN:
            self._inflight = self._pool.submit(self._digest.update, chunk)
        else:
            self._digest.update(chunk)

    def _settle(self) -> None:
        if self._inflight is not None:
            self._inflight.result()
            self._inflight = None

    def hexdigest(self) -> str:
        self._settle()
        return self._digest.hexdigest()


class DatasetPass:
    """One pass over a dataset's files. Intake keeps only the counts; verified reading keeps the records too (`keep`).
    Both go through this one parser, so nothing can be read back that intake would have refused."""

    def __init__(self, root: Path, data_format: DataFormat, limits: IntakeLimits = IntakeLimits(),
                 progress: Callable[[int], None] | None = None, keep: Collected | None = None) -> None:
        self.root = root
        self.format = data_format
        self.limits = limits
        self.progress = progress
        self.keep = keep
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgegov-sha256")
        self._schema: Any = None
        self._schema_file = ""
        self._arrow_files: list[str] = []
        self._state: dict[str, Any] | None = None

    def __enter__(self) -> DatasetPass:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def read(self, file: Path) -> DataFile:
        name = file.relative_to(self.root).as_posix()
        hasher = _Hasher(self._pool)
        try:
            if self.format in _LINE_FORMATS:
                with open(file, "rb") as handle:
                    records = self._lines(name, handle, hasher)
            else:
                with open(file, "rb", buffering=0) as handle:
                    data = self._whole(handle, hasher)
                records = self._columnar(name, data)
        except OSError as exc:
            raise UnreadablePath(f"cannot read {file}: {exc.strerror or exc}") from exc
        return DataFile(name, hasher.size, hasher.hexdigest(), records)

    def finish(self) -> None:
        """Checks that span files: a save_to_disk folder's shards must be exactly those its state.json lists."""
        if self.format is not DataFormat.ARROW:
            return
        entries = (self._state or {}).get("_data_files")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadInput("state.json has no `_data_files` list; it was not written by `Dataset.save_to_disk`")
        listed = [entry.get("filename") for entry in entries]
        if listed != self._arrow_files:
            raise BadInput(f"state.json lists {listed} but the folder holds {self._arrow_files}: a shard is missing, "
                           "stray or out of order", hint="register the folder exactly as save_to_disk wrote it")

    # --- line formats -------------------------------------------------------------------------------------------

    def _lines(self, name: str, handle: IO[bytes], hasher: _Hasher) -> int:
        records, line_no, pending = 0, 0, b""
        limit = self.limits.max_line_bytes
        while chunk := handle.read(_CHUNK):
            start = hasher.size
            hasher.update(chunk)
            if b"\x00" in chunk:
                raise BadInput(f"{name}: binary data (a NUL byte near byte {start + chunk.index(0)}) "
                               "in a text dataset")
            block = pending + chunk if pending else chunk
            lines = block.split(b"\n")
            pending = lines.pop()
            if len(pending) > limit:
                raise BadInput(f"{name}: line {line_no + len(lines) + 1} is longer than {limit} bytes")
            if lines:
                records += self._block(name, line_no, lines, block)
                line_no += len(lines)
            if self.progress is not None:
                self.progress(len(chunk))
        if pending:
            records += self._block(name, line_no, [pending], pending)
        return records

    def _block(self, name: str, line_no: int, lines: list[bytes], raw: bytes) -> int:
        """Records among `lines` (line `line_no + 1` onwards). The fast paths work per block in C; whatever they
        cannot settle goes line by line through `_parse_line`, which alone words the refusals."""
        if len(raw) > self.limits.max_line_bytes and max(map(len, lines)) > self.limits.max_line_bytes:
            return self._slow(name, line_no, lines)
        if self.format is DataFormat.TEXT:
            return self._text_block(name, line_no, lines)
        numbers: range | list[int] = range(line_no + 1, line_no + 1 + len(lines))
        # Blank lines are allowed, but orjson refuses empty input. Searching the raw bytes is far cheaper than
        # comparing every line.
        if (raw.startswith(b"\n") or b"\n\n" in raw) and b"" in lines:
            numbers = [n for n, line in zip(numbers, lines, strict=True) if line]
            lines = [line for line in lines if line]
        if _NEEDS_CARE.search(raw):
            return self._slow(name, line_no, lines, numbers)
        # Counting only, each value is dropped as soon as its type is known: holding a block's worth of dicts
        # costs more than parsing them.
        try:
            values: Any = map(orjson.loads, lines) if self.keep is None else list(map(orjson.loads, lines))
            types = set(map(type, values))
        except orjson.JSONDecodeError:
            return self._slow(name, line_no, lines, numbers)
        if not types <= {dict}:
            return self._slow(name, line_no, lines, numbers)
        if self.keep is not None:
            self.keep.records.extend(values)
            self.keep.locations.extend(f"{name}:{n}" for n in numbers)
        return len(lines)

    def _text_block(self, name: str, line_no: int, lines: list[bytes]) -> int:
        try:
            texts = list(map(bytes.decode, lines))
        except UnicodeDecodeError:
            return self._slow(name, line_no, lines)
        if self.keep is None:
            return sum(map(bool, map(str.strip, texts)))
        count = 0
        for number, text in enumerate(texts, start=line_no + 1):
            if text.strip():
                self.keep.records.append({"text": text.removesuffix("\r")})
                self.keep.locations.append(f"{name}:{number}")
                count += 1
        return count

    def _slow(self, name: str, line_no: int, lines: list[bytes], numbers: range | list[int] | None = None) -> int:
        count = 0
        if numbers is None:
            numbers = range(line_no + 1, line_no + 1 + len(lines))
        for number, line in zip(numbers, lines, strict=True):
            record = _parse_line(name, number, line, self.format, self.limits)
            if record is not None:
                count += 1
                if self.keep is not None:
                    self.keep.records.append(record)
                    self.keep.locations.append(f"{name}:{number}")
        return count

    # --- columnar formats ---------------------------------------------------------------------------------------

    def _whole(self, handle: IO[bytes], hasher: _Hasher) -> memoryview:
        """The file's bytes, hashed as they arrive; the parser gets this very buffer, never a second read."""
        expected = os.fstat(handle.fileno()).st_size
        buffer = bytearray(expected)
        view = memoryview(buffer)
        filled = 0
        while filled < expected and (got := handle.readinto(view[filled:filled + _CHUNK])):
            hasher.update(view[filled:filled + got])
            filled += got
            if self.progress is not None:
                self.progress(got)
        grown = []
        while chunk := handle.read(_CHUNK):  # written to since it was opened: what was hashed is still what is parsed
            hasher.update(chunk)
            grown.append(chunk)
        if grown:
            return memoryview(bytes(view[:filled]) + b"".join(grown))
        return view[:filled]

    def _columnar(self, name: str, data: memoryview) -> int:
        import pyarrow as pa

        if self.format is DataFormat.PARQUET:
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(pa.BufferReader(data))
            except (pa.ArrowException, OSError) as exc:
                raise BadInput(f"{name}: not a readable Parquet file ({exc})") from exc
        elif name in _SAVE_TO_DISK_METADATA:
            self._metadata(name, data)
            return 0
        else:
            source = pa.BufferReader(data)
            try:
                table = pa.ipc.open_stream(source).read_all()
            except (pa.ArrowException, OSError) as exc:
                raise BadInput(f"{name}: not a readable Arrow stream as `Dataset.save_to_disk` writes ({exc})") \
                    from exc
            if source.tell() != len(data):
                raise BadInput(f"{name}: {len(data) - source.tell()} bytes follow the end of its Arrow stream")
            self._arrow_files.append(name)
        for column, values in zip(table.column_names, table.columns, strict=True):
            _refuse_uncanonical(name, column, values)
        if self._schema is None:
            self._schema, self._schema_file = table.schema, name
        elif not table.schema.equals(self._schema, check_metadata=False):
            raise BadInput(f"{name}: its columns differ from those of {self._schema_file}; files with different "
                           "columns are separate datasets")
        if self.keep is not None:
            rows = table.to_pylist()
            self.keep.tables.append(table)
            self.keep.records.extend(rows)
            self.keep.locations.extend(f"{name}:row {n}" for n in range(1, len(rows) + 1))
        return table.num_rows

    def _metadata(self, name: str, data: memoryview) -> None:
        try:
            document = json.loads(bytes(data))
        except RecursionError as exc:
            raise BadInput(f"{name}: nests too deeply to be read; save_to_disk writes a flat object") from exc
        except ValueError as exc:
            raise BadInput(f"{name}: not valid JSON ({exc}); save_to_disk writes it as JSON") from exc
        if not isinstance(document, dict):
            raise BadInput(f"{name}: a JSON {type(document).__name__}, not the object save_to_disk writes")
        if name == "state.json":
            self._state = document


def _parse_line(name: str, line_no: int, line: bytes, data_format: DataFormat, limits: IntakeLimits) -> Any:
    """The record on the line, or None if the line is blank; raises on anything else. The fast paths accept only
    lines this would accept, so the refusal, when there is one, is always worded here."""
    if len(line) > limits.max_line_bytes:
        raise BadInput(f"{name}: line {line_no} is longer than {limits.max_line_bytes} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{name}: line {line_no} is not valid UTF-8 (byte {exc.start} of the line)") from exc
    if not text.strip():
        return None
    if data_format is DataFormat.TEXT:
        return {"text": text.removesuffix("\r")}
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite, parse_int=_exact_int)
        _refuse_lone_surrogates(value)
    except RecursionError as exc:
        raise BadInput(f"{name}: line {line_no} nests too deeply to be read") from exc
    except _NotCanonical as exc:
        raise BadInput(f"{name}: line {line_no}: {exc}; forgegov keeps only records it can hash canonically",
                       hint="write such values as strings") from exc
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise BadInput(f"{name}: line {line_no} is not valid JSON ({msg}); is the file truncated?") from exc
    if not isinstance(value, dict):
        raise BadInput(f"{name}: line {line_no} is a JSON {type(value).__name__}, not an object")
    return value


class _NotCanonical(ValueError):
    """A value JSON's grammar or canonical form (RFC 8785) cannot carry exactly."""


def _not_json(constant: str) -> Any:
    raise _NotCanonical(f"{constant} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotCanonical(f"the number {text[:32]} is out of range")
    return value


def _exact_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_EXACT_INT:
        raise _NotCanonical(f"the integer {text[:32]} is beyond ±(2^53 - 1), where JSON numbers stop being exact")
    return value


def _refuse_lone_surrogates(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and any("\ud800" <= c <= "\udfff" for c in item):
            raise _NotCanonical("a string holds a lone surrogate (\\ud800-\\udfff), which is no Unicode text")


def _refuse_uncanonical(name: str, column: str, values: Any) -> None:
    """Columnar data is held to what a JSONL line is held to: integers within ±(2^53 - 1) (a uint64 id column is the
    usual offender) and finite floats, in every column and every nested field, so that later steps can hash every
    record canonically."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            _refuse_uncanonical(name, f"{column}.{kind.field(index).name}", pc.struct_field(values, [index]))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        _refuse_uncanonical(name, f"{column}[]", pc.list_flatten(values))
    elif pa.types.is_integer(kind) and len(values) > 0:
        low, high = pc.min_max(values).values()
        if (low.is_valid and abs(low.as_py()) > _MAX_EXACT_INT) or (high.is_valid and high.as_py() > _MAX_EXACT_INT):
            raise BadInput(f"{name}: column {column} ({kind}) holds integers beyond ±(2^53 - 1), where JSON numbers "
                           "stop being exact; forgegov keeps only records it can hash canonically",
                           hint="store such ids as strings")
    elif pa.types.is_floating(kind) and len(values) > 0:
        if pc.any(pc.invert(pc.is_finite(values))).as_py():
            raise BadInput(f"{name}: column {column} holds NaN or an infinite number, which JSON cannot carry",
                           hint="drop or replace those values")
