"""Workspaces: created whole or not at all, found the documented way, configured with typed, validated settings."""

from __future__ import annotations

import hashlib

import pytest

from forgegov.app.workspace import init_workspace
from forgegov.foundation.config import CONFIG_FILE, OpaMode, load_workspace
from forgegov.foundation.errors import AlreadyExists, ConfigError, WorkspaceError
from forgegov.foundation.store.db import read_session
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.policy import policy_in_force, stored_policy


def test_init_creates_layout_and_is_found(tmp_path, monkeypatch):
    ws = init_workspace(tmp_path / "ws")
    for folder in ("keys", "artifacts", "logs"):
        assert (ws.root / folder).is_dir()
    assert (ws.root / "forgegov.db").is_file()
    # The policy lives in the store, not in a folder anyone could edit between a check and OPA reading it.
    assert not (ws.root / "policy").exists()
    with read_session(ws.database_url) as session:
        bundle, decider = stored_policy(session, policy_in_force(session).digest)
    assert ".manifest" in bundle.files and "lib/gate.rego" in bundle.files
    assert not any(name.endswith(".py") for name in bundle.files)
    assert decider.sha256 == hashlib.sha256(find_opa().read_bytes()).hexdigest()
    assert load_workspace(ws.root).root == ws.root
    monkeypatch.chdir(ws.root / "keys")
    monkeypatch.delenv("FORGEGOV_HOME", raising=False)
    assert load_workspace().root == ws.root
    monkeypatch.setenv("FORGEGOV_HOME", str(ws.root))
    monkeypatch.chdir(tmp_path)
    assert load_workspace().root == ws.root


def test_init_refuses_existing_and_non_empty(tmp_path):
    init_workspace(tmp_path / "ws")
    with pytest.raises(AlreadyExists):
        init_workspace(tmp_path / "ws")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="not an empty folder"):
        init_workspace(tmp_path / "busy")


def test_failed_init_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError):
        init_workspace(tmp_path / "ws", store_url="mysql://nope")
    with pytest.raises(ConfigError):
        init_workspace(tmp_path / "ws2", opa_url="not a url")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_workspace_names_the_next_step(tmp_path, monkeypatch):
    monkeypatch.delenv("FORGEGOV_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceError) as missing:
        load_workspace()
    assert "forgegov init" in (missing.value.hint or "")


def test_config_validation(tmp_path):
    ws = init_workspace(tmp_path / "ws", opa_url="http://127.0.0.1:8181")
    assert ws.config.opa.mode is OpaMode.URL
    config = ws.root / CONFIG_FILE
    config.write_text(config.read_text() + "\n[surprise]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown sections"):
        load_workspace(ws.root)
    config.write_text('version = 1\n[opa]\nmode = "sideways"\n')
    with pytest.raises(ConfigError):
        load_workspace(ws.root)
    config.write_text("version = [\n")
    with pytest.raises(ConfigError):
        load_workspace(ws.root)


def test_a_config_nested_too_deeply_is_a_config_error_not_a_crash(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    (ws.root / CONFIG_FILE).write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="nests too deeply"):
        load_workspace(ws.root)


def test_a_store_that_holds_a_log_is_not_initialised_again(tmp_path, store_url):
    """The attack (issue 15): bob runs `init` against the team's store; his workspace signs its own log key into the
    shared log, and from the next checkpoint on `audit verify` fails for everyone. The second init is refused and
    writes nothing, not even its folder."""
    from sqlmodel import func, select

    from forgegov.foundation.store.models import AuditEntry

    url = store_url or f"sqlite:///{tmp_path / 'shared.sqlite'}"
    first = init_workspace(tmp_path / "alice", store_url=url)
    with read_session(first.database_url) as session:
        before = session.exec(select(func.count()).select_from(AuditEntry)).one()
    with pytest.raises(AlreadyExists, match="already holds the audit log of another workspace"):
        init_workspace(tmp_path / "bob", store_url=url)
    assert not (tmp_path / "bob").exists()
    with read_session(first.database_url) as session:
        assert session.exec(select(func.count()).select_from(AuditEntry)).one() == before
