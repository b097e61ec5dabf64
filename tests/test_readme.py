"""README examples are run, not just read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


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


def _run_blocks(tmp_path: Path, *headings: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """The bash blocks under `headings`, in order, in one strict shell with the venv's forgegov first on PATH."""
    script = "".join(_block_after(heading) for heading in headings)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FORGEGOV_HOME", None)
    env.pop("FORGEGOV_DATABASE_URL", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_quickstart_and_training_runs_sections_run(tmp_path):
    """The quickstart, then the training walk-through after it, in the same shell and workspace (one run of the
    quickstart: the walk-through continues from it)."""
    done = _run_blocks(tmp_path, "## Quickstart", "## Training runs", timeout=600)
    assert "refused with exit code 3" in done.stdout
    assert "alice requested this approval and cannot approve it" in done.stderr
    assert "state approved" in done.stdout
    assert "audit log verified" in done.stdout
    assert "still required: 1 more approval by role ml-lead" in done.stdout
    assert "completed (attempt 1)" in done.stdout and "candidate checkpoint/parts-cpt@1" in done.stdout
    assert "realised share" in done.stdout
    assert "provenance verified for checkpoint/parts-cpt@1" in done.stdout
