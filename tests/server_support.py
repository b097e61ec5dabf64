"""A team server on 127.0.0.1 for tests: `forgegov server` in its own process, as members meet it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto import keys as keys_module
from tests.conftest import PASSPHRASE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(workspace: Workspace, port: int | None = None, *, rate: float = 200.0) -> Iterator[str]:
    port = port or free_port()
    log = open(workspace.logs_dir / f"server-{port}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-c", "from forgegov.app.cli.main import main; main()", "-w", str(workspace.root), "server", "--port", str(port),
         "--rate", str(rate)], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}): "
                                   f"{(workspace.logs_dir / f'server-{port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/trust", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def give_key(member: Workspace, name: str, key_files: Path) -> None:
    """NAME's key on NAME's own machine (the same key the server bound to the name)."""
    member.keys_dir.mkdir(parents=True, exist_ok=True)
    target = keys_module.key_path(member.keys_dir, name)
    shutil.copyfile(keys_module.key_path(key_files, name), target)
    target.chmod(0o600)


__all__ = ["PASSPHRASE", "free_port", "give_key", "running_server"]
