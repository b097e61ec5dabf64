"""The CLI contract: names, flags, --json, exit codes (0 done, 2 bad input, 3 denied, 1 other), nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgegov.foundation.config import load_workspace
from forgegov.foundation.store.db import dispose_engines
from forgegov.governance.identities import create_identity
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.opa.supervisor import LocalOpa
from forgegov.governance.policy import packaged_bundle

from .conftest import PASSPHRASE, tiny_checkpoint_files

DATA = ("--kind", "pretraining-text", "--classification", "proprietary")
FORGEGOV = [sys.executable, "-c", "from forgegov.app.cli.main import main; main()"]


class Cli:
    def __init__(self, cwd: Path, store_url: str | None) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "FORGEGOV_PASSPHRASE": PASSPHRASE}
        self.env.pop("FORGEGOV_HOME", None)
        self.store_url = store_url

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*FORGEGOV, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == code, f"forgegov {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path, store_url: str | None) -> Cli:
    runner = Cli(tmp_path, store_url)
    extra = ["--store", store_url] if store_url else []
    runner("init", "--dir", "ws", *extra)
    runner.cwd = tmp_path / "ws"
    runner("identity", "create", "alice")
    # The others in this process (their keys derive once per test process): the command itself was just run.
    workspace = load_workspace(tmp_path / "ws")
    for name in ("bob", "erin", "frank", "dave"):
        create_identity(workspace, name, PASSPHRASE)
    dispose_engines()
    data = tmp_path / "claims"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "part ZX-1 is steel"}\n')
    return runner


def test_dataset_flow_and_exit_codes(cli):
    registered = cli.json("dataset", "register", "../claims", "--name", "claims", "--owner", "alice", *DATA)
    assert registered["digest"].startswith("sha256:") and registered["version"] == 1
    assert registered["check"]["summary"]["records"] == 1 and registered["check"]["summary"]["failed"] == []
    again = cli.json("dataset", "check", "claims", "--as", "bob")
    assert again["dataset"] == "dataset/claims@1" and again["audit_seq"] > registered["check"]["audit_seq"]
    assert "no identity named 'nobody'" in cli("dataset", "check", "claims", "--as", "nobody", code=2).stderr
    opened = cli.json("request", "claims", "--as", "alice")
    assert opened["result"] == "pending" and opened["missing"]
    denied = cli("approve", "claims", "--as", "alice", code=3)
    assert "denied:" in denied.stderr
    assert "alice requested this approval and cannot approve it" in denied.stderr
    approved = cli.json("approve", "claims", "--as", "bob")
    assert approved["result"] == "allow" and approved["state"] == "approved"
    shown = cli.json("show", "claims")
    assert shown["asset"]["state"] == "approved"
    assert [d["result"] for d in shown["decisions"]] == ["pending", "deny", "allow"]
    listed = cli.json("list", "dataset")
    assert [row["name"] for row in listed] == ["claims"]
    assert cli.json("audit", "verify")["ok"] is True
    assert "did you mean dataset/claims?" in cli("show", "claim", code=2).stderr
    assert "did you mean bob?" in cli("dataset", "check", "claims", "--as", "bobb", code=2).stderr


def test_run_dry_run_writes_nothing_and_exits_as_the_gate_would(cli, tmp_path):
    recipe = tmp_path / "typo.toml"
    recipe.write_text('version = 1\nname = "typo"\nmethod = "cpt"\nseed = 1\n[base]\ncheckpoint = "no-such-base"\n'
                      '[mixture]\n[[mixture.sources]]\ndataset = "claimz"\nrole = "proprietary"\nshare = 1.0\n'
                      '[train]\nmax_steps = 1\nbatch_size = 1\nseq_len = 8\nlearning_rate = 0.001\nwarmup_steps = 0\n')
    before = cli.json("audit", "tail", "-n", "1000")
    seen = json.loads(cli("run", "start", str(recipe), "--as", "alice", "--dry-run", "--json", code=3).stdout)
    assert seen["dry_run"] is True and seen["registered"] is False and seen["result"] == "deny"
    assert any("no-such-base" in reason for reason in seen["reasons"])
    assert seen["evidence"]["run"]["sources"][0]["found"] is False
    assert cli.json("audit", "tail", "-n", "1000") == before and cli.json("list", "run") == []
    assert cli("--version").stdout.startswith("forgegov ")


def _checkpoint_folder(folder: Path, seed: int = 0) -> Path:
    folder.mkdir()
    for name, content in tiny_checkpoint_files(seed).items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


@pytest.mark.long
def test_promotion_quorum_of_two_via_cli(cli, tmp_path):
    ckpt = _checkpoint_folder(tmp_path / "ckpt")
    cli("checkpoint", "register", str(ckpt), "--name", "m", "--stage", "candidate", "--owner", "alice")
    # No run produced it, so it is promotable only once an ML lead approves it at the base gate.
    assert "produced by no governed training run" in cli("promote", "m", "--to", "staging", "--as", "alice",
                                                         code=3).stderr
    cli("request", "m", "--gate", "base", "--as", "alice")
    cli("approve", "m", "--gate", "base", "--as", "dave")
    cli("promote", "m", "--to", "staging", "--as", "alice")
    cli("approve", "m", "--as", "dave")
    cli("promote", "m", "--to", "production", "--as", "alice")
    # The release managers find it waiting; the requester does not, and the list shows the open promotion.
    (waiting,) = cli.json("inbox", "--as", "erin")
    assert (waiting["subject"], waiting["target"], waiting["may"]) == ("checkpoint/m@1", "production",
                                                                      ["approve", "reject"])
    assert cli.json("inbox", "--as", "alice") == []
    (pending,) = cli.json("list", "--state", "pending")
    assert pending["state"] == "approved" and pending["open_requests"] == [
        {"gate": "promotion", "target": "production", "requested_by": "alice"}]
    # A denial with --json is a decision on stdout, with the same exit code.
    denial = json.loads(cli("approve", "m", "--as", "alice", "--json", code=3).stdout)
    assert denial["result"] == "deny" and denial["decision_id"] and any("cannot approve" in r for r in denial["reasons"])
    assert denial["holders"]["release-manager"] == ["erin", "frank"]
    shown = cli.json("review", "m")
    assert shown["gate"] == "promotion" and shown["request"]["target"] == "production"
    signed = cli.json("approve", "m", "--as", "erin", "--expect-digest", shown["digest"])
    assert signed["release"] == "staging" and signed["evidence_digest"] == shown["digest"]
    assert cli.json("approve", "m", "--as", "frank")["release"] == "production"
    entries = cli.json("audit", "show", "--subject", "m")
    assert entries and {row["subject"] for row in entries} == {"checkpoint/m@1"}
    tree = cli.json("lineage", "m")["checkpoint"]
    assert tree["release"] == "production" and tree["produced_by"] is None and tree["base"] is None
    production = [d for d in tree["decisions"] if d["target"] == "production"]
    assert [(s["signer"], s["roles"]) for s in production[-1]["signatures"]] == [
        ("erin", ["release-manager"]), ("frank", ["release-manager"])]


def test_checkpoint_lineage_and_pickles_via_cli(cli, tmp_path):
    base = cli.json("checkpoint", "register", str(_checkpoint_folder(tmp_path / "base")), "--name", "base",
                    "--stage", "pre-training", "--owner", "alice")
    tuned = cli.json("checkpoint", "register", str(_checkpoint_folder(tmp_path / "tuned", seed=1)), "--name", "tuned",
                     "--stage", "post-training", "--owner", "alice", "--parent", "base")
    assert (base["parent_digest"], tuned["parent_digest"]) == (None, base["digest"])
    assert cli.json("show", "tuned")["asset"]["parent_digest"] == base["digest"]
    assert f"parent checkpoint/base@1  {base['digest']}" in cli("show", "tuned").stdout
    pickled = _checkpoint_folder(tmp_path / "pickled", seed=2)
    (pickled / "training_args.bin").write_bytes(b"\x80\x04K\x01.")
    refused = cli("checkpoint", "register", str(pickled), "--name", "p", "--stage", "candidate", "--owner", "alice",
                  code=2)
    assert "training_args.bin is a pickled format" in refused.stderr and "safe_serialization=True" in refused.stderr
    assert [row["name"] for row in cli.json("list", "checkpoint")] == ["base", "tuned"]


def test_bad_input_exits_2_and_changes_nothing(cli):
    assert "no registered asset matches 'nope'" in cli("show", "nope", code=2).stderr
    cli("dataset", "register", "../missing", "--name", "x", "--owner", "alice", *DATA, code=2)
    (cli.cwd.parent / "truncated").mkdir()
    (cli.cwd.parent / "truncated" / "part.jsonl").write_text('{"text": "complete"}\n{"text": "cut of')
    cut = cli("dataset", "register", "../truncated", "--name", "t", "--owner", "alice", *DATA, code=2)
    assert "part.jsonl: line 2 is not valid JSON" in cut.stderr
    cli("dataset", "register", "../claims", "--name", "c", "--owner", "alice", "--kind", "mystery",
        "--classification", "public", code=2)
    cli("dataset", "register", "../claims", "--name", "claims", "--owner", "alice", *DATA)
    out = cli("dataset", "register", "../claims", "--name", "again", "--owner", "alice", *DATA, code=2)
    assert "already registered as dataset/claims@1" in out.stderr
    cli("identity", "create", "alice", code=2)
    cli.env["FORGEGOV_PASSPHRASE"] = "wrong passphrase"
    wrong = cli("request", "claims", "--as", "alice", code=2)
    assert "wrong passphrase" in wrong.stderr and "FORGEGOV_PASSPHRASE" in wrong.stderr
    del cli.env["FORGEGOV_PASSPHRASE"]
    assert "no terminal" in cli("request", "claims", "--as", "alice", code=2).stderr
    cli("promote", "claims", "--to", "shelf", "--as", "alice", code=2)
    assert cli.json("show", "claims")["decisions"] == []
    assert "Traceback" not in wrong.stderr
    verbose = cli("-v", "show", "nope", code=2)
    assert "Traceback" in verbose.stderr


def test_revoked_identity_refused(cli):
    cli("dataset", "register", "../claims", "--name", "claims", "--owner", "alice", *DATA)
    cli("request", "claims", "--as", "alice")
    cli("identity", "revoke", "bob", "--reason", "key leaked", "--as", "dave")
    refused = cli("approve", "claims", "--as", "bob", code=2)
    assert "revoked" in refused.stderr
    rows = cli.json("identity", "list")
    assert [r["name"] for r in rows if r["revoked_at"]] == ["bob"]
    # alice rotates her key: a signed act the policy decides; her new passphrase from the environment.
    before = {r["name"]: r["key_id"] for r in rows}
    cli.env["FORGEGOV_NEW_PASSPHRASE"] = "alice's new passphrase"
    cli("identity", "rotate", "alice", "--reason", "new laptop", "--as", "alice")
    after = {r["name"]: r["key_id"] for r in cli.json("identity", "list")}
    assert after["alice"] != before["alice"] and after["dave"] == before["dave"]
    del cli.env["FORGEGOV_NEW_PASSPHRASE"]
    refused = cli("identity", "rotate", "dave", "--reason", "lost laptop", "--as", "dave", code=2)
    assert "FORGEGOV_NEW_PASSPHRASE" in refused.stderr


def test_opa_down_between_two_commands_exit_3(tmp_path, store_url):
    opa = LocalOpa(find_opa(), packaged_bundle(), tmp_path / "opa.log")
    opa.start()
    runner = Cli(tmp_path, store_url)
    runner("init", "--dir", "ws", "--opa-url", opa.url, *(["--store", store_url] if store_url else []))
    runner.cwd = tmp_path / "ws"
    for name in ("alice", "bob"):
        runner("identity", "create", name)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    runner("dataset", "register", "../d", "--name", "d", "--owner", "alice", *DATA)
    runner("request", "d", "--as", "alice")
    opa.stop()
    denied = runner("approve", "d", "--as", "bob", code=3)
    assert "is unreachable" in denied.stderr
    assert runner.json("show", "d")["asset"]["state"] == "pending"


def test_help_reads_well():
    done = subprocess.run([*FORGEGOV, "approve", "--help"], capture_output=True, text=True, check=True)
    assert "--as" in done.stdout and "quorum" in done.stdout
    top = subprocess.run([*FORGEGOV, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("init", "identity", "dataset", "reward", "checkpoint", "request", "approve", "reject", "promote",
                    "withdraw", "show", "list", "policy", "demo"):
        assert f"  {command} " in top


def test_policy_test_runs_opa_test():
    done = subprocess.run([*FORGEGOV, "policy", "test", str(packaged_bundle())], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout
