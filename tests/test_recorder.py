"""The audit recorder: an entry and its change commit together, a due tree head follows the commit, and a tree head
that cannot be made after the commit is reported as such rather than undoing, or refusing, what was committed."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest
import tomli_w
from sqlmodel import select

from forgegov.audit.log_key import LOG_KEY
from forgegov.audit.recorder import TreeHeadUnsigned, tree_head_due
from forgegov.audit.tree_heads import stored_tree_heads
from forgegov.foundation.config import CONFIG_FILE, load_workspace
from forgegov.foundation.crypto.keys import key_path
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, Decision, Identity
from forgegov.governance import actions
from forgegov.governance.identities import create_identity, unlock

from .conftest import PASSPHRASE, register_checked


def _every(ws, n: int):  # type: ignore[no-untyped-def]
    path = ws.root / CONFIG_FILE
    doc = tomllib.loads(path.read_text())
    doc["audit"]["checkpoint_every"] = n
    path.write_text(tomli_w.dumps(doc))
    return load_workspace(ws.root)


def test_a_tree_head_is_due_when_any_appended_entry_completes_a_multiple(workspace):
    ws = replace(workspace, config=replace(workspace.config, audit=replace(workspace.config.audit,
                                                                             checkpoint_every=4)))
    assert tree_head_due(ws, [3])
    assert tree_head_due(ws, [2, 3, 4])  # the multiple is in the middle of one transaction's entries
    assert not tree_head_due(ws, [4, 5, 6])
    assert not tree_head_due(ws, [])


def test_every_write_signs_the_tree_head_that_falls_due(workspace):
    ws = _every(workspace, 1)
    before = len(stored_tree_heads(ws))
    create_identity(ws, "alice", PASSPHRASE)
    assert len(stored_tree_heads(ws)) == before + 1


def test_an_identity_whose_tree_head_fails_keeps_its_key(workspace):
    # The log key is missing when the identity's tree head falls due: the identity is committed, so its private key
    # must stay (names are never reused: deleting it would lock the name out for good).
    ws = _every(workspace, 1)
    kept = LOG_KEY.path(ws).read_bytes()
    LOG_KEY.path(ws).unlink()
    with pytest.raises(TreeHeadUnsigned, match="change was recorded") as failed:
        create_identity(ws, "alice", PASSPHRASE)
    assert failed.value.exit_code == 2  # the cause's: a missing key is not tampering
    assert key_path(ws.keys_dir, "alice").exists()
    with read_session(ws.database_url) as session:
        assert session.exec(select(Identity).where(Identity.name == "alice")).one()
    LOG_KEY.path(ws).write_bytes(kept)
    assert unlock(ws, "alice", PASSPHRASE).name == "alice"


def test_a_decision_whose_tree_head_fails_is_not_logged_as_refused(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    ws = _every(people, 1)

    LOG_KEY.path(ws).unlink()
    LOG_KEY.write_new(ws)  # another key, encrypted as the real one is, where the pinned one was
    with actions.policy_engine(ws) as engine, pytest.raises(TreeHeadUnsigned) as failed:
        actions.request(ws, "claims", "alice", PASSPHRASE, engine=engine)
    assert failed.value.exit_code == 4  # a replaced log key is tampering
    with read_session(ws.database_url) as session:
        assert session.exec(select(Decision)).first() is not None
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "gate.refused")).first() is None
