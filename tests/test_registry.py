"""The registry: content-addressed, immutable, versioned; bad input changes nothing."""

from __future__ import annotations

import os

import pytest

from forgegov.foundation.errors import AlreadyExists, BadInput, NotFound, UnreadablePath
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage
from forgegov.governance.datasets.intake import scan_dataset
from forgegov.governance.identities import create_identity
from forgegov.governance.registry import find_asset, list_assets, register_asset

from .conftest import PASSPHRASE, TEXT_DATA
from .reward_support import write_reward


@pytest.fixture
def ws(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    return workspace


def test_digest_is_the_manifest_digest_and_versions_follow_new_bytes(ws, files):
    v1 = register_asset(ws, AssetKind.DATASET, files.folder("a", {"x.txt": "one", "sub/y.txt": "two"}), "d", "alice", dataset=TEXT_DATA)
    assert v1.digest == scan_dataset(files.root / "a").digest and v1.version == 1
    assert (v1.dataset_kind, v1.classification, v1.records) == ("pretraining-text", "proprietary", 2)
    v2 = register_asset(ws, AssetKind.DATASET, files.folder("b", {"x.txt": "one!", "sub/y.txt": "two"}), "d", "alice", dataset=TEXT_DATA)
    assert v2.version == 2 and v2.digest != v1.digest
    assert find_asset(ws, "d").version == 2
    assert find_asset(ws, "dataset/d@1").digest == v1.digest
    assert find_asset(ws, v1.digest[:19]).version == 1
    assert [a.version for a in list_assets(ws, AssetKind.DATASET)] == [1, 2]


def test_same_bytes_twice_refused(ws, files):
    folder = files.folder("a", {"x.txt": "one"})
    register_asset(ws, AssetKind.DATASET, folder, "d", "alice", dataset=TEXT_DATA)
    with pytest.raises(AlreadyExists, match="dataset/d@1"):
        register_asset(ws, AssetKind.DATASET, folder, "other", "alice", dataset=TEXT_DATA)


def test_file_order_and_location_do_not_change_identity(ws, files):
    a = build_manifest(files.folder("a", {"x.txt": "1", "y.txt": "2"}))
    b = build_manifest(files.folder("b", {"y.txt": "2", "x.txt": "1"}))
    assert a.digest == b.digest


def test_bad_inputs_register_nothing(ws, files, tmp_path):
    good = files.folder("good", {"x.txt": "1"})
    with pytest.raises(UnreadablePath, match="does not exist"):
        register_asset(ws, AssetKind.DATASET, tmp_path / "missing", "d", "alice", dataset=TEXT_DATA)
    empty = files.root / "empty"
    empty.mkdir(parents=True)
    with pytest.raises(BadInput, match="no files"):
        register_asset(ws, AssetKind.DATASET, empty, "d", "alice", dataset=TEXT_DATA)
    linked = files.folder("linked", {"x.txt": "1"})
    os.symlink("/etc/hostname", linked / "escape")
    with pytest.raises(BadInput, match="symbolic link"):
        register_asset(ws, AssetKind.DATASET, linked, "d", "alice", dataset=TEXT_DATA)
    with pytest.raises(NotFound, match="no identity named 'zed'"):
        register_asset(ws, AssetKind.DATASET, good, "d", "zed", dataset=TEXT_DATA)
    with pytest.raises(BadInput, match="needs --stage"):
        register_asset(ws, AssetKind.CHECKPOINT, good, "m", "alice")
    with pytest.raises(BadInput, match="checkpoints only"):
        register_asset(ws, AssetKind.DATASET, good, "d", "alice", stage=CheckpointStage.CANDIDATE, dataset=TEXT_DATA)
    with pytest.raises(BadInput, match="invalid"):
        register_asset(ws, AssetKind.DATASET, good, "Bad Name", "alice", dataset=TEXT_DATA)
    assert list_assets(ws, None) == []


def test_unreadable_file_and_special_files_refused(ws, files, monkeypatch):
    folder = files.folder("a", {"x.txt": "1"})
    os.mkfifo(folder / "pipe")
    with pytest.raises(BadInput, match="not a regular file"):
        register_asset(ws, AssetKind.DATASET, folder, "d", "alice", dataset=TEXT_DATA)
    (folder / "pipe").unlink()
    real_open = open

    def deny_x(path, *args, **kwargs):
        # Tests run as root in CI, where chmod 000 does not stop reads; simulate the kernel's refusal instead.
        if str(path).endswith("x.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny_x)
    with pytest.raises(UnreadablePath, match="Permission denied"):
        register_asset(ws, AssetKind.DATASET, folder, "d", "alice", dataset=TEXT_DATA)
    monkeypatch.undo()
    assert list_assets(ws, None) == []


def test_references(ws, files):
    register_asset(ws, AssetKind.DATASET, files.folder("a", {"x.txt": "1"}), "shared-name", "alice", dataset=TEXT_DATA)
    register_asset(ws, AssetKind.REWARD, write_reward(files.root / "b"), "shared-name", "alice")
    with pytest.raises(BadInput, match="ambiguous"):
        find_asset(ws, "shared-name")
    assert find_asset(ws, "reward/shared-name").kind is AssetKind.REWARD
    with pytest.raises(NotFound):
        find_asset(ws, "nothing")
    with pytest.raises(NotFound):
        find_asset(ws, "dataset/shared-name@7")
    with pytest.raises(BadInput, match="at least 12"):
        find_asset(ws, "sha256:abc")
    with pytest.raises(BadInput, match="unknown kind"):
        find_asset(ws, "model/shared-name")
    # Off the grammar: a version past what the store holds (it used to crash), a trailing newline (`$` matched it).
    for ref in (f"dataset/shared-name@{2**63}", "dataset/shared-name@0", "shared-name\n", "dataset/shared-name@1\n"):
        with pytest.raises(BadInput, match="cannot read subject"):
            find_asset(ws, ref)


def test_names_ending_in_a_newline_are_refused(ws, files):
    with pytest.raises(BadInput, match="is invalid"):
        register_asset(ws, AssetKind.REWARD, write_reward(files.root / "b"), "reward\n", "alice")
    with pytest.raises(BadInput, match="is invalid"):
        create_identity(ws, "carol\n", PASSPHRASE)


def test_datasets_need_their_declaration_and_only_datasets_take_one(ws, files):
    folder = files.folder("a", {"x.txt": "1"})
    with pytest.raises(BadInput, match="needs --kind and --classification"):
        register_asset(ws, AssetKind.DATASET, folder, "d", "alice")
    with pytest.raises(BadInput, match="datasets only"):
        register_asset(ws, AssetKind.REWARD, folder, "r", "alice", dataset=TEXT_DATA)
    with pytest.raises(BadInput, match="line 1 is not valid JSON"):
        register_asset(ws, AssetKind.DATASET, files.folder("b", {"x.jsonl": '{"a": '}), "d", "alice",
                       dataset=TEXT_DATA)
    assert list_assets(ws, None) == []
