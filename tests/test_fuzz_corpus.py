"""The fuzz corpus (issue 12, item 8): bad datasets, recipes, checkpoints and CLI arguments, each run through the CLI
against one workspace. Counted over the whole corpus: 0 tracebacks (every failure is a typed forgegov error or a
usage error) and 0 half-written workspaces (the log and every table keep their size, and the log still verifies).

Run in-process through Typer's runner, so the corpus costs milliseconds an input rather than an interpreter start.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from forgegov.app.cli.main import app
from forgegov.audit.operations import verify_workspace
from forgegov.foundation.errors import ForgegovError
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry, DatasetCheck, Decision, PolicyBundle, TrainingRun

from .conftest import PASSPHRASE, tiny_checkpoint_files

DATA = ("--kind", "pretraining-text", "--classification", "proprietary")
TABLES = (AuditEntry, Asset, DatasetCheck, Decision, PolicyBundle, TrainingRun)


def _file(root: Path, name: str, content: bytes | str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _parquet(root: Path, name: str, columns: dict) -> Path:  # type: ignore[type-arg]
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / name
    folder.mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / "d.parquet")
    return folder


def _safetensors(header: dict, payload: bytes) -> bytes:  # type: ignore[type-arg]
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + payload


def _checkpoint(root: Path, name: str, weights: bytes) -> Path:
    folder = root / name
    _file(folder, "config.json", json.dumps({"model_type": "llama"}))
    _file(folder, "model.safetensors", weights)
    return folder


def _recipe(root: Path, name: str, text: bytes | str) -> Path:
    return _file(root, f"{name}.toml", text)


VALID_RECIPE = """version = 1
name = "fuzz"
method = "cpt"
seed = 1
[base]
checkpoint = "base"
[mixture]
stopping = "all_exhausted"
[[mixture.sources]]
dataset = "claims"
role = "proprietary"
share = 1.0
[train]
max_steps = {steps}
batch_size = 2
seq_len = 16
learning_rate = 0.001
warmup_steps = 0
decay = "cosine"
min_lr_ratio = 0.1
"""


def _corpus(root: Path) -> list[tuple[str, list[str]]]:
    """(what, CLI arguments) for every input of the corpus."""
    import numpy as np
    import pyarrow as pa

    register = ["dataset", "register"]
    bad_jsonl = {
        "nan": '{"text": NaN}\n', "infinity": '{"text": "x", "n": Infinity}\n', "huge float": '{"n": 1e999}\n',
        "19-digit id": '{"id": 1234567890123456789}\n', "lone surrogate": '{"text": "\\ud800"}\n',
        "truncated": '{"text": "cut', "deep nesting": '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}\n",
        "not utf-8": b'{"text": "\xff\xfe"}\n', "binary": b"\x00\x01\x02\x03" * 64, "empty": b"",
        "array line": "[1, 2]\n",
    }
    corpus = [(f"dataset: {what}", [*register, str(_file(root / "jsonl" / what.replace(" ", "-"), "a.jsonl", text)),
                                     "--name", "fuzz", "--owner", "alice", *DATA])
              for what, text in bad_jsonl.items()]
    for what, columns in {"uint64 id": {"text": ["a"], "id": pa.array([2**64 - 1], type=pa.uint64())},
                          "nan column": {"text": ["a"], "score": pa.array([float("nan")])}}.items():
        corpus.append((f"dataset: parquet {what}", [*register, str(_parquet(root / "parquet", what.replace(" ", "-"),
                                                                            columns)),
                                                    "--name", "fuzz", "--owner", "alice", *DATA]))
    corpus.append(("dataset: a .csv file", [*register, str(_file(root / "csv", "a.csv", "text\nx\n")), "--name",
                                            "fuzz", "--owner", "alice", *DATA]))
    corpus.append(("dataset: name ending in a newline", [*register, str(_file(root / "ok", "a.jsonl",
                                                                              '{"text": "x"}\n')),
                                                         "--name", "fuzz\n", "--owner", "alice", *DATA]))

    weights = np.arange(4, dtype=np.float32).tobytes()
    bad_weights = {
        "shape and size disagree": _safetensors({"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}},
                                                weights),
        "unknown dtype": _safetensors({"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, weights),
        "overlapping tensors": _safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, weights),
        "header past the end": struct.pack("<Q", 10**6) + b"{}",
        "not safetensors": b"PK\x03\x04 a zip file",
    }
    for what, raw in bad_weights.items():
        corpus.append((f"checkpoint: {what}", ["checkpoint", "register",
                                                str(_checkpoint(root / "ckpt", what.replace(" ", "-"), raw)),
                                                "--name", "fuzz", "--stage", "candidate", "--owner", "alice"]))
    pickled = _checkpoint(root / "ckpt", "pickled", tiny_checkpoint_files()["model.safetensors"])  # type: ignore[arg-type]
    _file(pickled, "pytorch_model.bin", b"\x80\x04K\x01.")
    corpus.append(("checkpoint: a pickle beside the weights", ["checkpoint", "register", str(pickled), "--name",
                                                                "fuzz", "--stage", "candidate", "--owner", "alice"]))

    bad_recipes = {
        "max_steps beyond 2^53": VALID_RECIPE.format(steps=2**53),
        "not toml": "version = = 1",
        "deep nesting": "version = 1\nname = " + "[" * 50_000 + "]" * 50_000 + "\n",
        "not utf-8": b"version = 1\nname = \"\xff\"\n",
        "base version beyond 2^63": VALID_RECIPE.format(steps=3).replace('"base"', f'"base@{2**63}"'),
    }
    for what, text in bad_recipes.items():
        corpus.append((f"recipe: {what}", ["run", "start", str(_recipe(root / "recipes", what.replace(" ", "-"),
                                                                       text)), "--as", "alice"]))

    huge = str(2**63)
    corpus += [
        ("args: show NAME@2^63", ["show", f"claims@{huge}"]),
        ("args: request NAME@2^63", ["request", f"claims@{huge}", "--as", "alice"]),
        ("args: approve a missing subject", ["approve", "nothing", "--as", "bob"]),
        ("args: promote to a stage that does not exist", ["promote", "base", "--to", "moon", "--as", "alice"]),
        ("args: --parent NAME@2^63", ["checkpoint", "register", str(_checkpoint(root / "ckpt", "parented",
                                                                                 weights=tiny_checkpoint_files(3)[
                                                                                     "model.safetensors"])),  # type: ignore[arg-type]
                                      "--name", "child", "--stage", "candidate", "--owner", "alice", "--parent",
                                      f"base@{huge}"]),
        ("args: audit show 10^22", ["audit", "show", str(10**22)]),
        ("args: audit proof 2^63", ["audit", "proof", huge]),
        ("args: policy propose from a missing folder", ["policy", "propose", "--from", str(root / "nope"), "--as",
                                                        "dave"]),
        ("args: policy propose from a file", ["policy", "propose", "--from", str(_file(root, "f.txt", "x")),
                                              "--as", "dave"]),
        ("args: withdraw without a reason", ["withdraw", "claims", "--as", "bob", "--reason", " "]),
        ("args: identity create with a bad name", ["identity", "create", "Bob Smith"]),
        ("args: revoke someone who does not exist", ["identity", "revoke", "nobody", "--reason", "r", "--as",
                                                     "dave"]),
        ("args: redact entry 2^63", ["audit", "redact", huge, "--reason", "r", "--as", "grace"]),
        ("args: export into a missing folder", ["audit", "export", str(root / "missing" / "log.jsonl")]),
    ]
    return corpus


def _sizes(ws) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with read_session(ws.database_url) as session:
        return {table.__name__: session.execute(select(func.count()).select_from(table)).scalar_one()
                for table in TABLES}


def test_the_fuzz_corpus_gives_no_traceback_and_writes_nothing(people, files, tmp_path, monkeypatch):
    from forgegov.foundation.vocabulary import AssetKind, CheckpointStage
    from forgegov.governance.registry import register_asset

    register_asset(people, AssetKind.CHECKPOINT, files.folder("base", tiny_checkpoint_files()), "base", "alice",
                   stage=CheckpointStage.PRE_TRAINING)
    monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()
    corpus = _corpus(tmp_path / "corpus")
    tracebacks, half_written, outcomes = [], [], {}
    for what, args in corpus:
        before = _sizes(people)
        result = runner.invoke(app, ["--workspace", str(people.root), *args])
        error = result.exception
        if result.exit_code == 0:
            outcomes[what] = "accepted"
        elif error is None or isinstance(error, (SystemExit, ForgegovError)):
            outcomes[what] = type(error).__name__ if isinstance(error, ForgegovError) else "usage error"
        else:
            tracebacks.append(f"{what}: {type(error).__name__}: {error}")
        if _sizes(people) != before:
            half_written.append(f"{what}: {before} -> {_sizes(people)}")
    assert not tracebacks, "tracebacks:\n" + "\n".join(tracebacks)
    assert not half_written, "half-written:\n" + "\n".join(half_written)
    accepted = [what for what, outcome in outcomes.items() if outcome == "accepted"]
    assert not accepted, f"accepted what it must refuse: {accepted}"
    assert len(outcomes) == len(corpus) == 40
    verify_workspace(people)
