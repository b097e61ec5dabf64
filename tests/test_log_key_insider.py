"""An insider who holds the log key (it sits in the workspace) can append entries that hash, chain and are signed into
tree heads like any other. They cannot sign for anyone else. Each attack below appends or erases with the log key
and is refused by the gate, or named by `audit verify` / `audit verify --replay`, because the decision, check or
erasure it fakes does not rest on the signatures it would need (issue 12, found by the review at the end of stop 19).
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from sqlmodel import select

from forgegov.audit.operations import verify_workspace
from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.audit.verify import AuditIntegrityError
from forgegov.foundation.canonical import canonical_bytes, sha256_digest
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.errors import StoreTampered
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import Asset, AuditEntry, Decision
from forgegov.foundation.vocabulary import AssetKind, AssetState, AuditAction, DecisionResult, Gate, GateAction
from forgegov.governance import actions
from forgegov.governance.admin import AdminAct, make_admin_statement
from forgegov.governance.identities import unlock
from forgegov.governance.policy import AdoptionNotProven, policy_in_force
from forgegov.governance.policy_adoption import put_in_force
from forgegov.governance.registry import label, register_asset
from forgegov.governance.replay import replay_decisions
from forgegov.governance.statements import SignedStatement, make_statement

from .conftest import PASSPHRASE, audit_entries, register_checked
from .test_policy_update import _edited_bundle, _require_privacy_officer

PII = '{"text": "write to jane.doe@example.com, SSN 123-45-6789"}\n'


def _sql(ws, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with write_transaction(ws.database_url) as session:
        session.connection().execute(text(statement), params)


def _forge_adoption(ws, tmp_path, approvals=()):  # type: ignore[no-untyped-def]
    """dave (a policy owner) proposes a bundle, then, holding the log key, appends an "allow" decision on his own
    signed request, with `approvals` claimed in its input, and the activation it would have caused."""
    asset = register_asset(ws, AssetKind.POLICY, _edited_bundle(ws, tmp_path, _require_privacy_officer), "rules",
                           "dave")
    requested = actions.request(ws, label(asset), "dave", PASSPHRASE)
    with audited_transaction(ws) as tx:
        real = tx.session.get(Decision, requested.decision_id)
        entry = tx.session.exec(select(AuditEntry).where(AuditEntry.seq == requested.audit_seq)).one()
        document = json.loads(real.input)
        document["approvals"] = list(approvals)
        forged_input = canonical_bytes(document)
        decision = Decision(**{**real.model_dump(), "id": str(uuid.uuid4()), "result": DecisionResult.ALLOW,
                               "input": forged_input.decode(), "input_digest": sha256_digest(forged_input),
                               "nonce": uuid.uuid4().hex})
        tx.session.add(decision)
        subject = tx.session.get(Asset, asset.id)
        subject.state = AssetState.APPROVED
        tx.session.add(subject)
        payload = json.loads(entry.payload)
        tx.append(EntryDraft(actor="dave", action=AuditAction.GATE_POLICY_REQUEST, subject_digest=asset.digest,
                             decision_id=decision.id, policy_revision=entry.policy_revision,
                             payload={**payload, "result": "allow", "missing": [], "state": "approved",
                                      "input_digest": decision.input_digest}))
        put_in_force(tx, subject, decision, SignedStatement(payload["statement"], payload["signature"]))
    return asset


def test_a_policy_adopted_by_an_appended_allow_on_the_owners_own_request_does_not_decide(people, files, tmp_path):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_adoption(people, tmp_path)
    with read_session(people.database_url) as session:
        assert policy_in_force(session).revision == "2026.11.22-edited"  # every signature in it verifies
    with pytest.raises(AdoptionNotProven, match=r"policy 2026.11.23-1, in force when it was decided, does not allow "
                                                r"it \(1 more approval by role policy-owner"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    # The log's own verifier sees the request statement spent twice.
    with pytest.raises(AuditIntegrityError, match="statement nonce already used"):
        verify_workspace(people)


def test_an_adoption_claiming_an_approval_nobody_signed_does_not_decide(people, files, tmp_path):
    grace = {"approver": "grace", "key_id": "k", "verdict": "approve", "signed_at": now_rfc3339(),
             "key_revoked": False, "new": True, "justification": ""}
    _forge_adoption(people, tmp_path, approvals=[grace])
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with pytest.raises(StoreTampered, match=r"the input of its decision is not what its signers signed \(approvals\)"):
        actions.request(people, "claims", "alice", PASSPHRASE)


def test_a_decision_row_deleted_to_hide_it_is_found_by_verify_and_replay(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    _sql(people, "DELETE FROM decision WHERE id = :id", id=requested.decision_id)
    with pytest.raises(StoreTampered, match=f"audit entry {requested.audit_seq} .* records decision "
                                            f"{requested.decision_id}, which the store no longer holds"):
        replay_decisions(people)
    with pytest.raises(AuditIntegrityError, match=f"audit entry {requested.audit_seq} records decision "
                                                  f"{requested.decision_id}, which has no row"):
        verify_workspace(people)


def test_a_check_deleted_to_hide_its_pii_finding_stops_the_gate(people, files):
    from forgegov.governance.evidence.data_quality import check_dataset

    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    check_dataset(people, "claims", signer=unlock(people, "bob", PASSPHRASE))
    [first, _second] = audit_entries(people, "dataset.check")
    _sql(people, "DELETE FROM dataset_check WHERE audit_seq = :seq", seq=first.seq)
    with pytest.raises(StoreTampered, match=f"audit entry {first.seq} records data-quality check .* whose stored "
                                            "result is gone"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    with pytest.raises(AuditIntegrityError, match=f"audit entry {first.seq} records dataset_check"):
        verify_workspace(people)


def _erase(ws, seq: int, actor: str, *, allow: bool = True, signed: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Blank entry `seq`'s payload and append an audit.redact entry for it, with the log key alone: the act signed
    by `actor` (who may have no right to it) and a decision claiming `allow`."""
    with read_session(ws.database_url) as session:
        target = session.get(AuditEntry, seq)
        action, payload_digest = target.action, json.loads(target.leaf)["payload_digest"]
        in_force = policy_in_force(session)
    statement = make_admin_statement(unlock(ws, actor, PASSPHRASE), AdminAct.REDACT, {"seq": seq}, "gdpr")
    document = {"version": 1, "act": "audit.redact", "now": now_rfc3339(),
                "actor": {"name": actor, "key_id": statement.payload["key_id"]},
                "target": {"seq": seq, "action": action}, "reason": "gdpr"}
    decision = {"allow": allow, "reasons": [], "opa_decision_id": "forged", "policy_digest": in_force.digest,
                "policy_revision": in_force.revision, "input": document}
    _sql(ws, "UPDATE audit_entry SET payload = NULL WHERE seq = :seq", seq=seq)
    with audited_transaction(ws) as tx:
        tx.append(EntryDraft(actor=actor, action=AuditAction.AUDIT_REDACT, payload={
            "seq": seq, "payload_digest": payload_digest, "reason": "gdpr",
            **({"statement": statement.payload, "signature": statement.signature} if signed else {}),
            "decision": decision}))


def test_an_erased_revocation_is_not_a_lawful_redaction(people):
    revoked = actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    _sql(people, "UPDATE identity SET revoked_at = NULL WHERE name = 'mallory'")
    _erase(people, revoked.audit_seq, "grace")  # even in a privacy officer's name
    with pytest.raises(AuditIntegrityError, match=f"entry {revoked.audit_seq}: the payload of a identity.revoke "
                                                  "entry is missing, and no one may erase one"):
        verify_workspace(people)


def test_an_erasure_nobody_signed_fails_verify(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    [check] = audit_entries(people, "dataset.check")
    _erase(people, check.seq, "grace", signed=False)
    with pytest.raises(AuditIntegrityError, match="the administrative act carries no signed statement"):
        verify_workspace(people)


def test_an_erasure_signed_by_someone_the_policy_does_not_allow_is_named_by_replay(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    [check] = audit_entries(people, "dataset.check")
    _erase(people, check.seq, "mallory")
    verify_workspace(people)  # every signature verifies: mallory did sign it
    report = replay_decisions(people)
    [differs] = report.differing
    assert differs["what"] == "audit.redact" and differs["recorded"]["result"] == "allow"
    assert differs["replayed"]["result"] == "deny"
    assert "mallory may not audit.redact" in differs["replayed"]["reasons"][0]


def test_a_lawful_redaction_and_revocation_replay_as_recorded(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    [check] = audit_entries(people, "dataset.check")
    actions.redact(people, check.seq, "erasure request", "grace", PASSPHRASE)
    actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    assert verify_workspace(people).redacted == [check.seq]
    report = replay_decisions(people)
    assert report.differing == [] and report.replayed == report.agreed == 2


def test_an_approval_entry_without_the_request_it_answers_fails_verify(people, files):
    # bob really signs an approval, but no request was ever made: the appended entry cannot carry one.
    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    statement = make_statement(unlock(people, "bob", PASSPHRASE), Gate.DATASET, GateAction.APPROVE, asset,
                               request_id=str(uuid.uuid4()))
    with audited_transaction(people) as tx:
        tx.append(EntryDraft(actor="bob", action=AuditAction.GATE_DATASET_APPROVE, subject_digest=asset.digest,
                             decision_id=str(uuid.uuid4()),
                             payload={"result": "allow", "statement": statement.payload,
                                      "signature": statement.signature, "signed_approvals": []}))
    with pytest.raises(AuditIntegrityError, match="the request carries no signed statement"):
        verify_workspace(people)
