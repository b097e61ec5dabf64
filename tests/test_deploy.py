"""The commands the shipped systemd units run (`deploy/systemd/`), as systemd runs them, start the team server (its
keys unlocked from the credential file systemd hands it) and back its workspace up into a backup that restores with
its log verifying. `test_server.py::test_the_systemd_units_verify` has systemd's own checker read the units."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from forgegov.app.backup import restore
from forgegov.foundation.config import Workspace
from tests.conftest import SQLITE_ONLY
from tests.server_support import free_port

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"


def _installed(folder: Path, workspace: Workspace, port: int, backups: Path) -> list[Path]:
    """The units as an operator installs them, with this machine's paths: the virtual environment's forgegov, this
    test's workspace, a free port and a backups folder."""
    forgegov = Path(sys.executable).parent / "forgegov"
    folder.mkdir()
    installed = []
    for unit in sorted(UNITS.iterdir()):
        text = (unit.read_text(encoding="utf-8").replace("/opt/forgegov/.venv/bin/forgegov", str(forgegov))
                .replace("/srv/forgegov", str(workspace.root)).replace("--port 8900", f"--port {port}")
                .replace("/var/backups/forgegov", str(backups)))
        (folder / unit.name).write_text(text, encoding="utf-8")
        installed.append(folder / unit.name)
    return installed


def _exec_start(unit: Path) -> list[str]:
    (line,) = [line for line in unit.read_text(encoding="utf-8").splitlines() if line.startswith("ExecStart=")]
    return [word.replace("%%", "%") for word in shlex.split(line.removeprefix("ExecStart="))]


@SQLITE_ONLY
def test_the_units_commands_serve_and_back_up_the_workspace(workspace: Workspace, tmp_path: Path) -> None:
    port, backups = free_port(), tmp_path / "backups"
    backups.mkdir()
    units = {unit.name: unit for unit in _installed(tmp_path / "units", workspace, port, backups)}
    credential = tmp_path / "service-passphrase"  # what systemd hands the server in %d/service-passphrase
    credential.write_text(os.environ["FORGEGOV_SERVICE_PASSPHRASE"], encoding="utf-8")
    credential.chmod(0o400)  # as systemd hands it over: the server refuses one others can read
    env = {key: value for key, value in os.environ.items() if key != "FORGEGOV_SERVICE_PASSPHRASE"}
    env["FORGEGOV_SERVICE_PASSPHRASE_FILE"] = str(credential)

    server = subprocess.Popen(_exec_start(units["forgegov-server.service"]), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, trust = time.monotonic() + 60, None
        while trust is None and time.monotonic() < deadline and server.poll() is None:
            try:
                trust = httpx.get(f"http://127.0.0.1:{port}/v1/trust", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert trust is not None, server.stderr.read() if server.poll() is not None else "no answer in 60 s"
        assert trust["origin"] == workspace.config.audit.origin
    finally:
        server.send_signal(signal.SIGTERM)  # what systemd sends on stop (KillMode=mixed: the server first)
        assert server.wait(timeout=30) is not None

    subprocess.run(_exec_start(units["forgegov-backup.service"]), cwd=tmp_path, env=env, check=True, timeout=300,
                   capture_output=True)
    (made,) = list(backups.iterdir())
    assert re.fullmatch(r"\d{8}T\d{6}Z", made.name)
    restored, report = restore(made, tmp_path / "restored", workspace.config.audit.log_public_key, None)
    assert report.entries > 0 and restored.root == tmp_path / "restored"


@SQLITE_ONLY
def test_a_server_whose_keys_do_not_unlock_does_not_start(workspace: Workspace, tmp_path: Path) -> None:
    """A credential file others can read is refused at start, with the reason, not as a 500 on every call."""
    credential = tmp_path / "service-passphrase"
    credential.write_text(os.environ["FORGEGOV_SERVICE_PASSPHRASE"], encoding="utf-8")
    credential.chmod(0o644)
    env = {key: value for key, value in os.environ.items() if key != "FORGEGOV_SERVICE_PASSPHRASE"}
    env["FORGEGOV_SERVICE_PASSPHRASE_FILE"] = str(credential)
    unit = UNITS / "forgegov-server.service"
    command = [word.replace("/opt/forgegov/.venv/bin/forgegov", str(Path(sys.executable).parent / "forgegov"))
               .replace("/srv/forgegov", str(workspace.root)) for word in _exec_start(unit)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "can be read by others" in done.stderr
