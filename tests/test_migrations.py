"""Schema migrations: the models and the migrations agree, and the interim audit log upgrades into the Merkle log."""

from __future__ import annotations

import hashlib
import json

import rfc8785
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlmodel import SQLModel

from forgegov.audit.log import node_of
from forgegov.audit.verify import PROJECTED, verify_log
from forgegov.foundation.store.db import dispose_engines, engine_for, upgrade
from forgegov.foundation.store.models import AuditEntry, AuditNode


def test_models_match_migrations(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    with engine_for(url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    dispose_engines()


def test_interim_audit_entries_upgrade_and_verify(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0001")
    with engine_for(url).begin() as connection:
        for seq in range(11):
            payload = {"n": seq, "note": "interim"}
            payload_text = rfc8785.dumps(payload).decode()
            fields = {"v": 1, "seq": seq, "time": f"2026-11-22T20:00:{seq:02d}.000000Z", "actor": "alice",
                      "action": "test.event", "subject_digest": None, "decision_id": None, "policy_revision": None,
                      "payload_digest": "sha256:" + hashlib.sha256(payload_text.encode()).hexdigest()}
            leaf_hash = hashlib.sha256(b"\x00" + rfc8785.dumps(fields)).hexdigest()
            connection.execute(text(
                "INSERT INTO audit_entry (seq, record_version, time, actor, action, subject_digest, decision_id, "
                "policy_revision, payload, payload_digest, leaf_hash) VALUES (:seq, 1, :time, :actor, :action, NULL, "
                "NULL, NULL, :payload, :payload_digest, :leaf_hash)"),
                {**fields, "payload": payload_text, "leaf_hash": leaf_hash})
    upgrade(url)
    entry, node = AuditEntry.__table__, AuditNode.__table__
    with engine_for(url).connect() as connection:
        rows = connection.execute(select(entry.c.seq, entry.c.leaf, entry.c.payload, entry.c.leaf_hash,
                                         *(entry.c[name] for name in PROJECTED)).order_by(entry.c.seq))
        nodes = [(*node_of(i), h) for i, h in connection.execute(select(node.c.id, node.c.hash))]
        report = verify_log("test", Ed25519PrivateKey.generate().public_key(), rows, nodes, [], [])
        first_leaf = connection.execute(text("SELECT leaf FROM audit_entry WHERE seq = 0")).scalar_one()
    # 11 leaves close 5 + 2 + 1 perfect subtrees above the leaves.
    assert report.entries == 11 and report.nodes == 8
    assert json.loads(first_leaf)["seq"] == 0
    dispose_engines()
