"""Tampering with the audit log is caught, and the first bad entry is named."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, text, update

from forgegov.audit.hashing import node_hash
from forgegov.audit.log import EntryDraft, append, canonical_leaf, leaf_hash_of, node_id
from forgegov.audit.log_key import LOG_KEY, load_log_key
from forgegov.audit.note import Checkpoint, sign_checkpoint
from forgegov.audit.operations import verify_workspace
from forgegov.audit.tree_heads import hand_to_witness, sign_tree_head
from forgegov.audit.verify import AuditIntegrityError
from forgegov.foundation.errors import ServiceKeyMismatch
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import AuditEntry, AuditNode, AuditTreeHead
from forgegov.foundation.vocabulary import GateAction
from forgegov.governance import actions

from .conftest import PASSPHRASE, register_checked

ENTRY, NODE, CHECKPOINT = AuditEntry.__table__, AuditNode.__table__, AuditTreeHead.__table__


@pytest.fixture
def log(people, files, tmp_path):
    """A workspace whose log holds registrations and gate decisions, checkpointed to a witness folder."""
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    actions.request(people, "claims", "alice", PASSPHRASE)
    actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
    witness = tmp_path / "witness"
    hand_to_witness(people, sign_tree_head(people), witness)
    report = verify_workspace(people, [witness])
    # Signed statements: the check, the request, the approval, and the request again as the approval carries it.
    assert report.entries >= 12 and report.witnessed == 1 and report.statements == 4
    return people, witness


def _seq_of(ws, action: str) -> int:
    with read_session(ws.database_url) as session:
        return session.connection().execute(select(ENTRY.c.seq).where(ENTRY.c.action == action)).scalar_one()


def _fails(ws, witness, needle: str, seq: int | None = None) -> AuditIntegrityError:
    with pytest.raises(AuditIntegrityError) as caught:
        verify_workspace(ws, [witness])
    assert needle in caught.value.message, caught.value.message
    if seq is not None:
        assert caught.value.seq == seq
        assert f"entry {seq}" in caught.value.message
    return caught.value


def _sql(ws, statement) -> None:
    with write_transaction(ws.database_url) as session:
        session.connection().execute(statement)


def _rewrite_everything(ws, edit_leaf=None) -> None:
    """What an attacker with the database *and* the log key can do: recompute leaves, nodes and checkpoints."""
    key = load_log_key(ws)
    with write_transaction(ws.database_url) as session:
        c = session.connection()
        rows = c.execute(select(ENTRY.c.seq, ENTRY.c.leaf, ENTRY.c.payload).order_by(ENTRY.c.seq)).all()
        leaves = []
        for seq, leaf_text, payload in rows:
            leaf = json.loads(leaf_text)
            if payload is not None:
                leaf["payload_digest"] = "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
            if edit_leaf:
                edit_leaf(leaf)
            raw = canonical_leaf(leaf)
            leaves.append(leaf_hash_of(raw))
            c.execute(update(ENTRY).where(ENTRY.c.seq == seq).values(
                leaf=raw.decode(), leaf_hash=leaves[-1].hex(), actor=leaf["actor"],
                payload_digest=leaf["payload_digest"]))
        c.execute(delete(NODE))
        level, height = leaves, 0
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            height += 1
            if level:
                c.execute(insert(NODE), [{"id": node_id(height, i), "hash": h.hex()} for i, h in enumerate(level)])
    from forgegov.audit.log import root_at

    with write_transaction(ws.database_url) as session:
        c = session.connection()
        for cid, size in c.execute(select(CHECKPOINT.c.id, CHECKPOINT.c.size)).all():
            root = root_at(session, size)
            note = sign_checkpoint(Checkpoint(key.origin, size, root), key.origin, key.private_key)
            c.execute(update(CHECKPOINT).where(CHECKPOINT.c.id == cid).values(note=note, root=root.hex()))


def test_edited_payload(log):
    ws, witness = log
    seq = _seq_of(ws, "gate.dataset.approve")
    _sql(ws, text("UPDATE audit_entry SET payload = replace(payload, '\"allow\"', '\"deny\"') WHERE seq = :s")
         .bindparams(s=seq))
    _fails(ws, witness, "payload does not match the leaf's payload digest", seq)


def test_edited_leaf_field(log):
    ws, witness = log
    seq = _seq_of(ws, "gate.dataset.approve")
    _sql(ws, text("UPDATE audit_entry SET leaf = replace(leaf, '\"bob\"', '\"dave\"') WHERE seq = :s").bindparams(s=seq))
    _fails(ws, witness, "leaf bytes do not match the stored leaf hash", seq)


def test_edited_query_column(log):
    ws, witness = log
    seq = _seq_of(ws, "gate.dataset.approve")
    _sql(ws, update(ENTRY).where(ENTRY.c.seq == seq).values(actor="dave"))
    _fails(ws, witness, "column actor says 'dave'", seq)


def test_edited_leaf_with_recomputed_leaf_hash(log):
    ws, witness = log
    # An early entry, so that a stored subtree node covers it (the newest leaves may be covered by none yet).
    seq = _seq_of(ws, "dataset.register")
    with read_session(ws.database_url) as session:
        leaf = json.loads(session.connection().execute(select(ENTRY.c.leaf).where(ENTRY.c.seq == seq)).scalar_one())
    leaf["actor"] = "dave"
    raw = canonical_leaf(leaf)
    _sql(ws, update(ENTRY).where(ENTRY.c.seq == seq).values(leaf=raw.decode(), leaf_hash=leaf_hash_of(raw).hex(),
                                                             actor="dave"))
    _fails(ws, witness, "does not match those entries")


def test_deleted_row(log):
    ws, witness = log
    _sql(ws, delete(ENTRY).where(ENTRY.c.seq == 4))
    _fails(ws, witness, "entry 4 is missing", 4)


def test_swapped_rows(log):
    ws, witness = log
    with read_session(ws.database_url) as session:
        a, b = session.connection().execute(select(ENTRY).where(ENTRY.c.seq.in_([5, 6])).order_by(ENTRY.c.seq)).all()
    columns = [c for c in ENTRY.c.keys() if c != "seq"]
    _sql(ws, update(ENTRY).where(ENTRY.c.seq == 5).values(**{c: getattr(b, c) for c in columns}))
    _sql(ws, update(ENTRY).where(ENTRY.c.seq == 6).values(**{c: getattr(a, c) for c in columns}))
    _fails(ws, witness, "leaf says it is entry 6 (rows swapped or moved)", 5)


def test_truncated_tail_caught_by_witness(log):
    ws, witness = log
    with read_session(ws.database_url) as session:
        size = session.connection().execute(select(ENTRY.c.seq).order_by(ENTRY.c.seq.desc())).first()[0] + 1
    keep = size - 3
    _sql(ws, delete(ENTRY).where(ENTRY.c.seq >= keep))
    _sql(ws, delete(CHECKPOINT))
    _rewrite_everything(ws)
    # The truncated entries approved the dataset: its row now says more than the log does.
    with pytest.raises(AuditIntegrityError, match="state is 'approved', the log .* says 'registered'"):
        verify_workspace(ws)
    _sql(ws, text("UPDATE asset SET state = 'registered'"))
    with pytest.raises(AuditIntegrityError, match="decision row .* has no audit entry that recorded it"):
        verify_workspace(ws)
    for table in ("approval", "gate_request", "decision", "dataset_check"):
        _sql(ws, text(f"DELETE FROM {table}"))
    verify_workspace(ws)  # without the witness, a thorough truncation (rows made to agree) is invisible
    _fails(ws, witness, f"covers {size} entries but the log has only {keep}")


@pytest.mark.replay_objects
def test_rewritten_history_caught_by_witness(log):
    ws, witness = log

    def blame_dave(leaf):
        if leaf["actor"] == "bob":
            leaf["actor"] = "dave"

    _rewrite_everything(ws, blame_dave)
    verify_workspace(ws)
    _fails(ws, witness, "does not match the log's tree at that size: the log was rewritten")


def test_replaced_log_key(log):
    ws, witness = log
    LOG_KEY.path(ws).unlink()
    LOG_KEY.write_new(ws)  # another key, encrypted as the real one is, where the pinned one was
    with pytest.raises(ServiceKeyMismatch):
        sign_tree_head(ws)
    forged_key = Ed25519PrivateKey.generate()
    with write_transaction(ws.database_url) as session:
        c = session.connection()
        for cid, size, root in c.execute(select(CHECKPOINT.c.id, CHECKPOINT.c.size, CHECKPOINT.c.root)).all():
            note = sign_checkpoint(Checkpoint(ws.config.audit.origin, size, bytes.fromhex(root)),
                                   ws.config.audit.origin, forged_key)
            c.execute(update(CHECKPOINT).where(CHECKPOINT.c.id == cid).values(note=note))
    _fails(ws, witness, "stored checkpoint: checkpoint is not signed by the log key")


def test_forged_approval_signature(log):
    ws, witness = log
    seq = _seq_of(ws, "gate.dataset.approve")
    with read_session(ws.database_url) as session:
        payload = json.loads(session.connection().execute(
            select(ENTRY.c.payload).where(ENTRY.c.seq == seq)).scalar_one())
    payload["signature"] = payload["signature"][:-4] + ("AAA=" if payload["signature"][-4:] != "AAA=" else "BBB=")
    from forgegov.foundation.canonical import canonical_bytes

    _sql(ws, update(ENTRY).where(ENTRY.c.seq == seq).values(payload=canonical_bytes(payload).decode()))
    _rewrite_everything(ws)
    _fails(ws, witness, "the signed statement by bob does not verify (forged or altered)", seq)


def test_replayed_approval(log):
    ws, witness = log
    seq = _seq_of(ws, "gate.dataset.approve")
    with read_session(ws.database_url) as session:
        row = session.connection().execute(select(ENTRY).where(ENTRY.c.seq == seq)).one()
    with write_transaction(ws.database_url) as session:
        replayed = append(session, EntryDraft(actor=row.actor, action=row.action, payload=json.loads(row.payload),
                                              subject_digest=row.subject_digest))
    _fails(ws, witness, f"statement nonce already used by entry {seq} (replayed approval)", replayed.seq)


def test_checkpoint_signed_by_unknown_key(log):
    ws, witness = log
    (note_path,) = (witness / "checkpoints").glob("*.note")
    body = note_path.read_text().split("\n\n")[0] + "\n"
    stranger = Ed25519PrivateKey.generate()
    lines = body.split("\n")
    forged = sign_checkpoint(Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2])),
                             ws.config.audit.origin, stranger)
    note_path.write_text(forged)
    _fails(ws, witness, "witnessed checkpoint")
    _fails(ws, witness, "is not signed by the log key")
