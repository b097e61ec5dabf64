"""The loader: only approved datasets, only their approved bytes, and every load or refusal in the audit log."""

from __future__ import annotations

import json

import pytest

from forgegov.foundation.errors import DigestMismatch, NotFound, StateConflict
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance.identities import unlock
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.registry import label, register_asset

from .conftest import PASSPHRASE, TEXT_DATA, audit_entries

datasets = pytest.importorskip("datasets")

ROWS = [{"text": f"a record about topic {i}", "source": "unit"} for i in range(5)]


def _register(workspace, files, name="corpus"):
    folder = files.folder(name, {"part.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)})
    return folder, register_asset(workspace, AssetKind.DATASET, folder, name, owner="alice", dataset=TEXT_DATA)


def _approve(workspace, asset) -> None:
    # Through the real dataset gate: the loader believes only a state the audit log backs (a row set to approved by
    # hand is refused, see test_store_edits.py).
    from forgegov.foundation.vocabulary import GateAction
    from forgegov.governance import actions
    from forgegov.governance.evidence.data_quality import check_dataset

    check_dataset(workspace, label(asset), signer=unlock(workspace, "bob", PASSPHRASE))
    actions.request(workspace, label(asset), "alice", PASSPHRASE)
    actions.answer(workspace, label(asset), "bob", PASSPHRASE, GateAction.APPROVE)


def test_an_unapproved_dataset_is_not_loaded(people, files):
    _, asset = _register(people, files)
    with pytest.raises(StateConflict, match="is registered, not approved") as caught:
        load_dataset(people, label(asset), actor="bob", purpose="pretraining run 7")
    assert caught.value.hint == f"forgegov request {label(asset)} --gate dataset"
    assert audit_entries(people, "dataset.load") == []


def test_an_approved_dataset_loads_its_rows_and_the_load_is_audited(people, files):
    _, asset = _register(people, files)
    _approve(people, asset)
    loaded = load_dataset(people, asset.digest[:20], actor="bob", purpose="pretraining run 7")
    assert isinstance(loaded, datasets.Dataset)
    assert loaded.to_list() == ROWS
    [entry] = audit_entries(people, "dataset.load")
    assert (entry.actor, entry.subject_digest) == ("bob", asset.digest)
    assert json.loads(entry.payload) == {"actor": "bob", "label": "dataset/corpus@1", "purpose": "pretraining run 7",
                                         "state": "approved", "records": 5}


def test_bytes_changed_after_approval_are_refused_and_the_refusal_is_audited(people, files):
    folder, asset = _register(people, files)
    _approve(people, asset)
    expected = json.loads(asset.manifest)["files"][0]["sha256"]
    part = folder / "part.jsonl"
    part.write_bytes(part.read_bytes().replace(b"topic 3", b"topic 8"))
    with pytest.raises(DigestMismatch, match="part.jsonl has changed"):
        load_dataset(people, "dataset/corpus@1", actor="bob", purpose="pretraining run 7")
    assert audit_entries(people, "dataset.load") == []
    [entry] = audit_entries(people, "dataset.load.refused")
    payload = json.loads(entry.payload)
    assert (entry.actor, entry.subject_digest) == ("bob", asset.digest)
    assert (payload["file"], payload["expected"], payload["purpose"]) == ("part.jsonl", expected, "pretraining run 7")
    assert payload["actual"] not in (None, expected) and len(payload["actual"]) == 64


def test_an_unknown_actor_cannot_load(people, files):
    _, asset = _register(people, files)
    _approve(people, asset)
    with pytest.raises(NotFound, match="no identity named 'nobody'"):
        load_dataset(people, label(asset), actor="nobody", purpose="pretraining run 7")
    assert audit_entries(people, "dataset.load") == []
