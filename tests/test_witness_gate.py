"""The log protects itself (issue 12, attack 7): every gate decision is followed by a signed tree head that every
configured witness is given, and a gate refuses to decide on a log that a witness shows was rolled back or rewritten."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from forgegov.audit.log import node_of
from forgegov.audit.log_key import pinned_public_key
from forgegov.audit.note import NoteError, open_checkpoint
from forgegov.audit.tree_heads import witness_notes
from forgegov.foundation.config import Workspace, write_config
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.vocabulary import GateAction
from forgegov.governance import actions

from .conftest import PASSPHRASE, register_checked


@pytest.fixture
def witnessed(people, files, tmp_path):  # type: ignore[no-untyped-def]
    """The people workspace with a witness folder configured, and a dataset ready for its gate."""
    config = dataclasses.replace(people.config, audit=dataclasses.replace(people.config.audit,
                                                                          witnesses=("../witness",)))
    write_config(people.root, config)
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    return Workspace(people.root, config), people.root.parent / "witness"


def _tree_size(ws) -> int:  # type: ignore[no-untyped-def]
    with read_session(ws.database_url) as session:
        return session.connection().execute(text("SELECT count(*) FROM audit_entry")).scalar_one()


def _witnessed_size(ws, folder) -> int:  # type: ignore[no-untyped-def]
    source, note = witness_notes(folder)[-1]
    return open_checkpoint(note, ws.config.audit.origin, pinned_public_key(ws)).size


def test_every_gate_decision_is_handed_to_every_configured_witness(witnessed):
    ws, witness = witnessed
    actions.request(ws, "claims", "alice", PASSPHRASE)
    assert _witnessed_size(ws, witness) == _tree_size(ws)
    actions.answer(ws, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
    assert _witnessed_size(ws, witness) == _tree_size(ws)


def test_a_store_rolled_back_behind_its_witness_stops_the_gate(witnessed):
    ws, witness = witnessed
    before = _tree_size(ws)
    actions.request(ws, "claims", "alice", PASSPHRASE)
    held = _tree_size(ws)
    # The rollback: the store as it was before the request (a database restored from an older copy), every row and
    # entry the decision wrote gone, so that the store agrees with its own log.
    with write_transaction(ws.database_url) as session:
        for statement in ("DELETE FROM decision", "DELETE FROM gate_request",
                          "UPDATE asset SET state = 'registered' WHERE name = 'claims'",
                          f"DELETE FROM audit_entry WHERE seq >= {before}"):
            session.connection().execute(text(statement))
        for node_id in session.connection().execute(text("SELECT id FROM audit_node")).scalars().all():
            level, index = node_of(node_id)
            if (index + 1) << level > before:
                session.connection().execute(text("DELETE FROM audit_node WHERE id = :id"), {"id": node_id})
    with pytest.raises(NoteError, match=rf"has {before} entries, but witness .* holds a tree head of {held} .* "
                                        "rolled back"):
        actions.request(ws, "claims", "alice", PASSPHRASE)


def test_a_log_rewritten_under_the_witnessed_size_stops_the_gate(witnessed):
    ws, witness = witnessed
    actions.request(ws, "claims", "alice", PASSPHRASE)
    with write_transaction(ws.database_url) as session:
        session.connection().execute(text("UPDATE audit_node SET hash = :zero"), {"zero": "00" * 32})
    with pytest.raises(NoteError, match="do not hash to the root witness .* the log was rewritten"):
        actions.answer(ws, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
