"""`forgegov demo` runs end to end; the installed package exposes nothing outside the `forgegov` namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.long(3)
def test_demo_runs_end_to_end(tmp_path):
    """The demo's whole flow on the tiny family: the default (small) family takes six minutes on two cores, too long
    for CI's budget; what it measured is in docs/evaluation.md. Every decision below follows what was measured,
    whatever the family."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGEGOV_")}
    done = subprocess.run(
        [sys.executable, "-c", "from forgegov.app.cli.main import main; main()", "demo", "--preset", "tiny",
         "--dir", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600,
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
    # Two candidates from the same post-trained base, both approved at the run gate; each goes as far as its
    # measured evaluation lets it, and a denial names the metrics that failed.
    required = ("harmful_refusal", "benign_compliance", "instruction_following", "general_retention")
    outcomes = {}
    for name in ("claims-cpt", "claims-sft"):
        candidate = f"checkpoint/{name}@1"
        assert results[f"alice starts run {name}"] == "pending"
        trained = next(s for s in report["steps"] if s["step"] == f"alice starts the approved run {name}")
        assert trained["result"] == "trained" and trained["candidate"] == candidate
        assert [s["role"] for s in trained["realised"]["sources"]] == ["proprietary", "general", "replay"]
        # Shares are of tokens, held to the plan.
        assert all(abs(s["realised_share"] - s["planned_share"]) < 0.02 for s in trained["realised"]["sources"])
        assert results[f"provenance of {candidate} verifies"] == "verified"
        evaluated = next(s for s in report["steps"] if s["step"] == f"alice evaluates {candidate} against its base")
        metrics = evaluated["metrics"]
        assert all(metrics[m]["noise_floor"].get("flips", 0) == 0 for m in required)
        passes = all(metrics[m]["verdict"] == "non-inferior" for m in required)
        staging = next(s for s in report["steps"] if s["step"] == f"alice asks to promote {candidate} to staging")
        assert staging["result"] == ("pending" if passes else "deny")
        if not passes:
            failing = [m for m in required if metrics[m]["verdict"] != "non-inferior"]
            assert all(any(m in reason for reason in staging["reasons"]) for m in failing)
        outcomes[name] = {m: metrics[m]["verdict"] for m in required}
    # The tiny family has ten instruction items, fewer than the policy's margin needs: the gate says so rather
    # than passing either candidate on them.
    assert outcomes["claims-cpt"]["instruction_following"] == outcomes["claims-sft"]["instruction_following"] \
        == "insufficient-evidence"
    promoted = [s for s in report["steps"] if s.get("release") == "production"]
    assert bool(promoted) == all(v == "non-inferior" for v in outcomes["claims-sft"].values())
    if promoted:
        assert promoted[-1]["subject"] == "checkpoint/claims-sft@1"
        assert results["erin approves a second time"] == "deny"
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
