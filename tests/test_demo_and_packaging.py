"""`forgegov demo` runs end to end; the installed package exposes nothing outside the `forgegov` namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGOV_")}
    done = subprocess.run(
        [sys.executable, "-c", "from forgegov.app.cli.main import main; main()", "demo", "--dir",
         str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    results = {step["step"]: step["result"] for step in report["steps"]}
    assert results["alice approves her own request"] == "deny"
    assert results["mallory (revoked) tries to act"] == "refused"
    tickets = [s for s in report["steps"] if s.get("subject") == "dataset/support-tickets@1"]
    assert [s["result"] for s in tickets] == ["pending", "pending", "allow"]
    assert "1 more approval by role privacy-officer (have 0 of 1)" in tickets[1]["missing"]
    assert results["grace (privacy officer) approves without a justification"] == "deny"
    assert tickets[-1]["state"] == "approved"
    assert results["alice loads dataset/claims@1"] == "loaded"
    assert results["alice loads support-tickets after a word was edited"] == "refused"
    assert report["audit_entries"] > 20
    assert results["dave (ML lead) approves it for customisation"] == "allow"
    assert results["alice starts a run with 90 % proprietary data"] == "deny"
    assert results["alice starts run claims-cpt"] == "pending"
    trained = next(s for s in report["steps"] if s["step"] == "alice starts the approved run")
    assert trained["result"] == "trained" and trained["candidate"] == "checkpoint/claims-cpt@1"
    assert trained["realised"]["total_tokens"] > 0
    assert [s["role"] for s in trained["realised"]["sources"]] == ["proprietary", "general", "replay"]
    assert results["provenance of the candidate verifies"] == "verified"
    # The candidate goes as far as its measured evaluation lets it, and a denial names the metrics.
    evaluated = next(s for s in report["steps"] if s["step"] == "alice evaluates the candidate against its base")
    required = ("harmful_refusal", "benign_compliance", "instruction_following", "general_retention")
    passes = all(evaluated["metrics"][m]["verdict"] == "non-inferior" for m in required)
    staging = next(s for s in report["steps"] if s["step"] == "alice asks to promote the candidate to staging")
    assert staging["result"] == ("pending" if passes else "deny")
    if passes:
        assert results["erin approves a second time"] == "deny"
        assert results["frank (release manager) approves: quorum of two met"] == "allow"
        final = [s for s in report["steps"] if s.get("release")][-1]
        assert final["release"] == "production" and final["subject"] == "checkpoint/claims-cpt@1"
    else:
        failing = [m for m in required if evaluated["metrics"][m]["verdict"] != "non-inferior"]
        assert all(any(m in reason for reason in staging["reasons"]) for m in failing)
        assert "frank (release manager) approves: quorum of two met" not in results
    assert results["alice (no policy-owner role) proposes a policy"] == "deny"
    assert results["dave approves his own proposal"] == "deny"
    assert results["grace (policy owner) approves: the new policy is in force"] == "allow"
    replay = next(s for s in report["steps"] if s["step"] == "every decision replayed with the pinned OPA")
    assert replay["result"] == "agree" and replay["replayed"] > 20 and replay["differing"] == []


def test_wheel_has_only_the_forgegov_namespace(tmp_path):
    # From a clean copy: a build/ left in the checkout by an earlier build would ship its stale modules.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "bench", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("forgegov-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("forgegov-")}
    assert tops == {"forgegov"}
    for required in ("forgegov/policies/.manifest", "forgegov/policies/data/data.json",
                     "forgegov/foundation/store/migrations/script.py.mako",
                     "forgegov/governance/datasets/suites/pretraining-text.json"):
        assert required in names
    # Exactly the modules and policies of every layer ship: packages are discovered, so a new subfolder cannot be
    # forgotten, and nothing else (a stale module) rides along.
    layers = ("foundation", "audit", "governance", "training", "evaluation", "app", "policies")
    expected = {f"forgegov/{path.relative_to(ROOT).as_posix()}" for layer in layers
                for path in (ROOT / layer).rglob("*") if path.suffix in (".py", ".rego")
                and "__pycache__" not in path.parts}
    assert {n for n in names if n.endswith((".py", ".rego"))} == expected
    assert not any(n.startswith("forgegov/tests") for n in names)
