"""Policy owners change decisions by changing the bundle, and only through a checked, signed, logged adoption."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlmodel import select

from forgegov.foundation.errors import PolicyBundleError, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, PolicyActivation
from forgegov.foundation.vocabulary import DecisionResult, GateAction
from forgegov.governance import actions
from forgegov.governance.identities import unlock
from forgegov.governance.policy import bundle_info
from forgegov.governance.policy_adoption import adopt_bundle

from .conftest import PASSPHRASE, register_checked


def _edited_bundle(ws, tmp_path, edit):
    bundle = tmp_path / "reviewed-bundle"
    shutil.copytree(ws.policy_dir, bundle)
    data_path = bundle / "data" / "data.json"
    data = json.loads(data_path.read_text())
    edit(data)
    data_path.write_text(json.dumps(data, indent=2))
    (bundle / ".manifest").write_text(json.dumps({"revision": "2026.11.22-edited"}))
    return bundle


def test_a_policy_edit_changes_the_decision(people, files, tmp_path):
    path = files.folder("d", {"a.jsonl": '{"text": "x"}\n'})
    register_checked(people, path, "claims")
    register_checked(people, files.folder("d2", {"a.jsonl": '{"text": "y"}\n'}), "claims")

    actions.request(people, "claims@1", "alice", PASSPHRASE)
    before = actions.answer(people, "claims@1", "bob", PASSPHRASE, GateAction.APPROVE)
    assert before.result is DecisionResult.ALLOW

    def require_privacy_officer(data):
        data["gates"]["dataset"]["quorum"]["privacy-officer"] = 1

    adopt_bundle(people, _edited_bundle(people, tmp_path, require_privacy_officer), unlock(people, "dave", PASSPHRASE))
    actions.request(people, "claims@2", "alice", PASSPHRASE)
    after = actions.answer(people, "claims@2", "bob", PASSPHRASE, GateAction.APPROVE)
    assert after.result is DecisionResult.PENDING
    assert after.missing == ("1 more approval by role privacy-officer (have 0 of 1)",)
    assert after.policy_revision == "2026.11.22-edited"
    assert actions.answer(people, "claims@2", "grace", PASSPHRASE, GateAction.APPROVE).state == "approved"

    with read_session(people.database_url) as session:
        activations = list(session.exec(select(PolicyActivation).order_by(PolicyActivation.id)))
        logged = session.exec(select(AuditEntry).where(AuditEntry.action == "policy.activate")).all()
    assert [a.revision for a in activations] == ["2026.11.23-1", "2026.11.22-edited"]
    assert activations[-1].activated_by == "dave" and activations[-1].signature
    assert len(logged) == 2


def test_bundle_failing_opa_check_is_not_adopted(people, tmp_path):
    bundle = _edited_bundle(people, tmp_path, lambda data: None)
    (bundle / "dataset" / "policy.rego").write_text("package forgegov.gates.dataset\n\ndeny contains 1 if {\n")
    pinned = bundle_info(people.policy_dir)
    with pytest.raises(PolicyBundleError, match="opa check --strict"):
        adopt_bundle(people, bundle, unlock(people, "dave", PASSPHRASE))
    assert bundle_info(people.policy_dir) == pinned
    assert not any(p.name.startswith(".policy") for p in people.root.iterdir())


def test_adopting_the_same_bundle_again_is_refused(people):
    with pytest.raises(StateConflict, match="already the adopted policy"):
        adopt_bundle(people, people.policy_dir, unlock(people, "dave", PASSPHRASE))
