"""`kill -9` at any point of identity create, dataset register, approve and policy propose leaves a consistent
workspace (issue 12, item 8): the log verifies and agrees with every row, no dataset is registered without its check,
no policy is in force that no decision put there, and running the command again completes.

Each command is first timed whole, then killed at several fractions of that time: late fractions land in its
database work, where a half-written step would show. Where the kill lands varies from run to run; what is asserted
holds wherever it lands. (Registering a dataset and then checking it in two transactions, as before, fails here.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from forgegov.app.workspace import init_workspace
from forgegov.audit.operations import verify_workspace
from forgegov.foundation.config import load_workspace
from forgegov.foundation.store.db import dispose_engines, read_session
from forgegov.foundation.store.models import Asset, DatasetCheck
from forgegov.foundation.vocabulary import AssetKind
from forgegov.governance import actions
from forgegov.governance.identities import create_identity
from forgegov.governance.policy import packaged_bundle, policy_in_force, read_bundle

from .conftest import PASSPHRASE, register_checked
from .test_cli import DATA, FORGEGOV

FRACTIONS = (0.6, 0.85, 0.97)


def _env() -> dict[str, str]:
    env = {**os.environ, "FORGEGOV_PASSPHRASE": PASSPHRASE}
    env.pop("FORGEGOV_HOME", None)
    return env


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FORGEGOV, *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180)


def _killed(cwd: Path, after_s: float, *args: str) -> None:
    process = subprocess.Popen([*FORGEGOV, *args], cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(after_s)
    # The whole group: a supervised OPA would otherwise outlive its parent for a moment.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _timed(cwd: Path, *args: str) -> float:
    started = time.perf_counter()
    done = _run(cwd, *args)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - started


def _consistent(root: Path) -> None:
    ws = load_workspace(root)
    report = verify_workspace(ws)  # the log, and every asset, identity and activation row against it
    assert report.entries > 0
    with read_session(ws.database_url) as session:
        datasets = session.exec(select(Asset).where(Asset.kind == AssetKind.DATASET)).all()
        checked = {c.dataset_digest for c in session.exec(select(DatasetCheck))}
        assert all(d.digest in checked for d in datasets), "a dataset registered without its check"
        policy_in_force(session)  # the activation row against its entry and the signed decision behind it
    strays = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert not strays, f"left behind: {strays}"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Path]:
    # The embedded store only: there a killed process's half-written transaction is the database file's own problem
    # (PostgreSQL rolls a killed client's transaction back on the server), and the steps outside the database are the
    # same code on both. Made in-process: only the commands under test pay for a process of their own.
    workspace = init_workspace(tmp_path / "ws")
    for name in ("alice", "bob", "dave", "grace"):
        create_identity(workspace, name, PASSPHRASE)
    yield workspace.root
    dispose_engines()


def _dataset(root: Path, name: str) -> Path:
    folder = root.parent / "data" / name
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": f"{name} record {i}"}) + "\n" for i in range(30)))
    return folder


def test_identity_create_killed_anywhere(ws):
    whole = _timed(ws, "identity", "create", "erin")
    for index, fraction in enumerate(FRACTIONS):
        _killed(ws, whole * fraction, "identity", "create", f"p{index}")
        _consistent(ws)
        again = _run(ws, "identity", "create", f"p{index}")
        assert again.returncode == 0 or "already exists" in again.stderr, again.stderr


@pytest.mark.long
def test_dataset_register_killed_anywhere(ws):
    whole = _timed(ws, "dataset", "register", str(_dataset(ws, "first")), "--name", "first", "--owner", "alice",
                   *DATA)
    for index, fraction in enumerate(FRACTIONS):
        folder = _dataset(ws, f"d{index}")
        args = ("dataset", "register", str(folder), "--name", f"d{index}", "--owner", "alice", *DATA)
        _killed(ws, whole * fraction, *args)
        _consistent(ws)
        again = _run(ws, *args)
        assert again.returncode == 0 or "already registered" in again.stderr, again.stderr
    _consistent(ws)


def test_approve_killed_anywhere(ws):
    workspace = load_workspace(ws)
    for index in range(len(FRACTIONS) + 1):
        register_checked(workspace, _dataset(ws, f"d{index}"), f"d{index}")
        actions.request(workspace, f"d{index}", "alice", PASSPHRASE)
    whole = _timed(ws, "approve", "d0", "--as", "bob")
    for index, fraction in enumerate(FRACTIONS, start=1):
        _killed(ws, whole * fraction, "approve", f"d{index}", "--as", "bob")
        _consistent(ws)
        again = _run(ws, "approve", f"d{index}", "--as", "bob")
        assert again.returncode == 0 or "no open dataset request" in again.stderr, again.stderr


def test_policy_propose_killed_anywhere(ws):
    def bundle(revision: str) -> Path:
        folder = ws.parent / f"bundle-{revision}"
        read_bundle(packaged_bundle()).write(folder)
        (folder / ".manifest").write_text(json.dumps({"revision": revision}))
        return folder

    whole = _timed(ws, "policy", "propose", "--from", str(bundle("r0")), "--as", "dave")
    for index, fraction in enumerate(FRACTIONS, start=1):
        folder = bundle(f"r{index}")
        _killed(ws, whole * fraction, "policy", "propose", "--from", str(folder), "--as", "dave")
        _consistent(ws)
        again = _run(ws, "policy", "propose", "--from", str(folder), "--as", "dave")
        assert again.returncode == 0 or "already registered" in again.stderr, again.stderr
    # Adopting one of them still works, and puts exactly that policy in force.
    assert _run(ws, "approve", "policy/policy@1", "--as", "grace").returncode == 0
    _consistent(ws)
    with read_session(load_workspace(ws).database_url) as session:
        assert policy_in_force(session).revision == "r0"
