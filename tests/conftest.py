"""Shared fixtures. Every store-touching test runs on SQLite and on PostgreSQL.

PostgreSQL comes from FORGEGOV_TEST_POSTGRES_URL (`scripts/postgres.sh start` prints one). Without it the PostgreSQL
half is skipped on a developer machine, but fails under CI=true: CI must exercise both stores.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, make_url, text
from sqlmodel import select

from forgegov.app.workspace import init_workspace
from forgegov.foundation.config import StoreConfig, Workspace, load_workspace, write_config
from forgegov.foundation.crypto import keys as keys_module
from forgegov.foundation.crypto.keys import write_key_file
from forgegov.foundation.store.db import dispose_engines, read_session
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import Classification, DatasetKind
from forgegov.governance import policy as policy_module
from forgegov.governance import replay as replay_module
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.identities import create_identity, unlock
from forgegov.governance.opa.supervisor import LocalOpa

PASSPHRASE = "correct horse battery staple"
# Service keys of test workspaces (and of the CLI processes tests start, which inherit this) are encrypted under this,
# so that no test writes the user's own service passphrase file; test_service_keys.py exercises that file.
os.environ.setdefault("FORGEGOV_SERVICE_PASSPHRASE", "test service passphrase")
# For a test whose subject does not depend on the store (a member's checks, files on disk): it runs once, on SQLite,
# instead of setting up PostgreSQL only to skip.
SQLITE_ONLY = pytest.mark.parametrize("store_url", [None], ids=["sqlite"])
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "mallory")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TEXT_DATA = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: pytest-xdist hands out tests in this order, and a long one started last keeps the run
    going minutes after every other test has finished."""
    def minutes(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return 0.0 if marker is None else float(marker.args[0]) if marker.args else 1.0

    items.sort(key=lambda item: -minutes(item))


def _postgres_base_url() -> str | None:
    url = os.environ.get("FORGEGOV_TEST_POSTGRES_URL")
    if not url and os.environ.get("CI") == "true":
        pytest.fail("CI=true but FORGEGOV_TEST_POSTGRES_URL is not set: the PostgreSQL half must run in CI")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None means the embedded default (SQLite in the workspace); otherwise a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        dispose_engines()
        return
    base = _postgres_base_url()
    if base is None:
        pytest.skip("set FORGEGOV_TEST_POSTGRES_URL (scripts/postgres.sh start) to run on PostgreSQL")
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def workspace(tmp_path: Path, store_url: str | None, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """A fresh workspace. Once the test is done, every decision it recorded is replayed with the real OPA under the
    policy recorded with it and must agree (issue 12: replay runs on every workspace of the tests), unless the test
    left the log or the store tampered (its own assertions say what must be found then) or is marked
    `replay_objects` (it made up entries that only replay can object to)."""
    ws = _fresh_workspace(tmp_path / "ws", store_url)
    yield ws
    if request.node.get_closest_marker("replay_objects") is None:
        _replays_as_recorded(ws)


@functools.cache
def _template(postgres_base: str | None) -> tuple[Path, str, str | None]:
    """One workspace made by `init_workspace` in this test process for each store, and, on PostgreSQL, its schema
    as SQL (`pg_dump --inserts`)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="forgegov-template-")) / "ws"
    if postgres_base is None:
        init_workspace(folder)
        dispose_engines()  # closed, so that its file is complete when copied
        return folder, "", None
    schema = "tmpl_" + uuid.uuid4().hex[:16]
    admin = create_engine(postgres_base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    init_workspace(folder, store_url=f"{postgres_base}?options=-csearch_path%3D{schema}")
    dispose_engines()
    url = make_url(postgres_base)
    dumped = subprocess.run(
        [_pg_tool("pg_dump"), "--inserts", "--no-owner", "--no-privileges", f"--schema={schema}",
         "--host", url.host or "127.0.0.1", "--port", str(url.port or 5432), "--username", url.username or "postgres",
         url.database or ""], capture_output=True, text=True, check=True,
        env={**os.environ, "PGPASSWORD": url.password or ""})
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    # The schema's objects only: the schema itself is made by the `store_url` fixture, the dump's session settings
    # (search_path emptied) would outlive it on the connection, and psql's meta-commands are not SQL.
    sql = "\n".join(line for line in dumped.stdout.splitlines()
                    if not line.startswith(("CREATE SCHEMA", "ALTER SCHEMA", "SET ", "SELECT pg_catalog.set_config", "\\")))
    return folder, sql, schema


def _pg_tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed")
    return str(found)


def _fresh_workspace(directory: Path, store_url: str | None) -> Workspace:
    """A copy of a workspace just made by `init_workspace` (its folder, and its store's tables and rows): what
    `init_workspace` would have made, short of a new log key and origin, in a few milliseconds instead of ~0.5 s
    (migrations, two scrypt derivations). Tests of initialising a workspace call `init_workspace` themselves."""
    postgres_base = store_url.split("?", 1)[0] if store_url else None
    template, sql, schema = _template(postgres_base)
    shutil.copytree(template, directory)
    if store_url is None:
        return load_workspace(directory)
    target = store_url.rsplit("search_path%3D", 1)[1]
    engine = create_engine(store_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(sql.replace(f"{schema}.", f"{target}."))
    engine.dispose()
    config = load_workspace(directory).config
    write_config(directory, replace(config, store=StoreConfig(store_url)))
    return load_workspace(directory)


def _replays_as_recorded(ws: Workspace) -> None:
    from forgegov.audit.operations import verify_workspace
    from forgegov.foundation.errors import Tampered
    from forgegov.governance.replay import replay_decisions

    try:
        verify_workspace(ws)
    except Tampered:
        return
    report = replay_decisions(ws)
    assert report.differing == [], report.to_dict()


# scrypt is what keeps a key at rest expensive to guess, not what these tests exercise: in this process each distinct
# (passphrase, salt, cost) is derived once, for real, and its result reused. Key files made for one test (below) are
# then opened by every other at no cost. Processes the tests start (the CLI) derive as users' processes do.
keys_module._derive = functools.lru_cache(maxsize=1024)(keys_module._derive)


class _WarmOpa:
    """What the gates and replay start per call in a user's process (`opa run --server` from sealed copies of the
    pinned binary and the bundle, health-checked) is started here once per binary and bundle content, and lent to
    every later engine of this test process: the decisions are the same OPA's on the same bytes, and starting OPA
    (~0.3 s) per gate call was a third of the suite's time. Tests of starting and stopping OPA use `LocalOpa`
    itself, and the CLI processes the tests start run OPA as users' processes do."""

    _started: dict[tuple[str, str], LocalOpa] = {}

    def __init__(self, binary: Path, bundle: Path, log_path: Path, pass_fds: tuple[int, ...] = ()) -> None:
        self._key = (str(binary), hashlib.sha256(Path(bundle).read_bytes()).hexdigest())
        self._args = (binary, bundle, log_path, pass_fds)
        self._local: LocalOpa | None = None

    def start(self) -> None:
        local = self._started.get(self._key)
        if local is None or local.pid is None or local._process is None or local._process.poll() is not None:
            if len(self._started) >= 8:  # a test adopting many policies: stop the oldest
                self._started.pop(next(iter(self._started))).stop()
            local = LocalOpa(*self._args)
            local.start()
            self._started[self._key] = local
        self._local = local

    def __enter__(self) -> _WarmOpa:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._local = None  # the OPA stays up for the next engine; it dies with this process (PR_SET_PDEATHSIG)

    @property
    def url(self) -> str:
        if self._local is None:
            raise RuntimeError("a lent OPA used outside its start and stop")
        return self._local.url

    @property
    def pid(self) -> int | None:
        return self._local.pid if self._local is not None else None


policy_module.LocalOpa = _WarmOpa  # type: ignore[misc]
replay_module.LocalOpa = _WarmOpa  # type: ignore[misc]


@pytest.fixture(scope="session")
def identity_key_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One encrypted key file per person, made once per test process."""
    folder = tmp_path_factory.mktemp("identity-keys")
    for name in PEOPLE:
        write_key_file(folder, keys_module.encrypt_private_key(name, Ed25519PrivateKey.generate(), PASSPHRASE))
    return folder


@pytest.fixture
def people(workspace: Workspace, identity_key_files: Path) -> Workspace:
    """The workspace with every identity the shipped policy data names, all sharing one test passphrase. Their keys
    are copied in from `identity_key_files`, and `create_identity` registers the key it finds (as it does after an
    interrupted create)."""
    workspace.keys_dir.mkdir(parents=True, exist_ok=True)
    for name in PEOPLE:
        target = keys_module.key_path(workspace.keys_dir, name)
        shutil.copyfile(keys_module.key_path(identity_key_files, name), target)
        target.chmod(0o600)
        create_identity(workspace, name, PASSPHRASE)
    return workspace


@dataclass
class Files:
    root: Path

    def folder(self, name: str, files: dict[str, bytes | str]) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        for rel, content in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        return folder


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "inputs")


def register_checked(workspace: Workspace, path: Path, name: str, owner: str = "alice",
                     spec: DatasetSpec = TEXT_DATA):
    """Register a dataset with its data-quality check, in one step, as `forgegov dataset register` does."""
    from forgegov.governance.evidence.data_quality import register_and_check

    asset, _check = register_and_check(workspace, path, name, owner, spec,
                                       signer=unlock(workspace, owner, PASSPHRASE))
    return asset


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The reference family's `tiny` preset, built once per test process (seed 3, one thread: byte-identical
    weights) for every module that only reads it; a test that changes a file works on a copy."""
    from forgegov.training.reference.build import build_reference

    out = tmp_path_factory.mktemp("reference") / "family"
    record = build_reference(out, "tiny", seed=3, threads=1)
    return out, record


def tiny_checkpoint_files(seed: int = 0) -> dict[str, bytes | str]:
    """The smallest folder a checkpoint may be: a config naming its model type and one real safetensors file.
    `seed` changes the weights, and so the digest."""
    import json

    import numpy as np
    from safetensors.numpy import save

    weights = save({"model.embed_tokens.weight": np.arange(16, dtype=np.float32).reshape(4, 4) + seed})
    return {"config.json": json.dumps({"model_type": "llama"}), "model.safetensors": weights}


def audit_entries(workspace: Workspace, action: str) -> list[AuditEntry]:
    """The log's entries of one action, oldest first."""
    with read_session(workspace.database_url) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))
