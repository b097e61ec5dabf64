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


def test_the_check_constraints_hold_every_kind_and_gate_after_0009(tmp_path):
    """Autogenerate does not compare CHECK contents: the enum values the store accepts are checked here, on a store
    upgraded from 0008 with an asset already in it."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from forgegov.foundation.vocabulary import AssetKind, Gate

    url = f"sqlite:///{tmp_path / 'm.db'}"
    row = ("INSERT INTO asset (kind, name, version, digest, owner, state, manifest, source_path, registered_by, "
           "registered_at, record_version) VALUES (:kind, :name, 1, :digest, 'alice', 'registered', '{}', '/x', "
           "'alice', '2026-12-02T00:00:00.000000Z', 1)")
    upgrade(url, "0008")
    with engine_for(url).begin() as connection:
        connection.execute(text(row), {"kind": "dataset", "name": "before", "digest": "sha256:" + "0" * 64})
    with pytest.raises(IntegrityError), engine_for(url).begin() as connection:
        connection.execute(text(row), {"kind": "suite", "name": "early", "digest": "sha256:" + "1" * 64})
    upgrade(url)
    with engine_for(url).begin() as connection:
        for i, kind in enumerate(AssetKind):
            connection.execute(text(row), {"kind": kind.value, "name": f"k{i}", "digest": f"sha256:{i + 2:064x}"})
        names = {r[0] for r in connection.execute(text("SELECT name FROM asset"))}
        sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'decision'")).scalar_one()
    assert "before" in names and len(names) == len(AssetKind) + 1
    assert all(f"'{gate.value}'" in sql for gate in Gate)
    dispose_engines()
