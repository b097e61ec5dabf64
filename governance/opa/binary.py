"""The pinned OPA binary: where it is looked for, and how it is built from its Go module."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from forgegov.foundation.errors import OpaNotInstalled

OPA_VERSION = "v1.22.2"
OPA_MODULE = "github.com/open-policy-agent/opa"
ENV_OPA_BINARY = "FORGEGOV_OPA"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "forgegov" / "opa" / OPA_VERSION


def find_opa(configured: str = "") -> Path:
    """Configured path, then $FORGEGOV_OPA, then the pinned build in the cache, then `opa` on PATH."""
    for candidate in (configured, os.environ.get(ENV_OPA_BINARY, "")):
        if candidate:
            path = Path(candidate)
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise OpaNotInstalled(f"OPA binary {candidate} does not exist or is not executable")
    pinned = cache_dir() / "opa"
    if pinned.is_file():
        return pinned
    on_path = shutil.which("opa")
    if on_path:
        return Path(on_path)
    raise OpaNotInstalled(
        f"no OPA binary found (looked in {pinned} and on PATH)",
        hint=f"build the pinned one with `forgegov opa install` (needs Go), or set {ENV_OPA_BINARY}",
    )


def opa_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("Version:"):
            return "v" + line.split(":", 1)[1].strip()
    raise OpaNotInstalled(f"{binary} did not report a version: {out.stderr.strip()}")


def install_pinned(go: str = "go") -> Path:
    """`go install` the pinned OPA into the cache (a static build); reuse it when it is already there."""
    target = cache_dir()
    binary = target / "opa"
    if binary.is_file() and opa_version(binary) == OPA_VERSION:
        return binary
    if shutil.which(go) is None:
        raise OpaNotInstalled("Go is not installed; it is needed to build OPA from its module",
                              hint="install Go or point FORGEGOV_OPA at an OPA binary")
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(target), "GOFLAGS": "-mod=mod"}
    done = subprocess.run([go, "install", f"{OPA_MODULE}@{OPA_VERSION}"], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise OpaNotInstalled(f"building OPA {OPA_VERSION} failed:\n{done.stderr.strip()}")
    return binary
