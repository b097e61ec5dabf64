"""`forgegov audit ...` from the command line: proofs, checkpoints with a witness, export, redaction, tamper exit code."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest

from forgegov.audit.merkle import verify_consistency, verify_inclusion

from .test_cli import DATA, Cli


@pytest.mark.long
def test_audit_commands(tmp_path):
    cli = Cli(tmp_path, None)
    cli("init", "--dir", "ws")
    cli.cwd = tmp_path / "ws"
    for name in ("alice", "bob", "grace", "audit-witness"):
        cli("identity", "create", name)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    cli("dataset", "register", "../d", "--name", "d", "--owner", "alice", *DATA)
    cli("request", "d", "--as", "alice")
    cli("approve", "d", "--as", "bob")

    checkpoint = cli.json("audit", "checkpoint", "--witness", "../witness", "--cosign-as", "audit-witness")
    size = checkpoint["size"]
    assert "\n\n\u2014 forgegov.local/log/" in checkpoint["note"]
    (witnessed,) = checkpoint["witnessed"]
    assert "\u2014 audit-witness " in (tmp_path / "ws" / witnessed).read_text()
    proof = cli.json("audit", "proof", "2")
    b = base64.b64decode
    verify_inclusion(2, size, b(proof["leaf_hash"]), [b(p) for p in proof["proof"]], b(checkpoint["root"]))
    consistency = cli.json("audit", "consistency", "3", str(size))
    verify_consistency(3, size, b(consistency["old_root"]), b(consistency["new_root"]),
                       [b(p) for p in consistency["proof"]])
    assert consistency["new_root"] == checkpoint["root"]

    report = cli.json("audit", "verify", "--witness", "../witness")
    assert report["ok"] and report["entries"] == size and report["witnessed"] == 1 and report["statements"] == 4
    shown = cli.json("audit", "show", "0")
    assert shown["leaf"]["seq"] == 0 and shown["payload"] is not None
    approvals = cli.json("audit", "show", "--action", "gate.dataset.approve")
    assert [row["leaf"]["actor"] for row in approvals] == ["bob"]

    cli("audit", "export", "../log.jsonl")
    offline = cli.json("audit", "verify", "--from-export", "../log.jsonl", "--witness", "../witness")
    assert offline["entries"] == size

    assert "cannot be redacted" in cli("audit", "redact", "1", "--reason", "r", "--as", "grace", code=2).stderr
    registered = cli.json("audit", "show", "--action", "dataset.register")[0]["seq"]
    denied = cli("audit", "redact", str(registered), "--reason", "erasure request", "--as", "alice", code=3)
    assert "alice may not audit.redact: only a holder of role privacy-officer may" in denied.stderr
    cli("audit", "redact", str(registered), "--reason", "erasure request", "--as", "grace")
    assert cli.json("audit", "verify")["redacted"] == [registered]

    requested = cli.json("audit", "show", "--action", "gate.dataset.request")[0]["leaf"]["seq"]
    with sqlite3.connect(cli.cwd / "forgegov.db") as db:
        db.execute("UPDATE audit_entry SET payload = replace(payload, 'alice', 'mallory') WHERE seq = ?", (requested,))
    failed = cli("audit", "verify", code=4)  # tampered: one exit code for every integrity failure
    assert f"entry {requested}: payload does not match the leaf's payload digest" in failed.stderr
    assert cli("audit", "show", "999", code=2).stderr.startswith("error: no audit entry 999")
    json.loads(cli("audit", "tail", "-n", "2", "--json").stdout)


def test_out_of_range_and_misplaced_arguments_are_errors_not_tracebacks(tmp_path):
    cli = Cli(tmp_path, None)
    cli("init", "--dir", "ws")
    cli.cwd = tmp_path / "ws"
    (tmp_path / "a-file").write_text("not a folder")
    huge = str(10**22)
    for args in (("audit", "show", huge), ("audit", "proof", huge), ("audit", "consistency", "1", huge),
                 ("audit", "redact", huge, "--reason", "r", "--as", "p"), ("audit", "tail", "-n", huge),
                 ("audit", "export", str(tmp_path / "missing" / "log.jsonl")),
                 ("audit", "checkpoint", "--witness", str(tmp_path / "a-file")),
                 ("show", f"dataset/d@{2**63}")):
        done = cli(*args, code=2)
        assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "missing").exists()
