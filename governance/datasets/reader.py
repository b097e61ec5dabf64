"""Reading a registered dataset back, proving on the way that its bytes are still the ones registered (and approved).

Checking digests first and reading afterwards would leave a window in which the files could change between the two;
here every file is read once, hashed as it is read, and parsed from those very bytes, and nothing is handed out
until every file and the whole manifest digest have matched. The parsing is intake's own (`DatasetPass`), so a
record can only come back in the shape intake accepted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgegov.foundation.errors import BadInput, DigestMismatch
from forgegov.foundation.manifest import hash_file, list_files
from forgegov.governance.datasets.intake import (
    DATASET_MANIFEST_VERSION,
    Collected,
    DataFile,
    DataFormat,
    DatasetManifest,
    DatasetPass,
    IntakeLimits,
)

if TYPE_CHECKING:
    import datasets

_HINT = "restore the registered files, or register the new bytes as a new version and take them through the gate"


class DataChanged(DigestMismatch):
    """A dataset's bytes differ from its manifest."""

    def __init__(self, message: str, *, file: str | None = None, expected: str | None = None,
                 actual: str | None = None, hint: str | None = _HINT) -> None:
        super().__init__(message, file=file, expected=expected, actual=actual, hint=hint)


@dataclass(frozen=True)
class VerifiedData:
    digest: str
    format: DataFormat
    records: list[dict[str, Any]]
    locations: list[str]
    # Columnar files' Arrow tables, so that a `datasets.Dataset` keeps their column types instead of re-inferring.
    tables: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def to_dataset(self) -> datasets.Dataset:
        """Built in memory from the verified records: loading through the `datasets` cache could serve bytes that
        were never verified."""
        import datasets
        import pyarrow as pa

        if self.tables:
            return datasets.Dataset(pa.concat_tables(self.tables))
        columns = dict.fromkeys(key for record in self.records for key in record)
        try:
            table = pa.Table.from_pydict({key: [record.get(key) for record in self.records] for key in columns})
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise BadInput(f"the records do not form a table ({exc}): a field holds values of different types, "
                           "or integers beyond 64 bits", hint="use VerifiedData.records directly") from exc
        return datasets.Dataset(table)


def read_verified(source: Path, manifest: dict[str, Any], *, digest: str | None = None) -> VerifiedData:
    """The records under `source`, once its bytes are shown to be those `manifest` (a stored dataset manifest
    document) lists, and its digest `digest` when given (an asset's digest, which the stored manifest must match)."""
    data_format, expected = _expected(manifest)
    try:
        os.lstat(source)
    except FileNotFoundError as exc:
        raise DataChanged(f"{source} no longer exists; the registered bytes cannot be verified",
                          hint="restore the registered files at that path") from exc
    root, files = list_files(source)
    found = {file.relative_to(root).as_posix(): file for file in files}
    added, missing = sorted(found.keys() - expected.keys()), sorted(expected.keys() - found.keys())
    if added or missing:
        first = (added or missing)[0]
        raise DataChanged(f"{source} no longer holds the registered files: "
                          + "; ".join(part for part in (
                              f"added since registration: {', '.join(added)}" if added else "",
                              f"missing: {', '.join(missing)}" if missing else "") if part),
                          file=first, expected=expected[first]["sha256"] if first in expected else None)
    kept = Collected()
    # A line cannot be longer than its file was at registration; anything longer is a change, found by its hash.
    limits = IntakeLimits(max_line_bytes=max(1024, *(entry["size"] for entry in expected.values())))
    read: list[DataFile] = []
    with DatasetPass(root, data_format, limits, keep=kept) as scan:
        for name, file in found.items():
            entry = expected[name]
            try:
                got = scan.read(file)
            except BadInput as exc:
                # Bytes that no longer parse have changed (intake parsed them); say how, not only where they broke.
                actual = hash_file(file)[1]
                if actual != entry["sha256"]:
                    raise _changed(name, entry["sha256"], actual) from exc
                raise
            if got.sha256 != entry["sha256"] or got.size != entry["size"]:
                raise _changed(name, entry["sha256"], got.sha256)
            read.append(got)
        scan.finish()
    recomputed = DatasetManifest(data_format, tuple(read))
    if recomputed.to_document() != manifest:
        raise DataChanged(f"{source}: the files match their hashes but not the stored manifest (record counts or "
                          "version differ); the manifest itself was altered")
    if digest is not None and recomputed.digest != digest:
        raise DataChanged(f"{source}: the manifest's digest is {recomputed.digest}, not the registered {digest}; "
                          "the stored manifest was altered", expected=digest, actual=recomputed.digest)
    return VerifiedData(recomputed.digest, data_format, kept.records, kept.locations, tuple(kept.tables))


def _changed(name: str, expected: str, actual: str) -> DataChanged:
    return DataChanged(f"{name} has changed since it was registered: its sha256 is {actual}, registered as "
                       f"{expected}", file=name, expected=expected, actual=actual)


def _expected(manifest: dict[str, Any]) -> tuple[DataFormat, dict[str, dict[str, Any]]]:
    """The stored manifest, checked for shape: a store row that is not one is itself a change to refuse."""
    try:
        if manifest["dataset_manifest_version"] != DATASET_MANIFEST_VERSION:
            raise DataChanged(f"dataset manifest version {manifest['dataset_manifest_version']!r} is not "
                              f"{DATASET_MANIFEST_VERSION}; this forgegov cannot verify it", hint=None)
        data_format = DataFormat(manifest["format"])
        entries = {entry["path"]: entry for entry in manifest["files"]}
        if not entries or not all(isinstance(e["size"], int) and isinstance(e["sha256"], str)
                                  for e in entries.values()):
            raise DataChanged("the stored dataset manifest lists no files or malformed entries")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataChanged(f"the stored manifest is not a dataset manifest ({exc!r})") from exc
    return data_format, entries
