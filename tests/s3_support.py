"""A real S3-compatible object store for tests: the Versity S3 Gateway (Apache-2.0), built from its Go module by
scripts/install.sh, serving a temporary folder on 127.0.0.1. Not a mock: boto3 speaks S3 to it over HTTP."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server_support import free_port

VERSITYGW_VERSION = "v1.8.0"
ACCESS, SECRET = "forgegov-test", "forgegov-test-secret"


def versitygw_binary() -> Path | None:
    configured = os.environ.get("FORGEGOV_VERSITYGW")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = base / "forgegov" / f"versitygw-{VERSITYGW_VERSION}" / "versitygw"
    return built if built.is_file() else None


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    root: Path  # the gateway's folder: bucket/key is a file under it

    def object_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key


@contextmanager
def object_store(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    binary = versitygw_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the Versity S3 gateway is not built (scripts/install.sh builds it)")
        pytest.skip("build the S3 gateway first: bash scripts/install.sh")
    folder.mkdir(parents=True)
    port = free_port()
    log = open(folder.parent / f"versitygw-{port}.log", "ab")
    process = subprocess.Popen([str(binary), "--access", ACCESS, "--secret", SECRET, "--port", f"127.0.0.1:{port}",
                                "posix", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"versitygw exited ({process.returncode})")
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("versitygw did not start within 30 s") from None
                time.sleep(0.05)
        yield ObjectStore(endpoint, folder)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def make_bucket(store: ObjectStore, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=store.endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
