"""Policy adoption is a gate (issue 12, attack 2): the policy in force decides who may change it, the bundle OPA runs is
the exact bundle that was approved, and a policy put in force by editing the store stops every gate."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile

import pytest
from sqlalchemy import text
from sqlmodel import select

from forgegov.audit.operations import verify_workspace
from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.foundation.errors import PolicyBundleError, PolicyDenied, StoreTampered, Tampered
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import AuditEntry, PolicyActivation, PolicyBundle
from forgegov.foundation.vocabulary import AssetKind, AuditAction, DecisionResult, GateAction
from forgegov.governance import actions
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.policy import DeciderMismatch, policy_in_force
from forgegov.governance.registry import label, register_asset
from forgegov.governance.review import review

from .conftest import PASSPHRASE, register_checked


def _sql(ws, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with write_transaction(ws.database_url) as session:
        session.connection().execute(text(statement), params)


def _edited_bundle(ws, tmp_path, edit, revision="2026.11.22-edited"):  # type: ignore[no-untyped-def]
    from forgegov.governance.policy import stored_policy

    with read_session(ws.database_url) as session:
        bundle, _decider = stored_policy(session, policy_in_force(session).digest)
    folder = tmp_path / f"bundle-{revision}"
    bundle.write(folder)
    data_path = folder / "data" / "data.json"
    data = json.loads(data_path.read_text())
    edit(data)
    data_path.write_text(json.dumps(data, indent=2))
    (folder / ".manifest").write_text(json.dumps({"revision": revision}))
    return folder


def _require_privacy_officer(data):  # type: ignore[no-untyped-def]
    data["gates"]["dataset"]["quorum"]["privacy-officer"] = 1


def _propose(ws, folder, actor="dave"):  # type: ignore[no-untyped-def]
    asset = register_asset(ws, AssetKind.POLICY, folder, "house-rules", actor)
    return label(asset), actions.request(ws, label(asset), actor, PASSPHRASE)


def test_a_policy_change_takes_a_proposal_and_another_owners_approval(people, files, tmp_path):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    register_checked(people, files.folder("d2", {"a.jsonl": '{"text": "y"}\n'}), "claims")
    actions.request(people, "claims@1", "alice", PASSPHRASE)
    assert actions.answer(people, "claims@1", "bob", PASSPHRASE, GateAction.APPROVE).result is DecisionResult.ALLOW

    proposal, requested = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer))
    assert requested.result is DecisionResult.PENDING
    assert requested.missing == ("1 more approval by role policy-owner (have 0 of 1)",)
    with read_session(people.database_url) as session:
        assert policy_in_force(session).revision == "2026.11.23-1"
    # What grace is asked to sign: which files change, from which revision to which (the text: `policy diff`).
    change = review(people, proposal).evidence["policy_change"]
    assert (change["in_force"]["revision"], change["proposed"]["revision"]) == ("2026.11.23-1", "2026.11.22-edited")
    assert [c["path"] for c in change["changed"]] == [".manifest", "data/data.json"]
    assert change["added"] == change["removed"] == []
    adopted = actions.answer(people, proposal, "grace", PASSPHRASE, GateAction.APPROVE)
    assert adopted.result is DecisionResult.ALLOW and adopted.policy_revision == "2026.11.23-1"

    actions.request(people, "claims@2", "alice", PASSPHRASE)
    after = actions.answer(people, "claims@2", "bob", PASSPHRASE, GateAction.APPROVE)
    assert after.result is DecisionResult.PENDING and after.policy_revision == "2026.11.22-edited"
    assert after.missing == ("1 more approval by role privacy-officer (have 0 of 1)",)
    assert actions.answer(people, "claims@2", "grace", PASSPHRASE, GateAction.APPROVE).state == "approved"

    with read_session(people.database_url) as session:
        in_force = policy_in_force(session)
        activations = list(session.exec(select(PolicyActivation).order_by(PolicyActivation.id)))
        logged = session.exec(select(AuditEntry).where(AuditEntry.action == "policy.activate")).all()
    assert in_force.decision_id == adopted.decision_id and in_force.activated_by == "grace"
    assert [a.revision for a in activations] == ["2026.11.23-1", "2026.11.22-edited"]
    assert len(logged) == 2


def test_mallory_without_a_role_cannot_propose_and_dave_cannot_approve_his_own(people, tmp_path):
    # The attack as written: `forgegov policy update --from BUNDLE --as mallory` used to put the bundle in force.
    with pytest.raises(PolicyDenied, match="policy gate denied") as denied:
        _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer), actor="mallory")
    assert "mallory cannot propose a policy" in denied.value.reasons[0]
    proposal, _pending = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer, "r2"))
    with pytest.raises(PolicyDenied) as own:
        actions.answer(people, proposal, "dave", PASSPHRASE, GateAction.APPROVE)
    assert any("dave" in reason for reason in own.value.reasons)
    with read_session(people.database_url) as session:
        assert policy_in_force(session).revision == "2026.11.23-1"


def test_a_policy_put_in_force_by_inserting_a_row_stops_every_gate(people, files, tmp_path):
    # The attack as written: a policy_activation row with a new digest and no signature.
    proposal, _pending = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer))
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with read_session(people.database_url) as session:
        digest = session.exec(select(PolicyBundle.digest)).all()
    new = next(d for d in digest if d != _in_force(people))
    _sql(people, "INSERT INTO policy_activation (record_version, digest, revision, activated_by, activated_at) "
                 "VALUES (1, :digest, 'rogue', 'dave', '2026-12-01T00:00:00Z')", digest=new)
    with pytest.raises(StoreTampered, match=r"policy in force \(policy_activation row 2\) has no matching "
                                            r"policy.activate entry"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    with pytest.raises(Tampered, match=r"policy_activation row 2 \(rogue\) has no policy.activate entry"):
        verify_workspace(people, [])


def test_rolling_the_policy_back_by_deleting_its_activation_is_refused(people, files, tmp_path):
    proposal, _pending = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer))
    actions.answer(people, proposal, "grace", PASSPHRASE, GateAction.APPROVE)
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _sql(people, "DELETE FROM policy_activation WHERE revision = '2026.11.22-edited'")
    with pytest.raises(StoreTampered, match="policy in force"):
        actions.request(people, "claims", "alice", PASSPHRASE)


def test_a_policy_activate_entry_without_a_gate_decision_is_refused(people, files, tmp_path):
    # An insider holding the log key appends a well-formed activation that no policy owner signed.
    proposal, _pending = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer))
    with read_session(people.database_url) as session:
        new = next(d for d in session.exec(select(PolicyBundle.digest)).all() if d != policy_in_force(session).digest)
    with audited_transaction(people) as tx:
        tx.session.add(PolicyActivation(digest=new, revision="2026.11.22-edited", activated_by="dave",
                                        activated_at="2026-12-01T00:00:00Z"))
        tx.append(EntryDraft(actor="dave", action=AuditAction.POLICY_ACTIVATE, subject_digest=new,
                             payload={"digest": new, "revision": "2026.11.22-edited", "decision_id": None}))
    with pytest.raises(StoreTampered, match="names no policy-gate decision"):
        actions.request(people, proposal, "dave", PASSPHRASE)


def _in_force(ws) -> str:  # type: ignore[no-untyped-def]
    with read_session(ws.database_url) as session:
        return policy_in_force(session).digest


def _replace_data(archive: bytes, data: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as source, \
            tarfile.open(fileobj=raw, mode="w") as target:
        for member in source:
            content = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "data/data.json":
                content, member.size = data, len(data)
            target.addfile(member, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def test_a_bundle_edited_in_the_store_stops_every_gate(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with read_session(people.database_url) as session:
        row = session.get(PolicyBundle, policy_in_force(session).digest)
    edited = _replace_data(row.archive, json.dumps({"roles": {"alice": ["data-steward"]}, "gates": {}}).encode())
    with write_transaction(people.database_url) as session:
        stored = session.get(PolicyBundle, row.digest)
        stored.archive = edited
        session.add(stored)
    with pytest.raises(StoreTampered, match="no longer hashes to that digest"):
        actions.request(people, "claims", "alice", PASSPHRASE)


def test_an_opa_wrapper_given_as_forgegov_opa_does_not_decide(people, files, tmp_path, monkeypatch):
    # The attack as written: FORGEGOV_OPA points at a wrapper that runs the real OPA with another bundle.
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    wrapper = tmp_path / "opa-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {find_opa()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FORGEGOV_OPA", str(wrapper))
    with pytest.raises(DeciderMismatch, match="is not the build policy 2026.11.23-1 pins"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    with read_session(people.database_url) as session:
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "gate.dataset.request")).first() is None


def test_opa_reads_the_bundle_and_runs_the_binary_from_sealed_files(people):
    # Nothing can change between the digest check and OPA loading: OPA's bundle and executable are sealed memfds,
    # which refuse writes even from their owner.
    with actions.policy_engine(people) as engine:
        pid = engine.opa_pid
        assert pid is not None
        exe = os.readlink(f"/proc/{pid}/exe")
        assert exe.startswith("/memfd:opa")
        sealed = [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:bundle")]
        assert sealed
        for path in sealed:
            with pytest.raises(PermissionError):
                with open(path, "r+b") as handle:
                    handle.write(b"rogue")


def test_a_bundle_failing_opa_check_is_not_registered(people, tmp_path):
    folder = _edited_bundle(people, tmp_path, lambda data: None)
    (folder / "dataset" / "policy.rego").write_text("package forgegov.gates.dataset\n\ndeny contains 1 if {\n")
    with pytest.raises(PolicyBundleError, match="opa check --strict"):
        register_asset(people, AssetKind.POLICY, folder, "house-rules", "dave")
    with read_session(people.database_url) as session:
        assert len(session.exec(select(PolicyBundle)).all()) == 1
