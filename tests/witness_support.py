"""A real C2SP tlog-witness for tests: litewitness (filippo.io/torchwood, BSD-3-Clause), built from its Go module by
scripts/install.sh, its key in a dedicated ssh-agent as its README prescribes, serving on 127.0.0.1. Not a mock:
forgegov speaks the protocol to an implementation written by others, and checks the cosignatures it returns."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forgegov.foundation.verifier_key import COSIGNATURE, ED25519, verifier_key
from tests.server_support import free_port

LITEWITNESS_VERSION = "v0.6.1"
NAME = "witness.example/forgegov-test"


def litewitness_dir() -> Path | None:
    configured = os.environ.get("FORGEGOV_LITEWITNESS_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = base / "forgegov" / f"litewitness-{LITEWITNESS_VERSION}"
    return built if (built / "litewitness").is_file() and (built / "witnessctl").is_file() else None


@dataclass(frozen=True)
class Witness:
    url: str
    key: str  # its verifier key (cosignature/v1), as its operator would publish it
    db: Path
    ctl: Path

    def add_log(self, origin: str, log_public_key: Ed25519PublicKey) -> None:
        """The witness operator's step: this log is known, under this key (witnessctl, while it runs)."""
        for args in (["add-log", "-db", str(self.db), "-origin", origin],
                     ["add-key", "-db", str(self.db), "-origin", origin,
                      "-key", verifier_key(origin, ED25519, log_public_key)]):
            subprocess.run([str(self.ctl), *args], check=True, capture_output=True, timeout=30)


@contextmanager
def litewitness(folder: Path) -> Iterator[Witness]:
    built = litewitness_dir()
    if built is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but litewitness is not built (scripts/install.sh builds it)")
        pytest.skip("build litewitness first: bash scripts/install.sh")
    if shutil.which("ssh-agent") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but ssh-agent is missing (scripts/install.sh installs openssh-client)")
        pytest.skip("litewitness takes its key from an ssh-agent: install openssh-client")
    folder.mkdir(parents=True)
    key, sock = folder / "witness_key", folder / "agent.sock"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "witness", "-f", str(key)], check=True,
                   timeout=30)
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    log = open(folder / "litewitness.log", "ab")
    server: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: sock.exists(), "ssh-agent")
        subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True, timeout=30)
        fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"], check=True,
                                     capture_output=True, text=True, timeout=30).stdout.split()[1]
        blob = base64.b64decode((folder / "witness_key.pub").read_text().split()[1])
        public = Ed25519PublicKey.from_public_bytes(blob[-32:])
        port, db = free_port(), folder / "litewitness.db"
        server = subprocess.Popen([str(built / "litewitness"), "-name", NAME, "-db", str(db), "-ssh-agent", str(sock),
                                   "-key", fingerprint, "-listen", f"127.0.0.1:{port}"], stdout=log,
                                  stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"

        def answering() -> bool:
            if server is not None and server.poll() is not None:
                raise RuntimeError(f"litewitness exited ({server.returncode}): see {folder / 'litewitness.log'}")
            try:
                httpx.get(url, timeout=1)
                return True
            except httpx.HTTPError:
                return False

        _wait(answering, "litewitness")
        yield Witness(url, verifier_key(NAME, COSIGNATURE, public), db, built / "witnessctl")
    finally:
        for process in (server, agent):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
        log.close()


def _wait(ready, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within 30 s")
        time.sleep(0.05)
