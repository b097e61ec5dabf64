"""Every benchmark in bench/ still runs: each script's --smoke mode, end to end on the CPU, with its figures checked.

A benchmark nobody runs rots silently when the code under it changes (gate_latency.py did when the dataset gate
began to require a data-quality check); these runs make that a test failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _smoke(script: str, *args: str) -> str:
    """Run `bench/<script> --smoke`, fail with its stderr unless it exits 0; returns its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGOV_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def _store_args(store_url: str | None) -> tuple[str, ...]:
    return () if store_url is None else ("--store", store_url)


def test_audit_log(tmp_path, store_url):
    out = tmp_path / "audit_log.json"
    printed = _smoke("audit_log.py", "--out", str(out), *_store_args(store_url))
    result = json.loads(out.read_text())
    assert result["store"] == ("sqlite" if store_url is None else "postgresql")
    assert result["verified_entries"] == 3000
    for figure in ("append_single_per_s", "append_batched_per_s", "verify_s", "inclusion_proof_ms",
                   "consistency_proof_ms"):
        assert result[figure] > 0, figure
    assert "3,000 entries" in printed and "full verify" in printed


def test_dataset_manifest(tmp_path):
    out = tmp_path / "dataset_manifest.json"
    printed = _smoke("dataset_manifest.py", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["bytes"] >= 4 << 20 and result["records"] > 0 and result["repeat"] == 1
    rows = {row["name"]: row for row in result["rows"]}
    assert rows["sha256sum (coreutils)"]["ratio"] == 1.0
    assert all(row["mb_per_s"] > 0 and row["ratio"] > 0 for row in rows.values())
    assert {"build_manifest (files manifest)", "scan_dataset (registration intake)"} <= rows.keys()
    assert result["verdict"] in ("PASS", "MISS") and "scan_dataset vs sha256sum" in printed


def test_gate_latency(tmp_path, store_url):
    out = tmp_path / "gate_latency.json"
    printed = _smoke("gate_latency.py", "--out", str(out), *_store_args(store_url))
    result = json.loads(out.read_text())
    assert result["store"] == ("sqlite" if store_url is None else "postgresql") and result["n"] == 20
    rows = {row["name"]: row for row in result["rows"]}
    # Every request but the warm-up one came back pending, and every approval allowed: the script exits otherwise.
    assert rows["bare OPA query (opa-python-client)"]["n"] == 20
    assert rows["gate: request → pending"]["n"] == 19
    assert rows["gate: approve → approved"]["n"] == 20
    for row in rows.values():
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
    assert "× the bare query" in printed
    # The script exits unless every one of the 2n decisions (n requests, n approvals) replays to what was recorded.
    assert result["replay"]["decisions"] == 40 and result["replay"]["seconds_per_1000"] > 0
    assert "per 1,000 decisions" in printed


def test_quality_gate(tmp_path):
    out = tmp_path / "quality_gate.json"
    printed = _smoke("quality_gate.py", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["rows"] == 5000 and result["forgegov_s"] > 0 and result["bare_ge_s"] > 0 and result["ratio"] > 0
    # The generated records carry duplicates and sensitive values; both sides must have found them.
    assert "expect_column_values_to_be_unique:_record_key" in result["forgegov_failed"]
    assert result["bare"]["expect_column_values_to_be_unique"] > 0
    assert result["bare"]["expect_column_values_to_not_match_regex_list"] > 0
    assert result["sensitive_records"] and all(n > 0 for n in result["sensitive_records"].values())
    assert "forgegov / bare" in printed


def test_governed_run():
    result = json.loads(_smoke("governed_run.py"))
    assert result["preset"] == "tiny" and result["device"] == "cpu" and result["steps"] == 4
    assert len(result["bare_s"]) == len(result["governed_s"]) == 1
    assert all(t > 0 for t in result["bare_s"] + result["governed_s"]) and result["ratio_of_medians"] > 0
    # The governed run trained every planned token: steps × batch × sequence length.
    assert result["tokens_trained"] == result["steps"] * result["batch_size"] * result["seq_len"]
    assert result["governed_tokens_per_s"] > 0 and result["parameters"] > 0


def test_gpu_throughput_on_cpu():
    result = json.loads(_smoke("gpu_throughput.py"))
    assert result["device"] == "cpu" and result["size"] == "tiny" and result["timed_steps"] == 2
    assert result["parameters"] > result["non_embedding_parameters"] > 0
    assert result["seconds"] > 0 and result["tokens_per_s"] > 0
    assert result["mfu"] is None  # no peak figure for a CPU, so no utilisation claimed


def test_eval_throughput(tmp_path):
    out = tmp_path / "eval_throughput.json"
    printed = _smoke("eval_throughput.py", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["items"] == 64 and result["size"] == "tiny" and result["device"] == "cpu"
    assert result["bare_items_per_s"] > 0 and result["forgegov_items_per_s"] > 0 and result["ratio"] > 0
    assert json.loads(printed) == result


def test_team_server(tmp_path):
    out = tmp_path / "team_server.json"
    printed = _smoke("team_server.py", "--out", str(out))
    result = json.loads(out.read_text())
    assert (result["clients"], result["decisions"]) == (4, 3)
    assert result["lost"] == result["duplicated"] == result["missing"] == 0
    rows = {row["name"]: row for row in result["rows"]}
    assert rows["member → server, 4 at once"]["n"] == 12 and rows["member → server, 4 at once"]["decisions_per_s"] > 0
    assert all(row["p50_ms"] > 0 for row in rows.values())
    assert result["transfer"]["upload_mib_s"] > 0 and result["transfer"]["download_mib_s"] > 0
    assert "lost 0, duplicated 0" in printed and "target (50 clients, p99 < 100 ms)" in printed


def test_reward_sandbox(tmp_path):
    out = tmp_path / "reward_sandbox.json"
    _smoke("reward_sandbox.py", "--out", str(out))
    result = json.loads(out.read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert set(rows) == {"in-process", "sandbox, 1 worker", "sandbox, 2 workers", "HTTP endpoint"}
    assert rows["in-process"]["ratio"] == 1
    assert all(row["calls_per_s"] > 0 for row in rows.values())  # and the script checked every score matched
    steps = {row["name"]: row for row in result["environment"]["rows"]}
    assert set(steps) == {"in-process", "sandbox", "sandbox, replaying"}  # and each episode stepped as in-process
    assert all(row["steps_per_s"] > 0 for row in steps.values())
    grpo = result["grpo"]
    assert grpo["shape"] == "tiny" and grpo["steps"] == 3 and all(t > 0 for t in grpo["median_step_s"].values())
