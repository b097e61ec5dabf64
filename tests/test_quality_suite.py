"""Data-quality suites run with great-expectations: measured, located, and free of the sensitive values."""

from __future__ import annotations

import json

from forgegov.foundation.vocabulary import DatasetKind
from forgegov.governance.datasets.quality import load_suite, read_records, run_suite


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_every_kind_has_a_nonempty_digested_suite():
    digests = {load_suite(kind).digest for kind in DatasetKind}
    assert len(digests) == len(DatasetKind)


def test_clean_dataset_passes_and_leaves_no_ge_project_behind(files, tmp_path, monkeypatch):
    folder = files.folder("clean", {"a.jsonl": _jsonl([{"text": f"Part ZX-{i} is made of steel."} for i in range(20)])})
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    evidence = run_suite(*read_records(folder), DatasetKind.PRETRAINING_TEXT)
    assert list(workdir.iterdir()) == []
    assert evidence["success"] and evidence["failed"] == [] and evidence["records"] == 20
    assert evidence["suite_digest"] == load_suite(DatasetKind.PRETRAINING_TEXT).digest


def test_problems_are_measured_with_locations_not_values(files):
    rows = [{"text": "fine"}, {"text": "mail jane@example.com"}, {"text": "fine"}, {"other": "no text"},
            {"text": "key AKIAIOSFODNN7EXAMPLE"}]
    evidence = run_suite(*read_records(files.folder("bad", {"d.jsonl": _jsonl(rows)})), DatasetKind.PRETRAINING_TEXT)
    assert not evidence["success"]
    by_check = {(e["type"], e["column"]): e for e in evidence["expectations"]}
    assert by_check[("expect_column_values_to_not_be_null", "text")]["sample_locations"] == ["d.jsonl:4"]
    assert by_check[("expect_column_values_to_be_between", "_pii")]["unexpected_count"] == 1
    assert by_check[("expect_column_values_to_be_between", "_secrets")]["sample_locations"] == ["d.jsonl:5"]
    assert by_check[("expect_column_values_to_be_unique", "_record_key")]["unexpected_count"] == 2
    assert evidence["sensitive"]["findings"]["email"]["sample_locations"] == ["d.jsonl:2"]
    text = json.dumps(evidence)
    assert "jane@example.com" not in text and "AKIAIOSFODNN7EXAMPLE" not in text


def test_required_fields_per_kind(files):
    folder = files.folder("pref", {"p.jsonl": _jsonl([{"prompt": "q", "chosen": "a"}])})
    evidence = run_suite(*read_records(folder), DatasetKind.PREFERENCE)
    assert "expect_column_to_exist:rejected" in evidence["failed"]
