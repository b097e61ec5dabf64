"""Identities and keys: encrypted at rest, bound to their name, refused when wrong, revoked for good."""

from __future__ import annotations

import json

import pytest

from forgegov.foundation.crypto.keys import key_path
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    KeyUnavailable,
    PolicyDenied,
    ReplayedApproval,
    RevokedIdentity,
    WrongPassphrase,
)
from forgegov.foundation.store.db import read_session
from forgegov.governance import actions
from forgegov.governance.identities import create_identity, get_identity, list_identities, unlock

from .conftest import PASSPHRASE, audit_entries


def test_create_unlock_and_list(workspace):
    identity = create_identity(workspace, "alice", PASSPHRASE)
    signer = unlock(workspace, "alice", PASSPHRASE)
    assert signer.key_id == identity.key_id and len(identity.key_id) == 64
    assert [i.name for i in list_identities(workspace)] == ["alice"]
    path = key_path(workspace.keys_dir, "alice")
    assert path.stat().st_mode & 0o777 == 0o600
    stored = path.read_text()
    assert "PRIVATE" not in stored and json.loads(stored)["kdf"]["name"] == "scrypt"


def test_wrong_passphrase(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    with pytest.raises(WrongPassphrase):
        unlock(workspace, "alice", "not the passphrase")


def test_missing_key_file(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    key_path(workspace.keys_dir, "alice").unlink()
    with pytest.raises(KeyUnavailable, match="no private key"):
        unlock(workspace, "alice", PASSPHRASE)


def test_key_file_swapped_onto_another_identity(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    create_identity(workspace, "bob", PASSPHRASE)
    key_path(workspace.keys_dir, "bob").write_text(key_path(workspace.keys_dir, "alice").read_text())
    with pytest.raises(KeyUnavailable, match="registered with"):
        unlock(workspace, "bob", PASSPHRASE)


def test_renamed_key_file_fails_authentication(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    doc = json.loads(key_path(workspace.keys_dir, "alice").read_text())
    doc["name"] = "bob"
    from forgegov.foundation.crypto.keys import KeyFile, decrypt_private_key

    with pytest.raises(WrongPassphrase):
        decrypt_private_key(KeyFile.from_json(json.dumps(doc)), PASSPHRASE)


def test_duplicate_and_invalid_names(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    with pytest.raises(AlreadyExists):
        create_identity(workspace, "alice", PASSPHRASE)
    with pytest.raises(BadInput):
        create_identity(workspace, "Alice Smith", PASSPHRASE)
    with pytest.raises(KeyUnavailable, match="at least 8"):
        create_identity(workspace, "bob", "short")
    assert [i.name for i in list_identities(workspace)] == ["alice"]
    assert not key_path(workspace.keys_dir, "bob").exists()


def test_revoked_identity_cannot_sign_and_name_is_never_reused(workspace):
    create_identity(workspace, "alice", PASSPHRASE)
    create_identity(workspace, "bob", PASSPHRASE)
    actions.revoke(workspace, "alice", "laptop lost", "alice", PASSPHRASE)  # anyone may revoke their own key
    with read_session(workspace.database_url) as session:
        revoked = get_identity(session, "alice")
    assert revoked.revoked_at and revoked.revoke_reason == "laptop lost" and revoked.revoked_by == "alice"
    with pytest.raises(RevokedIdentity):
        unlock(workspace, "alice", PASSPHRASE)
    with pytest.raises(RevokedIdentity):
        actions.revoke(workspace, "alice", "again", "alice", PASSPHRASE)
    key_path(workspace.keys_dir, "alice").unlink()
    with pytest.raises(AlreadyExists):
        create_identity(workspace, "alice", PASSPHRASE)
    with pytest.raises(BadInput, match="reason"):
        actions.revoke(workspace, "nobody", " ", "bob", PASSPHRASE)


def test_a_revocation_is_a_signed_act_the_policy_decides(people):
    # The attack as written: `identity revoke --by` took any name; now the act is signed by its actor, and mallory
    # (no role) may not revoke dave. The refusal is logged with her signed statement.
    with pytest.raises(PolicyDenied) as denied:
        actions.revoke(people, "dave", "takeover", "mallory", PASSPHRASE)
    assert denied.value.reasons == ["mallory may not identity.revoke: only a holder of role policy-owner may, or the "
                                    "identity itself; ask one of them"]
    [refusal] = audit_entries(people, "admin.denied")
    assert json.loads(refusal.payload)["statement"]["signer"] == "mallory"
    with read_session(people.database_url) as session:
        assert get_identity(session, "dave").revoked_at is None
    outcome = actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    [entry] = audit_entries(people, "identity.revoke")
    payload = json.loads(entry.payload)
    assert entry.seq == outcome.audit_seq and payload["statement"]["signer"] == "dave"
    assert payload["decision"]["allow"] is True and payload["decision"]["opa_decision_id"]


def test_a_signed_administrative_act_is_used_once_even_when_denied(people):
    from forgegov.governance.admin import AdminAct, make_admin_statement, submit_admin

    statement = make_admin_statement(unlock(people, "mallory", PASSPHRASE), AdminAct.REVOKE, {"name": "dave"}, "x")
    with actions.policy_engine(people) as engine:
        with pytest.raises(PolicyDenied):
            submit_admin(people, engine, statement)
        with pytest.raises(ReplayedApproval, match="already used"):
            submit_admin(people, engine, statement)


def test_a_key_left_by_an_interrupted_create_is_resumed_not_a_block(workspace):
    # `kill -9` between writing the key file and committing the identity: the name must not be locked out, and the
    # orphan key is used only by whoever can open it.
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from forgegov.foundation.config import load_workspace\n"
        "from forgegov.governance import identities\n"
        "def die(*args, **kwargs):\n"
        "    os._exit(137)\n"
        "identities.audited_transaction = die\n"
        "identities.create_identity(load_workspace(Path(sys.argv[1])), 'carol', sys.argv[2])\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(workspace.root), PASSPHRASE], capture_output=True)
    assert done.returncode == 137 and key_path(workspace.keys_dir, "carol").exists()
    assert list_identities(workspace) == []
    with pytest.raises(AlreadyExists, match="does not open with this passphrase"):
        create_identity(workspace, "carol", "another long passphrase")
    orphan = json.loads(key_path(workspace.keys_dir, "carol").read_text())["key_id"]
    assert create_identity(workspace, "carol", PASSPHRASE).key_id == orphan
    assert unlock(workspace, "carol", PASSPHRASE).key_id == orphan
