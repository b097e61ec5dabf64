"""A local `opa run --server` that forgegov starts, health-checks and always stops.

The server listens on loopback only, on a port chosen at start. The child is tied to its parent's life
(PR_SET_PDEATHSIG on Linux, plus atexit), so neither its pid nor its port outlives the forgegov process.
OPA's own decision log (with the decision ids forgegov records) goes to the workspace's logs folder.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from forgegov.foundation.errors import DecisionUnavailable, PolicyBundleError

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 15.0


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalOpa:
    """Use as a context manager; `url` is valid between start and stop."""

    def __init__(self, binary: Path, bundle: Path, log_path: Path, pass_fds: tuple[int, ...] = ()) -> None:
        self.binary = binary
        self.bundle = bundle
        self.log_path = log_path
        self.pass_fds = pass_fds
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise DecisionUnavailable("the local OPA server is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> LocalOpa:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._process is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A port picked free can be taken before OPA binds it; try a few before giving up.
        for _attempt in range(3):
            port = _free_loopback_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                process = subprocess.Popen(
                    [str(self.binary), "run", "--server", "--addr", f"127.0.0.1:{port}",
                     "--bundle", str(self.bundle), "--skip-version-check", "--log-level", "error",
                     "--set", "decision_logs.console=true"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent,
                    pass_fds=self.pass_fds,
                )
            if self._wait_ready(process, port):
                self._process, self.port = process, port
                atexit.register(self.stop)
                return
            output = self._log_since(log_offset)
            if "address already in use" not in output:
                raise PolicyBundleError(
                    f"OPA refused to start with the policy bundle at {self.bundle}:\n{output.strip()}",
                    hint="fix the policy (`forgegov policy check`) and try again",
                )
        raise DecisionUnavailable("could not find a free loopback port for OPA after 3 tries")

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        from opa_client.opa import OpaClient

        deadline = time.monotonic() + _START_TIMEOUT_S
        with OpaClient(host="127.0.0.1", port=port, timeout=0.5, retries=0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return False
                if client.check_health({"bundles": True}):
                    return True
                time.sleep(0.01)
        process.kill()
        process.wait()
        return False

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        process, self._process, self.port = self._process, None, None
        if process is None:
            return
        atexit.unregister(self.stop)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
