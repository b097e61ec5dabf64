"""The checkpoint catalog: safetensors-only folders with a stage and a lineage, loaded only through a verified copy."""

from __future__ import annotations

import io
import json
import pickle
import stat
import struct

import pytest

from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, StoreTampered
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.db import write_transaction
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage
from forgegov.governance.checkpoints import scan_checkpoint, snapshot_verified
from forgegov.governance.history import asset_record
from forgegov.governance.identities import create_identity
from forgegov.governance.loading.checkpoints import load_checkpoint
from forgegov.governance.registry import label, lineage, list_assets, register_asset

from .conftest import PASSPHRASE, TEXT_DATA, audit_entries, tiny_checkpoint_files
from .reward_support import write_reward


@pytest.fixture
def ws(workspace):
    for name in ("alice", "bob"):
        create_identity(workspace, name, PASSPHRASE)
    return workspace


def _register(ws, files, name, stage=CheckpointStage.PRE_TRAINING, parent=None, seed=0):
    folder = files.folder(name, tiny_checkpoint_files(seed))
    return folder, register_asset(ws, AssetKind.CHECKPOINT, folder, name, "alice", stage=stage, parent=parent)



def _safetensors(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_a_checkpoint_registers_with_its_stage_and_parent(ws, files):
    base_folder, base = _register(ws, files, "base")
    # The digest stays the plain files-manifest digest, so checkpoints registered before these checks keep theirs.
    assert base.digest == build_manifest(base_folder).digest == scan_checkpoint(base_folder).digest
    assert (base.stage, base.parent_digest) == ("pre-training", None)
    _, tuned = _register(ws, files, "tuned", CheckpointStage.POST_TRAINING, parent="checkpoint/base@1", seed=1)
    assert (tuned.stage, tuned.parent_digest) == ("post-training", base.digest)
    assert asset_record(tuned)["parent_digest"] == base.digest
    payloads = [json.loads(e.payload) for e in audit_entries(ws, "checkpoint.register")]
    assert [(p["name"], p["stage"], p["parent_digest"]) for p in payloads] == [
        ("base", "pre-training", None), ("tuned", "post-training", base.digest)]


def test_lineage_walks_the_parents_to_the_root_and_refuses_a_loop(ws, files):
    _, base = _register(ws, files, "base")
    _, mid = _register(ws, files, "mid", CheckpointStage.MID_TRAINING, parent=base.digest[:20], seed=1)
    _, post = _register(ws, files, "post", CheckpointStage.POST_TRAINING, parent="mid", seed=2)
    assert [label(a) for a in lineage(ws, "post")] == ["checkpoint/post@1", "checkpoint/mid@1", "checkpoint/base@1"]
    assert [label(a) for a in lineage(ws, "base")] == ["checkpoint/base@1"]
    with write_transaction(ws.database_url) as session:
        row = session.get(Asset, base.id)
        row.parent_digest = post.digest
        session.add(row)
    with pytest.raises(StoreTampered, match="loops back"):
        lineage(ws, "post")


def test_a_parent_must_be_a_registered_checkpoint(ws, files):
    dataset = register_asset(ws, AssetKind.DATASET, files.folder("d", {"x.txt": "one"}), "d", "alice",
                             dataset=TEXT_DATA)
    folder = files.folder("ckpt", tiny_checkpoint_files())
    with pytest.raises(BadInput, match="names a dataset, but a checkpoint is needed"):
        register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE,
                       parent="dataset/d")
    with pytest.raises(NotFound, match="no registered checkpoint"):
        register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE,
                       parent=dataset.digest[:20])
    with pytest.raises(BadInput, match="--parent applies to checkpoints only"):
        register_asset(ws, AssetKind.REWARD, write_reward(files.root / "r"), "r", "alice", parent="d")
    assert [label(a) for a in list_assets(ws, None)] == ["dataset/d@1"]


@pytest.mark.parametrize("name", ["pytorch_model.bin", "optimizer.pt", "rng_state.pth", "sub/state.PKL",
                                  "last.ckpt", "arrays.npz"])
def test_pickled_formats_are_refused_by_name(ws, files, name):
    folder = files.folder("ckpt", {**tiny_checkpoint_files(), name: b"anything"})
    with pytest.raises(BadInput, match=rf"{name} is a pickled format .*safe_serialization=True"):
        register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE)
    assert list_assets(ws, None) == []


def test_pickled_content_is_refused_whatever_its_name(ws, files):
    torch = pytest.importorskip("torch")
    saved = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, saved)
    disguised = files.folder("zip", {**tiny_checkpoint_files(), "model.safetensors": saved.getvalue()})
    with pytest.raises(BadInput, match="model.safetensors is not safetensors but a zip archive, as torch.save"):
        register_asset(ws, AssetKind.CHECKPOINT, disguised, "m", "alice", stage=CheckpointStage.CANDIDATE)
    renamed = files.folder("pickle", {**tiny_checkpoint_files(), "weights.data": pickle.dumps([1, 2], protocol=4)})
    with pytest.raises(BadInput, match=r"weights.data is a pickle \(protocol 4\).*safe_serialization=True"):
        register_asset(ws, AssetKind.CHECKPOINT, renamed, "m", "alice", stage=CheckpointStage.CANDIDATE)
    assert list_assets(ws, None) == []


def test_a_safetensors_header_whose_length_looks_like_a_pickle_opcode_is_accepted(ws, files):
    # A real header of 0x0280 bytes begins with b"\x80\x02", the opening of a protocol-2 pickle.
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    padded = json.dumps(header).encode()
    padded += b" " * (0x280 - len(padded))
    folder = files.folder("ckpt", {**tiny_checkpoint_files(), "model.safetensors": _safetensors(padded, b"\0" * 4)})
    assert register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE).version == 1


GOOD_HEADER = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(("weights", "why"), [
    (b"\x10\0\0", "it is shorter than the 8-byte header length"),
    (struct.pack("<Q", 1 << 40) + b"{}", "it declares a header of 1099511627776 bytes"),
    (struct.pack("<Q", 64) + b"{}", "it ends inside its 64-byte header"),
    (_safetensors(b"{not json", b""), "its header is not JSON"),
    (_safetensors(b"[1, 2]"), "its header is not a JSON object"),
    (_safetensors({"w": {"shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "tensor 'w' lacks a dtype"),
    (_safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8),
     "tensor 'w' lacks a dtype, a shape or valid data_offsets"),
    (_safetensors({"__metadata__": {"format": 1}, **GOOD_HEADER}, b"\0" * 8), "its __metadata__ is not a map of strings"),
    (_safetensors(GOOD_HEADER, b"\0" * 4), "its tensors run past the end of the file"),
    (_safetensors(GOOD_HEADER, b"\0" * 12), "4 bytes follow its last tensor"),
], ids=["short", "huge-header", "cut-header", "not-json", "not-object", "no-dtype", "reversed-offsets", "metadata",
        "data-cut", "trailing-bytes"])
def test_a_corrupt_safetensors_file_is_refused(ws, files, weights, why):
    folder = files.folder("ckpt", {**tiny_checkpoint_files(), "model.safetensors": weights})
    with pytest.raises(BadInput, match=f"model.safetensors is not a valid safetensors file: {why}"):
        register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE)
    assert list_assets(ws, None) == []


@pytest.mark.parametrize("header", [
    {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
    {"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}},
    {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "v": {"dtype": "F32", "shape": [1],
                                                                        "data_offsets": [4, 8]}},
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "v": {"dtype": "F32", "shape": [1],
                                                                        "data_offsets": [8, 12]}},
], ids=["shape-offset-mismatch", "unknown-dtype", "overlapping", "gapped"])
def test_weights_the_safetensors_library_refuses_are_refused(ws, files, header):
    # Each passes a header check of shapes and offsets taken one tensor at a time; the library reads them whole.
    end = max(entry["data_offsets"][1] for entry in header.values())
    folder = files.folder("ckpt", {**tiny_checkpoint_files(), "model.safetensors": _safetensors(header, b"\0" * end)})
    with pytest.raises(BadInput, match="the safetensors library refuses it"):
        register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE)
    assert list_assets(ws, None) == []


def test_a_checkpoint_is_a_folder_with_a_config_and_top_level_weights(ws, files):
    def refused(folder, match):
        with pytest.raises(BadInput, match=match):
            register_asset(ws, AssetKind.CHECKPOINT, folder, "m", "alice", stage=CheckpointStage.CANDIDATE)

    weights = tiny_checkpoint_files()["model.safetensors"]
    refused(files.folder("no-config", {"model.safetensors": weights}), "has no config.json")
    refused(files.folder("no-type", {"config.json": '{"hidden_size": 4}', "model.safetensors": weights}),
            "does not name its model_type")
    refused(files.folder("bad-config", {"config.json": "{", "model.safetensors": weights}), "config.json is not valid")
    refused(files.folder("nested", {"config.json": '{"model_type": "llama"}', "shard/model.safetensors": weights}),
            r"holds no \*.safetensors weights at its top level")
    single = files.folder("single", tiny_checkpoint_files()) / "model.safetensors"
    refused(single, "is a file; a checkpoint is a folder")
    assert list_assets(ws, None) == []


def test_a_snapshot_is_a_private_verified_copy(ws, files, tmp_path):
    folder, asset = _register(ws, files, "m")
    snapshot = snapshot_verified(asset, tmp_path / "snap")
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o700
    assert build_manifest(snapshot).digest == asset.digest
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in snapshot.iterdir())
    with pytest.raises(BadInput, match="already exists"):
        snapshot_verified(asset, snapshot)
    (folder / "extra.json").write_text("{}")
    with pytest.raises(DigestMismatch, match="added since registration: extra.json"):
        snapshot_verified(asset, tmp_path / "again")


def test_a_rewritten_stored_manifest_does_not_vouch_for_changed_bytes(ws, files, tmp_path):
    folder, asset = _register(ws, files, "m")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    forged = json.loads(asset.manifest)
    forged["files"][1]["sha256"] = build_manifest(folder).files[1].sha256
    with write_transaction(ws.database_url) as session:
        row = session.get(Asset, asset.id)
        row.manifest = json.dumps(forged)
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
    with pytest.raises(DigestMismatch, match="the stored manifest was altered"):
        snapshot_verified(row, tmp_path / "snap")


def test_tampered_weights_are_refused_and_the_refusal_is_audited(ws, files):
    folder, asset = _register(ws, files, "m")
    expected = json.loads(asset.manifest)["files"][1]["sha256"]
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # inside the tensor data: the header stays valid, only the hash can tell
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="model.safetensors has changed since it was registered"):
        load_checkpoint(ws, "checkpoint/m@1", actor="bob", purpose="sft base for run 3")
    assert audit_entries(ws, "checkpoint.load") == []
    [entry] = audit_entries(ws, "checkpoint.load.refused")
    payload = json.loads(entry.payload)
    assert (entry.actor, entry.subject_digest) == ("bob", asset.digest)
    assert (payload["file"], payload["expected"], payload["purpose"], payload["state"]) == (
        "model.safetensors", expected, "sft base for run 3", "registered")
    assert payload["actual"] not in (None, expected) and len(payload["actual"]) == 64


def test_a_tiny_llama_round_trips_through_register_and_load(ws, files, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, vocab_size=64)
    original = transformers.LlamaForCausalLM(config)
    folder = tmp_path / "llama"
    original.save_pretrained(folder)
    word_level = Tokenizer(models.WordLevel({**{f"w{i}": i for i in range(63)}, "[UNK]": 63}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="[UNK]").save_pretrained(folder)
    asset = register_asset(ws, AssetKind.CHECKPOINT, folder, "llama", "alice", stage=CheckpointStage.PRE_TRAINING)

    model, tokenizer = load_checkpoint(ws, asset.digest[:20], actor="bob", purpose="round trip")
    assert isinstance(model, transformers.LlamaForCausalLM)
    loaded, saved = model.state_dict(), original.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)
    assert tokenizer("w1 w2 w9")["input_ids"] == [1, 2, 9]
    [entry] = audit_entries(ws, "checkpoint.load")
    payload = json.loads(entry.payload)
    assert (entry.actor, entry.subject_digest) == ("bob", asset.digest)
    assert (payload["label"], payload["state"], payload["stage"], payload["tokenizer"]) == (
        "checkpoint/llama@1", "registered", "pre-training", True)
