"""What a checkpoint folder may hold: a Hugging Face `config.json` and safetensors weights, and nothing that is
deserialised by running code.

Loading a pickle (and torch.save's zip of pickles) runs whatever code it was given, so such files are refused by
name and, since a name proves nothing, by their first bytes. Every file is read once, and the checks look at the very
bytes that are hashed into the manifest, so nothing can change between checking and hashing. The digest is the plain
files-manifest digest. `snapshot_verified` copies a registered checkpoint into a private folder through the same
checks, so what gets loaded is the copy that was verified, not a path that may have changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from forgegov.foundation.errors import BadInput, DigestMismatch, ForgegovError, UnreadablePath
from forgegov.foundation.manifest import FileEntry, FilesManifest, list_files
from forgegov.foundation.store.models import Asset

CONFIG = "config.json"
WEIGHTS_SUFFIX = ".safetensors"
# Formats whose loaders unpickle: torch.save's (.bin/.pt/.pth/.ckpt), pickle's, joblib's, and NumPy's, which hold
# pickled objects whenever they are not plain arrays.
PICKLED_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz"})
CONVERT = ("convert the model with `save_pretrained(PATH, safe_serialization=True)` and register that folder, "
           "without pickled files")
# The safetensors library refuses larger headers; anything bigger is not one of its files.
_MAX_HEADER = 100_000_000
_MAX_CONFIG = 16 << 20
_CHUNK = 1 << 20
_CHANGED = "restore the registered files, or register the new bytes as a new checkpoint version"


class _Reading:
    """One pass over a file: every byte read is hashed, counted and, when copying, written to `sink`."""

    def __init__(self, path: Path, handle: BinaryIO, sink: BinaryIO | None) -> None:
        self._path, self._handle, self._sink = path, handle, sink
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, limit: int) -> bytes:
        try:
            data = self._handle.read(limit)
        except OSError as exc:
            raise UnreadablePath(f"cannot read {self._path}: {exc.strerror or exc}") from exc
        self._sha.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return data

    def finish(self) -> str:
        while self.read(_CHUNK):
            pass
        return self._sha.hexdigest()


def scan_checkpoint(path: Path, progress: Callable[[int], None] | None = None) -> FilesManifest:
    """The files manifest of the checkpoint folder at `path`, refused (BadInput) unless the folder is one a
    checkpoint may be. `progress` is told the bytes of each file as it finishes."""
    root, files = list_files(path)
    if root != path:
        raise BadInput(f"{path} is a file; a checkpoint is a folder holding {CONFIG} and *{WEIGHTS_SUFFIX} weights")
    names = [file.relative_to(root).as_posix() for file in files]
    # Judged by name before any byte is read, so a folder that cannot be a checkpoint costs no hashing.
    for name in names:
        _refuse_pickled_name(name)
    if CONFIG not in names:
        raise BadInput(f"{path} has no {CONFIG}; a checkpoint is a Hugging Face model folder",
                       hint="save it with `save_pretrained`, which writes config.json beside the weights")
    if not any("/" not in name and name.endswith(WEIGHTS_SUFFIX) for name in names):
        raise BadInput(f"{path} holds no *{WEIGHTS_SUFFIX} weights at its top level; {CONVERT}")
    entries = []
    for file, name in zip(files, names, strict=True):
        entries.append(_read_checked(file, name, None))
        _library_accepts(file, name)
        if progress is not None:
            progress(entries[-1].size)
    return FilesManifest(tuple(entries))


def snapshot_verified(asset: Asset, into: Path) -> Path:
    """Copy the registered checkpoint `asset` from its source folder into `into`, a new folder only this user can
    open, and return it. Every byte is hashed as it is copied; any file added, missing or changed since registration,
    or a manifest digest other than `asset.digest`, refuses the copy (DigestMismatch) before anyone can load it."""
    expected = _registered_files(asset)
    source = Path(asset.source_path)
    if not source.is_dir() or source.is_symlink():
        raise DigestMismatch(f"{source} is no longer the registered checkpoint folder; its bytes cannot be verified",
                             hint="restore the registered files at that path")
    root, files = list_files(source)
    found = {file.relative_to(root).as_posix(): file for file in files}
    added, missing = sorted(found.keys() - expected.keys()), sorted(expected.keys() - found.keys())
    if added or missing:
        first = (added or missing)[0]
        raise DigestMismatch(
            f"{source} no longer holds the registered files: "
            + "; ".join(part for part in (f"added since registration: {', '.join(added)}" if added else "",
                                          f"missing: {', '.join(missing)}" if missing else "") if part),
            file=first, expected=expected[first].sha256 if first in expected else None, hint=_CHANGED)
    try:
        into.mkdir(mode=0o700)
    except FileExistsError as exc:
        raise BadInput(f"{into} already exists; a snapshot goes into a new folder") from exc
    except OSError as exc:
        raise ForgegovError(f"cannot create the snapshot folder {into}: {exc.strerror or exc}") from exc
    copied = []
    for name, file in found.items():
        target = into / name
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as sink:
                entry = _read_checked(file, name, sink)
        except OSError as exc:
            # Reading errors arrive as UnreadablePath; an OSError here is the snapshot's own disk.
            raise ForgegovError(f"cannot write the snapshot {target}: {exc.strerror or exc}") from exc
        want = expected[name]
        if (entry.sha256, entry.size) != (want.sha256, want.size):
            raise DigestMismatch(f"{name} has changed since it was registered: its sha256 is {entry.sha256}, "
                                 f"registered as {want.sha256}", file=name, expected=want.sha256,
                                 actual=entry.sha256, hint=_CHANGED)
        # On the private copy, whose bytes were just verified: what the library accepts here is what transformers
        # will load.
        _library_accepts(target, name)
        copied.append(entry)
    recomputed = FilesManifest(tuple(copied)).digest
    if recomputed != asset.digest:
        raise DigestMismatch(f"{source}: the files match the stored manifest, but its digest is {recomputed}, not "
                             f"the registered {asset.digest}; the stored manifest was altered",
                             expected=asset.digest, actual=recomputed)
    return into


def _registered_files(asset: Asset) -> dict[str, FileEntry]:
    """The stored manifest's files, checked for shape: a store row that is not a manifest is itself a change."""
    try:
        document = json.loads(asset.manifest)
        entries = {e["path"]: FileEntry(e["path"], e["size"], e["sha256"]) for e in document["files"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DigestMismatch(f"the stored manifest of {asset.digest} is not a files manifest ({exc!r})") from exc
    if not entries:
        raise DigestMismatch(f"the stored manifest of {asset.digest} lists no files")
    return entries


def _read_checked(path: Path, name: str, sink: BinaryIO | None) -> FileEntry:
    """Hash the file `name` (relative to the checkpoint folder), refusing it if it is pickled or, for weights and
    config, not what its name says."""
    _refuse_pickled_name(name)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise UnreadablePath(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        reading = _Reading(path, handle, sink)
        head = reading.read(8)
        data_end = None
        if name.endswith(WEIGHTS_SUFFIX):
            data_end = _safetensors_data_end(name, head, reading)
        else:
            _refuse_pickled_content(name, head)
            if name == CONFIG:
                _check_config(head + reading.read(_MAX_CONFIG + 1 - len(head)))
        sha = reading.finish()
    if data_end is not None and data_end != reading.size:
        why = ("its tensors run past the end of the file" if data_end > reading.size
               else f"{reading.size - data_end} bytes follow its last tensor")
        raise BadInput(f"{name} is not a valid safetensors file: {why}; {CONVERT}")
    return FileEntry(name, reading.size, sha)


def _library_accepts(path: Path, name: str) -> None:
    """The safetensors library's own reading of a weights file's header (offsets contiguous from 0 and matching
    dtype x shape, dtypes it knows), besides the single-pass check above that runs while the bytes are hashed."""
    if not name.endswith(WEIGHTS_SUFFIX):
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as weights:
            weights.keys()
    except SafetensorError as exc:
        raise BadInput(f"{name} is not a valid safetensors file: the safetensors library refuses it ({exc}); "
                       f"{CONVERT}") from exc


def _refuse_pickled_name(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix in PICKLED_SUFFIXES:
        raise BadInput(f"{name} is a pickled format ({suffix}), and loading a pickle runs code; {CONVERT}")


def _pickled(head: bytes) -> str | None:
    """What the first bytes say the file is, if it is pickled."""
    # A pickle of protocol 2 or later opens with the PROTO opcode and its protocol number.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, as torch.save writes (pickles inside)"
    return None


def _refuse_pickled_content(name: str, head: bytes) -> None:
    what = _pickled(head)
    if what is not None:
        raise BadInput(f"{name} is {what}, and loading a pickle runs code; {CONVERT}")


def _safetensors_data_end(name: str, head: bytes, reading: _Reading) -> int:
    """Check the header of the safetensors file `name` and return the file size its tensors imply."""

    def invalid(why: str) -> BadInput:
        # Only when the header fails: a valid header's length can begin with the same bytes as a pickle does.
        what = _pickled(head)
        if what is not None:
            return BadInput(f"{name} is not safetensors but {what}, and loading a pickle runs code; {CONVERT}")
        return BadInput(f"{name} is not a valid safetensors file: {why}; {CONVERT}")

    if len(head) < 8:
        raise invalid("it is shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", head)
    if not 0 < length <= _MAX_HEADER:
        raise invalid(f"it declares a header of {length} bytes")
    raw = reading.read(length)
    if len(raw) < length:
        raise invalid(f"it ends inside its {length}-byte header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise invalid(f"its header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise invalid("its header is not a JSON object")
    data_end = 0
    for tensor, entry in header.items():
        if tensor == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise invalid("its __metadata__ is not a map of strings")
            continue
        if not _is_tensor_entry(entry):
            raise invalid(f"tensor {tensor!r} lacks a dtype, a shape or valid data_offsets")
        data_end = max(data_end, entry["data_offsets"][1])
    return 8 + length + data_end


def _is_tensor_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    # `type(...) is int`, because JSON's true and false would pass as ints.
    return (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
            and 0 <= offsets[0] <= offsets[1])


def _check_config(raw: bytes) -> None:
    if len(raw) > _MAX_CONFIG:
        raise BadInput(f"{CONFIG} is larger than {_MAX_CONFIG >> 20} MiB; that is no model configuration")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{CONFIG} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise BadInput(f"{CONFIG} does not name its model_type; transformers could not tell which model it is",
                       hint="save the model with `save_pretrained`, which writes a complete config.json")
