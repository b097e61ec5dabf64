"""README examples are run, not just read."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"


def _block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found, f"no bash block under {heading}"
    return found.group(1)


def test_setup_section_has_exactly_two_commands():
    first = README.read_text(encoding="utf-8").split("\n## ", 2)[1]
    blocks = re.findall(r"```bash\n(.*?)```", first, re.S)
    assert [b.strip() for b in blocks] == [
        "bash scripts/install.sh && .venv/bin/forgegov demo", "bash scripts/test.sh"]


def _doc_blocks(name: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (DOCS / name).read_text(encoding="utf-8"), re.S)


def _run_blocks(tmp_path: Path, *headings: str, timeout: int, then: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The bash blocks under `headings`, then the scripts `then`, in order, in one strict shell with the venv's
    forgegov first on PATH."""
    script = "".join(_block_after(heading) for heading in headings) + "".join(then)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FORGEGOV_SUITES": str(README.parent / "evaluation" / "suites")}
    env.pop("FORGEGOV_HOME", None)
    env.pop("FORGEGOV_DATABASE_URL", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.long(3)
def test_quickstart_training_and_the_three_role_pages_run(tmp_path):
    """The quickstart, the training walk-through after it, then the days of the ML engineer, the approvers and the
    policy owner (docs/), interleaved as the people hand work to each other, in one shell and workspace."""
    engineer, approver, owner = _doc_blocks("ml-engineer.md"), _doc_blocks("approver.md"), _doc_blocks("policy-owner.md")
    assert (len(engineer), len(approver), len(owner)) == (3, 3, 1)
    day = (engineer[0], approver[0], engineer[1], approver[1], engineer[2], approver[2], owner[0])
    done = _run_blocks(tmp_path, "## Quickstart", "## Training runs", timeout=900, then=day)
    assert "refused with exit code 3" in done.stdout
    assert "alice requested this approval and cannot approve it" in done.stderr
    assert "state approved" in done.stdout
    assert "audit log verified" in done.stdout
    assert "still required: 1 more approval by role ml-lead" in done.stdout
    assert "completed (attempt 1)" in done.stdout and "candidate checkpoint/parts-cpt@1" in done.stdout
    assert "realised share" in done.stdout
    assert "provenance verified for checkpoint/parts-cpt@1" in done.stdout
    # The ML engineer's day: a typo costs a dry run, nothing else; the lineage of the new candidate; a denial as JSON.
    assert "the run gate would deny it (exit 3)" in done.stdout and "no registered dataset matches 'ref-sft-chta'" in done.stdout
    assert "dry run: run/parts-cpt-long@1 (not registered): a run-gate request by alice would be recorded, pending" \
        in done.stdout
    assert "produced by run/parts-cpt-long@1" in done.stdout and "promotion denied (exit 3)" in done.stdout
    denial = json.loads((tmp_path / "promotion.json").read_text())
    assert denial["result"] == "deny" and denial["subject"] == "checkpoint/parts-cpt-long@1" and denial["reasons"]
    # The approvers' day: what waits for them, what they sign, and the reviewer's answers.
    assert "run/parts-cpt-long@1 (run) requested by alice" in done.stdout
    assert "signed for evidence digest sha256:" in done.stdout and "privacy-officer: grace" in done.stdout
    assert "requested by alice (ml-engineer)" in done.stdout and "approve by dave (ml-lead, policy-owner)" in done.stdout
    # The policy owner's day: the change is reviewed as a diff, refused to its proposer, adopted by another owner.
    assert '+    "heidi": ["data-steward"],' in done.stdout and "a proposer cannot adopt his own change (exit 3)" in done.stdout
    assert "2026.12.02-1" in done.stdout.split("policy/policy")[-1]
