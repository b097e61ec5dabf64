"""The tables that hold what differs per gate, per asset kind and per audit action cover every member, so a new gate,
kind or action cannot be added without deciding its row; and the frozen migration code still matches the live log."""

from __future__ import annotations

import hashlib
import importlib
import json

import pytest

from forgegov.audit.hashing import node_hash
from forgegov.audit.log import LEAF_VERSION, canonical_leaf, node_id
from forgegov.foundation.vocabulary import AssetKind, AuditAction, Gate, GateAction
from forgegov.governance.asset_kinds import KIND_OF_GATE, KINDS
from forgegov.governance.evidence import PROVIDERS


def test_every_gate_has_an_evidence_provider_and_one_kind():
    assert set(PROVIDERS) == set(Gate)
    assert set(KIND_OF_GATE) == set(Gate)
    gates = [gate for rules in KINDS.values() for gate in rules.gates]
    assert len(gates) == len(set(gates)), "a gate acts on one kind of asset"


def test_every_kind_has_rules():
    assert set(KINDS) == set(AssetKind)
    assert all(rules.gates for rules in KINDS.values())


@pytest.mark.parametrize("gate", list(Gate))
@pytest.mark.parametrize("action", list(GateAction))
def test_every_gate_action_is_an_audit_action(gate, action):
    assert AuditAction.of_gate(gate, action) in AuditAction


def test_every_kind_registers_under_an_audit_action():
    assert {AuditAction.registered(kind) for kind in AssetKind} <= set(AuditAction)
    with pytest.raises(ValueError):
        AuditAction("gate.dataset.approve-quietly")


def test_the_frozen_migration_matches_the_live_log():
    frozen = importlib.import_module("forgegov.foundation.store.migrations.versions.0002_merkle_audit_log")
    fields = {"v": LEAF_VERSION, "seq": 7, "time": "2026-01-01T00:00:00Z", "actor": "ålice \"q\"", "action": "x",
              "subject_digest": None, "decision_id": None, "policy_revision": None, "payload_digest": "sha256:00"}
    assert frozen.LEAF_VERSION == LEAF_VERSION
    assert frozen.canonical_leaf(fields) == canonical_leaf(fields)
    json.loads(frozen.canonical_leaf(fields))
    left, right = hashlib.sha256(b"l").digest(), hashlib.sha256(b"r").digest()
    assert frozen.node_hash(left, right) == node_hash(left, right)
    for level, index in ((0, 0), (1, 5), (20, 123456)):
        assert frozen.node_id(level, index) == node_id(level, index)
