"""Dataset intake: one streaming pass hashes, decodes and parses; bad bytes are refused with file and line."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from forgegov.foundation.errors import BadInput, UnreadablePath
from forgegov.governance.datasets.intake import DataFormat, IntakeLimits, scan_dataset


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_jsonl_folder_manifest_counts_records_and_hashes_bytes(files):
    folder = files.folder("claims", {"a.jsonl": _jsonl([{"text": "x"}, {"text": "y"}]) + "\n",
                                     "sub/b.jsonl": _jsonl([{"text": "z"}])[:-1]})
    manifest = scan_dataset(folder)
    assert manifest.format is DataFormat.JSONL
    assert [(f.path, f.records) for f in manifest.files] == [("a.jsonl", 2), ("sub/b.jsonl", 1)]
    assert manifest.files[0].sha256 == hashlib.sha256((folder / "a.jsonl").read_bytes()).hexdigest()
    assert manifest.records == 3
    again = scan_dataset(files.folder("copy", {"sub/b.jsonl": _jsonl([{"text": "z"}])[:-1],
                                               "a.jsonl": _jsonl([{"text": "x"}, {"text": "y"}]) + "\n"}))
    assert again.digest == manifest.digest
    (folder / "a.jsonl").write_text(_jsonl([{"text": "x"}, {"text": "Y"}]) + "\n")
    assert scan_dataset(folder).digest != manifest.digest


def test_single_file_and_text_folder(files):
    folder = files.folder("docs", {"one.txt": "first line\n\nsecond line\n", "two.txt": "third"})
    text = scan_dataset(folder)
    assert text.format is DataFormat.TEXT and text.records == 3
    single = scan_dataset(files.folder("single", {"d.jsonl": _jsonl([{"p": 1}])}) / "d.jsonl")
    assert single.files[0].path == "d.jsonl" and single.records == 1


def test_records_across_chunk_boundaries(files):
    rows = [{"text": "x" * 1000, "i": i} for i in range(3000)]
    manifest = scan_dataset(files.folder("big", {"big.jsonl": _jsonl(rows)}))
    assert manifest.records == 3000


@pytest.mark.parametrize("content,needle", [
    (_jsonl([{"a": 1}]) + '{"a": 2, "b":', "line 2 is not valid JSON"),
    (_jsonl([{"a": 1}]) + "[1, 2]\n", "line 2 is a JSON list, not an object"),
    (b'{"a": "\xff\xfe"}\n', "line 1 is not valid UTF-8"),
    (b'{"a": 1}\n{"b": "\x00"}\n', "binary data (a NUL byte"),
    ("\n\n  \n", "holds no records"),
])
def test_bad_jsonl_is_refused(files, content, needle):
    folder = files.folder("bad", {"d.jsonl": content})
    with pytest.raises(BadInput, match=needle.replace("(", r"\(").replace("[", r"\[")):
        scan_dataset(folder)


@pytest.mark.parametrize("value,needle", [
    ("NaN", "NaN is not a JSON value"), ("Infinity", "Infinity is not a JSON value"),
    ("-Infinity", "-Infinity is not a JSON value"), ("1e999", "the number 1e999 is out of range"),
    (str(2**53), "beyond"), (str(-(2**53)), "beyond"), ("1234567890123456789", "beyond"),
    ('"\\ud800"', "lone surrogate"), ('{"\\udc00": 1}', "lone surrogate"),
])
def test_values_canonical_json_cannot_carry_are_refused_at_intake(files, value, needle):
    # Registered, such records became uncheckable for ever: the data-quality check hashes them canonically.
    content = _jsonl([{"a": 1}] * 5) + '{"id": ' + value + "}\n"
    with pytest.raises(BadInput, match=f"line 6: .*{needle}"):
        scan_dataset(files.folder("odd", {"d.jsonl": content}))


def test_values_at_the_edge_of_canonical_json_are_kept(files):
    rows = [{"id": 2**53 - 1}, {"id": -(2**53 - 1)}, {"x": 1e308}, {"x": 2.5e-3}, {"card": "4111111111111111"},
            {"t": "\U0001f600 ok"}]
    assert scan_dataset(files.folder("edge", {"d.jsonl": _jsonl(rows)})).records == len(rows)


def test_enormous_single_line_is_refused(files):
    limits = IntakeLimits(max_line_bytes=4096)
    folder = files.folder("huge", {"d.jsonl": '{"text": "' + "x" * 10_000 + '"}\n'})
    with pytest.raises(BadInput, match="line 1 is longer than 4096 bytes"):
        scan_dataset(folder, limits)
    streamed = files.folder("huge2", {"d.jsonl": '{"text": "' + "y" * (3 << 20) + '"}\n'})
    with pytest.raises(BadInput, match="line 1 is longer than"):
        scan_dataset(streamed, IntakeLimits(max_line_bytes=1 << 20))


def test_layout_problems_are_refused(files, tmp_path):
    with pytest.raises(BadInput, match="mixes .jsonl and .txt"):
        scan_dataset(files.folder("mixed", {"a.jsonl": _jsonl([{"a": 1}]), "b.txt": "x"}))
    with pytest.raises(BadInput, match="neither .jsonl nor .txt"):
        scan_dataset(files.folder("odd", {"a.jsonl": _jsonl([{"a": 1}]), "model.bin": b"\x01\x02"}))
    with pytest.raises(BadInput, match="part-0.parquet: not a readable Parquet file"):
        scan_dataset(files.folder("pq", {"part-0.parquet": b"PAR1"}))
    with pytest.raises(BadInput, match="save_to_disk folder: state.json is missing"):
        scan_dataset(files.folder("hf", {"dataset_info.json": "{}", "data-00000-of-00001.arrow": b"x"}))
    escaping = files.folder("escape", {"a.jsonl": _jsonl([{"a": 1}])})
    os.symlink(tmp_path, escaping / "outside")
    with pytest.raises(BadInput, match="symbolic link"):
        scan_dataset(escaping)
    empty = files.root / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="holds no files"):
        scan_dataset(empty)
    with pytest.raises(UnreadablePath):
        scan_dataset(tmp_path / "missing")
