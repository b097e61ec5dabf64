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


def _forge_adoption(ws, tmp_path, approvals=(), *, fresh: bool = True):  # type: ignore[no-untyped-def]
    """dave (a policy owner) proposes a bundle, then, holding the log key, appends an "allow" decision on his own
    signed request (a `fresh` one he signs for it, or the one the gate already decided), with `approvals` claimed
    in its input, and the activation it would have caused."""
    asset = register_asset(ws, AssetKind.POLICY, _edited_bundle(ws, tmp_path, _require_privacy_officer), "rules",
                           "dave")
    requested = actions.request(ws, label(asset), "dave", PASSPHRASE)
    own = make_statement(unlock(ws, "dave", PASSPHRASE), Gate.POLICY, GateAction.REQUEST, asset) if fresh else None
    with audited_transaction(ws) as tx:
        real = tx.session.get(Decision, requested.decision_id)
        entry = tx.session.exec(select(AuditEntry).where(AuditEntry.seq == requested.audit_seq)).one()
        payload = json.loads(entry.payload)
        document = json.loads(real.input)
        document["approvals"] = list(approvals)
        if own is not None:
            document["request"].update(id=own.request_id, requested_at=own.payload["signed_at"])
            payload.update(statement=own.payload, signature=own.signature, request_id=own.request_id)
        forged_input = canonical_bytes(document)
        decision = Decision(**{**real.model_dump(), "id": str(uuid.uuid4()), "result": DecisionResult.ALLOW,
                               "input": forged_input.decode(), "input_digest": sha256_digest(forged_input),
                               "nonce": payload["statement"]["nonce"] if own else uuid.uuid4().hex,
                               "request_id": payload["request_id"]})
        tx.session.add(decision)
        subject = tx.session.get(Asset, asset.id)
        subject.state = AssetState.APPROVED
        tx.session.add(subject)
        tx.append(EntryDraft(actor="dave", action=AuditAction.GATE_POLICY_REQUEST, subject_digest=asset.digest,
                             decision_id=decision.id, policy_revision=entry.policy_revision,
                             payload={**payload, "result": "allow", "missing": [], "state": "approved",
                                      "input_digest": decision.input_digest}))
        put_in_force(tx, subject, decision, SignedStatement(payload["statement"], payload["signature"]))
    return asset


@pytest.mark.replay_objects
def test_a_policy_adopted_by_an_appended_allow_on_the_owners_own_request_does_not_decide(people, files, tmp_path):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_adoption(people, tmp_path)
    with read_session(people.database_url) as session:
        assert policy_in_force(session).revision == "2026.11.22-edited"  # every signature in it verifies
    with pytest.raises(AdoptionNotProven, match=r"policy 2026.11.23-1, in force when it was decided, does not allow "
                                                r"it \(1 more approval by role policy-owner"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    verify_workspace(people)  # dave did sign that request: only the policy shows it was not enough
    [differs] = replay_decisions(people).differing
    assert differs["what"] == "gate.policy.request" and differs["replayed"]["result"] == "pending"


def test_a_policy_adopted_on_a_request_statement_already_spent_does_not_decide(people, files, tmp_path):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_adoption(people, tmp_path, fresh=False)
    with pytest.raises(StoreTampered, match=r"the statement behind decision .* was used by 2 gate entries"):
        actions.request(people, "claims", "alice", PASSPHRASE)
    with pytest.raises(AuditIntegrityError, match="statement nonce already used"):
        verify_workspace(people)


@pytest.mark.replay_objects
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


@pytest.mark.replay_objects
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


# --- found by the review at the end of this session's first half --------------------------------------------------

def _append_allow_on_own_request(ws, asset, actor: str, policy_digest: str | None = None,  # type: ignore[no-untyped-def]
                                 signer=None):
    """`actor` (the owner, with no right to approve) signs a request; holding the log key, the insider records it as
    allowed, under the policy in force or under one they name."""
    statement = make_statement(signer or unlock(ws, actor, PASSPHRASE), Gate.DATASET, GateAction.REQUEST, asset)
    with read_session(ws.database_url) as session:
        in_force = policy_in_force(session)
    digest = policy_digest or in_force.digest
    from forgegov.governance.evidence.data_quality import checks_evidence

    with read_session(ws.database_url) as session:
        evidence = {"data_quality": checks_evidence(session, session.get(Asset, asset.id))}
    document = {"version": 1, "gate": "dataset", "action": "request", "now": now_rfc3339(),
                "actor": {"name": actor, "key_id": statement.payload["key_id"]},
                "subject": {"digest": asset.digest}, "approvals": [], "evidence": evidence,
                "request": {"id": statement.request_id, "requested_by": actor,
                            "requested_at": statement.payload["signed_at"], "target": None}}
    raw = canonical_bytes(document)
    decision = Decision(id=str(uuid.uuid4()), gate=Gate.DATASET, action=GateAction.REQUEST,
                        request_id=statement.request_id,
                        subject_digest=asset.digest, actor=actor, input_digest=sha256_digest(raw), input=raw.decode(),
                        result=DecisionResult.ALLOW, reasons="[]", missing="[]", policy_revision=in_force.revision,
                        policy_digest=digest, decided_at=now_rfc3339(), nonce=statement.payload["nonce"])
    with audited_transaction(ws) as tx:
        tx.session.add(decision)
        tx.session.connection().execute(text("UPDATE asset SET state = 'approved' WHERE id = :id"), {"id": asset.id})
        tx.append(EntryDraft(actor=actor, action=AuditAction.GATE_DATASET_REQUEST, subject_digest=asset.digest,
                             decision_id=decision.id, policy_revision=in_force.revision,
                             payload={"result": "allow", "reasons": [], "missing": [], "opa_decision_id": "x",
                                      "input_digest": decision.input_digest, "policy_digest": digest,
                                      "request_id": statement.request_id, "subject": label(asset),
                                      "statement": statement.payload, "signature": statement.signature,
                                      "state": "approved", "release": None}))


@pytest.mark.replay_objects
def test_an_allow_appended_on_ones_own_request_is_named_by_replay(people, files):
    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims", owner="mallory")
    _append_allow_on_own_request(people, asset, "mallory")
    verify_workspace(people)  # mallory did sign the request
    [differs] = replay_decisions(people).differing
    assert differs["recorded"]["result"] == "allow" and differs["replayed"]["result"] == "deny"


@pytest.mark.replay_objects
def test_a_decision_recorded_under_a_policy_never_in_force_is_refused_by_replay(people, files):
    # Before: replay took the policy from the record, and a digest it could not load was only a "not proven" line.
    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims", owner="mallory")
    _append_allow_on_own_request(people, asset, "mallory", policy_digest="sha256:" + "0" * 64)
    with pytest.raises(StoreTampered, match="records a decision under policy sha256:0000.* but the log had put "
                                            "2026.11.23-1"):
        replay_decisions(people)


def test_a_revoked_identity_cannot_decide_through_an_appended_entry(people, files):
    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims", owner="mallory")
    kept = unlock(people, "mallory", PASSPHRASE)  # the key she still holds after the revocation below
    actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    _append_allow_on_own_request(people, asset, "mallory", signer=kept)
    with pytest.raises(AuditIntegrityError, match="is signed with a key that is not theirs, or was revoked"):
        verify_workspace(people)
    with pytest.raises(StoreTampered, match=r"mallory had been revoked"):
        replay_decisions(people)


def test_a_statement_moved_onto_another_subject_fails_verify(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    other = register_checked(people, files.folder("e", {"a.jsonl": '{"text": "y"}\n'}), "other")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    with read_session(people.database_url) as session:
        payload = json.loads(session.get(AuditEntry, requested.audit_seq).payload)
    with audited_transaction(people) as tx:
        tx.append(EntryDraft(actor="alice", action=AuditAction.GATE_DATASET_REQUEST, subject_digest=other.digest,
                             decision_id=str(uuid.uuid4()), payload={**payload, "result": "allow"}))
    with pytest.raises(AuditIntegrityError, match="carries a statement signed for gate.dataset.request on sha256:"):
        verify_workspace(people)


def test_a_request_id_reused_after_its_row_was_deleted_is_refused(people, files):
    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    _sql(people, "DELETE FROM gate_request WHERE id = :id", id=requested.request_id)
    from forgegov.foundation.errors import ReplayedApproval
    from forgegov.governance.gate import submit

    again = make_statement(unlock(people, "alice", PASSPHRASE), Gate.DATASET, GateAction.REQUEST, asset,
                           request_id=requested.request_id)
    with actions.policy_engine(people) as engine, pytest.raises(ReplayedApproval, match="already used"):
        submit(people, engine, again)


def test_an_approval_the_policy_denied_cannot_be_inserted_to_count(people, files):
    from forgegov.foundation.errors import PolicyDenied
    from forgegov.foundation.store.models import Approval

    asset = register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    with pytest.raises(PolicyDenied):
        actions.answer(people, "claims", "mallory", PASSPHRASE, GateAction.APPROVE)
    [denied] = [e for e in audit_entries(people, "gate.dataset.approve")]
    payload = json.loads(denied.payload)
    with write_transaction(people.database_url) as session:
        session.add(Approval(request_id=requested.request_id, approver="mallory", key_id=payload["statement"]["key_id"],
                             verdict="approve", payload=canonical_bytes(payload["statement"]).decode(),
                             signature=payload["signature"], nonce=payload["statement"]["nonce"],
                             signed_at=payload["statement"]["signed_at"], recorded_at=now_rfc3339()))
    assert asset.digest
    with pytest.raises(StoreTampered, match="was never admitted by a gate decision"):
        actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE)


def test_a_redaction_that_told_the_policy_another_entry_kind_is_refused_by_replay(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    [check] = audit_entries(people, "dataset.check")
    actions.redact(people, check.seq, "erasure request", "grace", PASSPHRASE)
    [redaction] = audit_entries(people, "audit.redact")
    payload = json.loads(redaction.payload)
    payload["decision"]["input"]["target"]["action"] = "dataset.register"
    with audited_transaction(people) as tx:
        tx.append(EntryDraft(actor="grace", action=AuditAction.AUDIT_REDACT, payload=payload))
    with pytest.raises(StoreTampered, match="the question put to the policy is not the act its actor signed"):
        replay_decisions(people)


# --- found by the second review ------------------------------------------------------------------------------------

def test_a_closed_request_reopened_in_the_store_is_refused(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.REJECT)
    _sql(people, "UPDATE gate_request SET status = 'open', closed_at = NULL WHERE id = :id", id=requested.request_id)
    _sql(people, "UPDATE asset SET state = 'pending' WHERE name = 'claims'")
    with pytest.raises(StoreTampered):
        actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
    _sql(people, "UPDATE asset SET state = 'rejected' WHERE name = 'claims'")  # only the request row edited now
    with pytest.raises(StoreTampered, match=f"request {requested.request_id} .* was closed by decision"):
        actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE)


def test_a_comment_quoting_the_adopting_statements_nonce_stops_nothing(people, files, tmp_path):
    from forgegov.foundation.errors import PolicyDenied

    asset = register_asset(people, AssetKind.POLICY, _edited_bundle(people, tmp_path, _require_privacy_officer),
                           "rules", "dave")
    actions.request(people, label(asset), "dave", PASSPHRASE)
    adopted = actions.answer(people, label(asset), "grace", PASSPHRASE, GateAction.APPROVE)
    with read_session(people.database_url) as session:
        nonce = json.loads(session.get(AuditEntry, adopted.audit_seq).payload)["statement"]["nonce"]
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with pytest.raises(PolicyDenied):
        actions.request(people, "claims", "mallory", PASSPHRASE, comment=nonce)
    assert actions.request(people, "claims", "alice", PASSPHRASE).result is DecisionResult.PENDING


@pytest.mark.replay_objects
def test_a_decision_that_read_made_up_no_findings_is_named_by_replay(people, files):
    # bob (data steward) holds the log key and approves alone a dataset whose check found PII, recording an input in
    # which the check found nothing, so that no privacy officer was needed.
    register_checked(people, files.folder("d", {"a.jsonl": PII}), "claims")
    requested = actions.request(people, "claims", "alice", PASSPHRASE)
    asset = actions_resolve(people, "claims")
    statement = make_statement(unlock(people, "bob", PASSPHRASE), Gate.DATASET, GateAction.APPROVE, asset,
                               request_id=requested.request_id)
    with read_session(people.database_url) as session:
        request_decision = session.get(Decision, requested.decision_id)
        request_entry = json.loads(session.get(AuditEntry, requested.audit_seq).payload)
        document = json.loads(request_decision.input)
    document.update(action="approve", now=now_rfc3339(),
                    actor={"name": "bob", "key_id": statement.payload["key_id"]},
                    approvals=[{"approver": "bob", "key_id": statement.payload["key_id"], "verdict": "approve",
                                "signed_at": statement.payload["signed_at"], "key_revoked": False, "new": True,
                                "justification": ""}])
    for check in document["evidence"]["data_quality"]:
        check["pii"] = {"records": 0, "rate": 0.0, "sample_locations": [], "findings": {}}
    raw = canonical_bytes(document)
    decision = Decision(id=str(uuid.uuid4()), gate=Gate.DATASET, action=GateAction.APPROVE,
                        request_id=requested.request_id, subject_digest=asset.digest, actor="bob",
                        input_digest=sha256_digest(raw), input=raw.decode(), result=DecisionResult.ALLOW,
                        reasons="[]", missing="[]", policy_revision=request_decision.policy_revision,
                        policy_digest=request_decision.policy_digest, decided_at=now_rfc3339(),
                        nonce=statement.payload["nonce"])
    with audited_transaction(people) as tx:
        tx.session.add(decision)
        tx.session.connection().execute(text("UPDATE asset SET state = 'approved' WHERE id = :id"), {"id": asset.id})
        tx.append(EntryDraft(actor="bob", action=AuditAction.GATE_DATASET_APPROVE, subject_digest=asset.digest,
                             decision_id=decision.id, policy_revision=request_decision.policy_revision,
                             payload={"result": "allow", "reasons": [], "missing": [], "opa_decision_id": "x",
                                      "input_digest": decision.input_digest,
                                      "policy_digest": request_decision.policy_digest,
                                      "request_id": requested.request_id, "subject": "dataset/claims@1",
                                      "statement": statement.payload, "signature": statement.signature,
                                      "state": "approved", "release": None,
                                      "signed_request": {"statement": request_entry["statement"],
                                                         "signature": request_entry["signature"]},
                                      "signed_approvals": []}))
    verify_workspace(people)  # every signature and nonce checks out
    with pytest.raises(StoreTampered, match="the data-quality evidence its decision read is not the checks the log "
                                            "had recorded"):
        replay_decisions(people)


def actions_resolve(ws, name: str):  # type: ignore[no-untyped-def]
    from forgegov.governance.registry import find_asset

    return find_asset(ws, name)


def test_an_evaluation_result_the_platform_never_signed_is_named_by_verify(people):
    """Holding only the log key, an insider appends an `eval.record` whose statement says a checkpoint passed every
    metric, signed by a key of their own. The log holds together (the entry was appended through the log key), so
    only the platform signature on the statement can name it: `audit verify` checks every result's envelope."""
    import subprocess
    import sys

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.foundation.crypto.dsse import sign_envelope
    from forgegov.foundation.errors import SignatureInvalid
    from forgegov.governance.evaluations import EVAL_PREDICATE, statement_for, verify_recorded
    from forgegov.governance.runs.provenance import IN_TOTO_PAYLOAD_TYPE

    assert verify_recorded(people) == 0
    digest = "sha256:" + "ab" * 32
    evaluation_id = str(uuid.uuid4())
    statement = statement_for({"label": "checkpoint/claims-cpt@1", "digest": digest},
                              {"evaluation_id": evaluation_id, "metrics": []})
    assert statement["predicateType"] == EVAL_PREDICATE
    envelope = sign_envelope(canonical_bytes(statement), IN_TOTO_PAYLOAD_TYPE, Ed25519PrivateKey.generate())
    with audited_transaction(people, tree_head=True) as tx:
        tx.append(EntryDraft(actor="alice", action=AuditAction.EVAL_RECORD, subject_digest=digest,
                             payload={"evaluation_id": evaluation_id, "envelope": envelope}))
    verify_workspace(people)  # the log itself is consistent
    with pytest.raises(SignatureInvalid):
        verify_recorded(people)
    done = subprocess.run([sys.executable, "-c", "from forgegov.app.cli.main import main; main()", "--workspace", str(people.root), "audit", "verify"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 4 and "no signature by key" in done.stderr, done.stderr


def _forged_start(ws, actor: str, recent: list[str]) -> int:  # type: ignore[no-untyped-def]
    """A job.start entry carrying alice's real signed act, appended with the log key under ACTOR, with a decision
    whose question shows RECENT as her earlier starts."""
    from forgegov.governance.jobs import evaluation_job

    signed = make_admin_statement(unlock(ws, "alice", PASSPHRASE), AdminAct.JOB_START,
                                  evaluation_job("checkpoint/any", ["suite/any"], None, 8), "train it")
    document = {"version": 1, "act": "job.start", "now": signed.payload["signed_at"],
                "actor": {"name": "alice", "key_id": signed.payload["key_id"]},
                "target": {"kind": "evaluation", "recent": recent}, "reason": "train it"}
    in_force = policy_in_force_of(ws)
    decision = {"allow": True, "reasons": [], "opa_decision_id": None, "policy_digest": in_force.digest,
                "policy_revision": in_force.revision, "input": document}
    with audited_transaction(ws) as tx:
        return tx.append(EntryDraft(actor=actor, action=AuditAction.JOB_START, subject_digest="sha256:" + "0" * 64,
                                    payload={"kind": "evaluation", "statement": signed.payload,
                                             "signature": signed.signature, "decision": decision})).seq


def policy_in_force_of(ws):  # type: ignore[no-untyped-def]
    with read_session(ws.database_url) as session:
        return policy_in_force(session)


def test_a_job_start_shown_a_made_up_quota_is_named(people) -> None:
    """alice's 21st start would be refused by her quota; with the log key, it is appended with a question that
    shows none of her earlier starts. `audit verify` counts them again from the log."""
    _forged_start(people, "alice", [])
    verify_workspace(people)  # a start whose question shows what the log held (the policy's answer is replay's)
    _forged_start(people, "alice", [])
    with pytest.raises(AuditIntegrityError, match="other recent starts by alice than the log holds"):
        verify_workspace(people)



def test_a_job_start_logged_under_another_name_is_named(people) -> None:
    """The quota counts a member's entries: an act alice signed, logged as dave's, would spend his and not hers."""
    _forged_start(people, "dave", [])
    with pytest.raises(AuditIntegrityError, match="names dave as its actor, but alice signed the act"):
        verify_workspace(people)


def test_a_fetch_filed_under_another_asset_is_named(people, files) -> None:
    """The store serves a member the files of the asset an `asset.fetch` entry is filed under: holding the log key,
    file alice's allowed fetch of public data under the proprietary dataset's digest, and `audit verify` names it."""
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with read_session(people.database_url) as session:
        claims = session.exec(select(Asset).where(Asset.name == "claims")).one()
    signed = make_admin_statement(unlock(people, "alice", PASSPHRASE), AdminAct.FETCH,
                                  {"subject": "open", "kind": "dataset"}, "reading")
    target = {"subject": "open", "kind": "dataset", "asset": {"kind": "dataset", "label": "dataset/open@1",
                                                              "digest": "sha256:" + "1" * 64, "state": "approved",
                                                              "classification": "public", "dataset_kind": None}}
    in_force = policy_in_force_of(people)
    decision = {"allow": True, "reasons": [], "opa_decision_id": None, "policy_digest": in_force.digest,
                "policy_revision": in_force.revision,
                "input": {"version": 1, "act": "asset.fetch", "now": signed.payload["signed_at"],
                          "actor": {"name": "alice", "key_id": signed.payload["key_id"]}, "target": target,
                          "reason": "reading"}}
    with audited_transaction(people) as tx:
        tx.append(EntryDraft(actor="alice", action=AuditAction.ASSET_FETCH, subject_digest=claims.digest,
                             payload={"subject": "open", "files": [], "statement": signed.payload,
                                      "signature": signed.signature, "decision": decision}))
    with pytest.raises(AuditIntegrityError, match="the fetch is filed under"):
        verify_workspace(people)
