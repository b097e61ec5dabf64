"""Parquet and `datasets` save_to_disk intake, and verified read-back: what is handed out is what was registered."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

from forgegov.foundation.errors import BadInput, DigestMismatch
from forgegov.governance.datasets.intake import DataFormat, scan_dataset
from forgegov.governance.datasets.quality import read_records
from forgegov.governance.datasets.reader import DataChanged, read_verified

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")

ROWS = [{"text": f"record {i}", "label": i % 3} for i in range(10)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _parquet(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _saved(tmp_path, name="hf", rows=ROWS, shards=3):
    folder = tmp_path / name
    datasets.Dataset.from_list(rows).save_to_disk(str(folder), num_shards=shards)
    return folder


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- intake -----------------------------------------------------------------------------------------------------

def test_parquet_single_file_counts_rows_and_hashes_bytes(tmp_path):
    path = tmp_path / "one.parquet"
    _parquet(path, ROWS)
    manifest = scan_dataset(path)
    assert manifest.format is DataFormat.PARQUET
    assert [(f.path, f.records) for f in manifest.files] == [("one.parquet", 10)]
    assert manifest.files[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest.files[0].size == path.stat().st_size


def test_parquet_folder_one_entry_per_file(tmp_path):
    folder = tmp_path / "pq"
    _parquet(folder / "part-0.parquet", ROWS[:7])
    _parquet(folder / "more" / "part-1.parquet", ROWS[7:])
    manifest = scan_dataset(folder)
    assert [(f.path, f.records) for f in manifest.files] == [("more/part-1.parquet", 3), ("part-0.parquet", 7)]
    assert manifest.records == 10


def test_save_to_disk_folder_counts_rows_and_keeps_metadata_files(tmp_path):
    folder = _saved(tmp_path)
    manifest = scan_dataset(folder)
    assert manifest.format is DataFormat.ARROW
    by_path = {f.path: f for f in manifest.files}
    assert sorted(by_path) == ["data-00000-of-00003.arrow", "data-00001-of-00003.arrow",
                               "data-00002-of-00003.arrow", "dataset_info.json", "state.json"]
    assert by_path["state.json"].records == 0 and by_path["dataset_info.json"].records == 0
    assert by_path["state.json"].sha256 == hashlib.sha256((folder / "state.json").read_bytes()).hexdigest()
    assert manifest.records == 10


def test_dataset_dict_is_refused_but_one_split_registers(tmp_path):
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:8]),
                                   "test": datasets.Dataset.from_list(ROWS[8:])})
    splits.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(BadInput, match="dataset_dict.json: this is a `datasets` DatasetDict folder.*register one "
                                        "split folder") as caught:
        scan_dataset(tmp_path / "dd")
    assert caught.value.hint == f"the splits here: {tmp_path / 'dd' / 'test'}, {tmp_path / 'dd' / 'train'}"
    assert scan_dataset(tmp_path / "dd" / "train").records == 8


def test_corrupt_columnar_files_are_refused_by_name(tmp_path):
    truncated = tmp_path / "pq" / "part-0.parquet"
    _parquet(truncated, ROWS)
    truncated.write_bytes(truncated.read_bytes()[:-20])
    with pytest.raises(BadInput, match="part-0.parquet: not a readable Parquet file"):
        scan_dataset(tmp_path / "pq")
    folder = _saved(tmp_path)
    shard = folder / "data-00001-of-00003.arrow"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(BadInput, match="data-00001-of-00003.arrow: not a readable Arrow stream"):
        scan_dataset(folder)


def test_save_to_disk_layout_problems_are_refused(tmp_path):
    missing = _saved(tmp_path, "missing")
    (missing / "state.json").unlink()
    with pytest.raises(BadInput, match="state.json is missing"):
        scan_dataset(missing)
    stray = _saved(tmp_path, "stray")
    (stray / "README.md").write_text("notes")
    with pytest.raises(BadInput, match="README.md does not belong"):
        scan_dataset(stray)
    unlisted = _saved(tmp_path, "unlisted")
    shutil.copy(unlisted / "data-00000-of-00003.arrow", unlisted / "data-00003-of-00003.arrow")
    with pytest.raises(BadInput, match="state.json lists .* but the folder holds"):
        scan_dataset(unlisted)
    with pytest.raises(BadInput, match="dataset_info.json is missing"):
        scan_dataset(_saved(tmp_path, "single") / "data-00000-of-00003.arrow")


def test_mixed_or_mismatched_columnar_folders_are_refused(files, tmp_path):
    mixed = files.folder("mixed", {"a.jsonl": _jsonl([{"text": "x"}])})
    _parquet(mixed / "b.parquet", ROWS)
    with pytest.raises(BadInput, match="mixes .jsonl and .parquet"):
        scan_dataset(mixed)
    columns = tmp_path / "columns"
    _parquet(columns / "a.parquet", ROWS)
    _parquet(columns / "b.parquet", [{"prompt": "p"}])
    with pytest.raises(BadInput, match="b.parquet: its columns differ from those of a.parquet"):
        scan_dataset(columns)


# --- verified reading -------------------------------------------------------------------------------------------

def test_round_trip_jsonl_keeps_exact_values_and_line_locations(files):
    rows = [{"text": "a", "n": 2**53 - 1}, {"text": "b", "x": [1.5, None]}]
    folder = files.folder("j", {"d.jsonl": json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n"})
    manifest = scan_dataset(folder)
    verified = read_verified(folder, manifest.to_document(), digest=manifest.digest)
    assert verified.digest == manifest.digest and verified.format is DataFormat.JSONL
    assert verified.records == rows  # the largest exact integer, not rounded through a float
    assert verified.locations == ["d.jsonl:1", "d.jsonl:3"]
    wide = files.folder("w", {"d.jsonl": json.dumps({"text": "a", "n": 123456789012345678901234567890}) + "\n"})
    with pytest.raises(BadInput, match="line 1: the integer 123456789012345678901234567890 is beyond"):
        scan_dataset(wide)  # refused at intake rather than rounded, or left to fail when the check hashes it
    small = files.folder("k", {"d.jsonl": _jsonl([{"text": "a", "n": 1}, {"text": "b", "x": [1.5, None]}])})
    table = read_verified(small, scan_dataset(small).to_document()).to_dataset()
    assert table.column_names == ["text", "n", "x"] and table[1]["n"] is None and table[1]["x"] == [1.5, None]


def test_round_trip_text(files):
    folder = files.folder("t", {"a.txt": "first\r\n\nsecond\n", "b.txt": "third"})
    manifest = scan_dataset(folder)
    verified = read_verified(folder, manifest.to_document())
    assert verified.records == [{"text": "first"}, {"text": "second"}, {"text": "third"}]
    assert verified.locations == ["a.txt:1", "a.txt:3", "b.txt:1"]
    assert verified.to_dataset()["text"] == ["first", "second", "third"]


def test_round_trip_parquet_keeps_rows_and_column_types(tmp_path):
    folder = tmp_path / "pq"
    _parquet(folder / "a.parquet", ROWS[:4])
    _parquet(folder / "b.parquet", ROWS[4:])
    manifest = scan_dataset(folder)
    verified = read_verified(folder, manifest.to_document(), digest=manifest.digest)
    assert verified.records == ROWS
    assert verified.locations[:2] == ["a.parquet:row 1", "a.parquet:row 2"] and verified.locations[4] == "b.parquet:row 1"
    table = verified.to_dataset()
    assert table.num_rows == 10 and table.features["label"].dtype == "int64"
    assert read_records(folder) == (ROWS, verified.locations)


def test_round_trip_save_to_disk_keeps_features(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(6)]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])})
    folder = tmp_path / "hf"
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(folder), num_shards=2)
    manifest = scan_dataset(folder)
    verified = read_verified(folder, manifest.to_document())
    assert verified.records == rows
    assert verified.locations[3] == "data-00001-of-00002.arrow:row 1"
    loaded = verified.to_dataset()
    assert loaded.features["label"] == datasets.ClassLabel(names=["no", "yes"])
    assert loaded["text"] == [r["text"] for r in rows]


@pytest.mark.parametrize("layout", ["jsonl", "parquet", "arrow"])
def test_a_flipped_byte_is_refused_naming_file_and_both_hashes(files, tmp_path, layout):
    if layout == "jsonl":
        folder = files.folder("j", {"a.jsonl": _jsonl(ROWS), "b.jsonl": _jsonl(ROWS[:2])})
        victim, offset = folder / "b.jsonl", 12  # inside a string: still valid JSON, only the hash can tell
    elif layout == "parquet":
        folder = tmp_path / "pq"
        _parquet(folder / "a.parquet", ROWS)
        victim, offset = folder / "a.parquet", 4  # the first page's header: no longer parses
    else:
        folder = _saved(tmp_path)
        victim, offset = folder / "data-00002-of-00003.arrow", -12  # a value in the last record batch
    manifest = scan_dataset(folder)
    expected = {f.path: f.sha256 for f in manifest.files}[victim.name]
    _flip(victim, offset)
    actual = hashlib.sha256(victim.read_bytes()).hexdigest()
    with pytest.raises(DigestMismatch, match=f"{victim.name} has changed.*{actual}.*{expected}") as caught:
        read_verified(folder, manifest.to_document())
    assert isinstance(caught.value, DataChanged)
    assert (caught.value.file, caught.value.expected, caught.value.actual) == (victim.name, expected, actual)


def test_added_removed_or_missing_files_are_refused(files, tmp_path):
    folder = files.folder("j", {"a.jsonl": _jsonl(ROWS), "b.jsonl": _jsonl(ROWS[:2])})
    document = scan_dataset(folder).to_document()
    (folder / "c.jsonl").write_text(_jsonl(ROWS[:1]))
    with pytest.raises(DigestMismatch, match="added since registration: c.jsonl"):
        read_verified(folder, document)
    (folder / "c.jsonl").unlink()
    (folder / "b.jsonl").unlink()
    with pytest.raises(DigestMismatch, match="missing: b.jsonl"):
        read_verified(folder, document)
    shutil.rmtree(folder)
    with pytest.raises(DigestMismatch, match="no longer exists") as caught:
        read_verified(folder, document)
    assert caught.value.hint


def test_an_altered_manifest_is_refused(files):
    folder = files.folder("j", {"a.jsonl": _jsonl(ROWS)})
    manifest = scan_dataset(folder)
    document = manifest.to_document()
    with pytest.raises(DigestMismatch, match="not the registered"):
        read_verified(folder, document, digest="sha256:" + "0" * 64)
    document["files"][0]["records"] = 11
    with pytest.raises(DigestMismatch, match="the manifest itself was altered"):
        read_verified(folder, document)
    with pytest.raises(DigestMismatch, match="not a dataset manifest"):
        read_verified(folder, {"files": []})


# --- the fast JSONL path agrees with the line-by-line reference ---------------------------------------------------

TRICKY_LINES = [
    '{"text": "plain"}', "", "   ", '{"text": "crlf"}\r', '{"big": -9007199254740991, "id": "98765432109876543210"}',
    '{"s": "\\ud83d\\ude00 \\u00e9"}', '{"deep": [[[{"a": [1, 2.5e-3, null, true]}]]]}', "\t",
    '{"text": "Ünïcödé — 東京 😀"}', '{"a": 1, "a": 2}',
]
# Lines canonical JSON cannot carry: refused by both paths (see test_dataset_intake.py for each kind).
NOT_CANONICAL = ['{"n": NaN, "i": -Infinity}', '{"big": -98765432109876543210}', '{"s": "\\ud800"}']


def test_fast_and_reference_paths_agree_on_awkward_lines(files):
    content = "\n".join(TRICKY_LINES) + "\n"
    folder = files.folder("tricky", {"d.jsonl": content})
    expected = [(n, json.loads(line)) for n, line in enumerate(TRICKY_LINES, start=1) if line.strip()]
    assert scan_dataset(folder).records == len(expected)
    records = read_records(folder)
    assert records[1] == [f"d.jsonl:{n}" for n, _ in expected]
    assert records[0] == [value for _, value in expected]
    for bad in NOT_CANONICAL:
        with pytest.raises(BadInput, match="line 2: .*canonically"):
            scan_dataset(files.folder(f"bad-{NOT_CANONICAL.index(bad)}", {"d.jsonl": TRICKY_LINES[0] + "\n" + bad}))


def test_a_bad_line_deep_in_a_large_file_is_named_exactly(files):
    lines = [json.dumps({"text": "x" * 500, "i": i}) for i in range(6000)]
    lines[4321] = lines[4321][:-1]
    with pytest.raises(BadInput, match="d.jsonl: line 4322 is not valid JSON"):
        scan_dataset(files.folder("big", {"d.jsonl": "\n".join(lines)}))
    lines[4321] = "[" + lines[4322] + "]"
    with pytest.raises(BadInput, match="d.jsonl: line 4322 is a JSON list, not an object"):
        scan_dataset(files.folder("big2", {"d.jsonl": "\n".join(lines)}))


def test_a_state_json_nested_too_deeply_is_refused_not_a_crash(tmp_path):
    folder = _saved(tmp_path, "deep")
    (folder / "state.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BadInput, match="state.json: nests too deeply"):
        scan_dataset(folder)


@pytest.mark.parametrize(("column", "needle"), [
    ("uint64 id", "column id (uint64) holds integers beyond ±(2^53 - 1)"),
    ("nested int", "column meta.ids[] (int64) holds integers beyond"),
    ("nan", "column score holds NaN or an infinite number"),
])
def test_columnar_values_json_cannot_carry_exactly_are_refused_at_registration(tmp_path, column, needle):
    # As for JSONL lines: the fuzzed uint64 Parquet column used to register, then break every later step.
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"text": ["a", "b"]}
    if column == "uint64 id":
        columns["id"] = pa.array([2**64 - 1, 5], type=pa.uint64())
    elif column == "nested int":
        columns["meta"] = pa.array([{"ids": [1, 2**60]}, {"ids": []}])
    else:
        columns["score"] = pa.array([0.5, float("nan")])
    folder = tmp_path / "d"
    folder.mkdir()
    pq.write_table(pa.table(columns), folder / "d.parquet")
    with pytest.raises(BadInput, match=re.escape(needle)):
        scan_dataset(folder)
    exact = tmp_path / "exact"
    exact.mkdir()
    pq.write_table(pa.table({"text": ["a"], "id": pa.array([2**53 - 1], type=pa.uint64())}), exact / "d.parquet")
    assert scan_dataset(exact).records == 1
