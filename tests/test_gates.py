"""The four gates through the one door: separation of duties, quorum, revocation, replay, and what gets written."""

from __future__ import annotations

import json

import pytest
from sqlmodel import func, select

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import (
    BadInput,
    DecisionUnavailable,
    PolicyDenied,
    ReplayedApproval,
    RevokedIdentity,
    SignatureInvalid,
    StateConflict,
)
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Approval, AuditEntry, Decision, GateRequest
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, DecisionResult, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.gate import submit
from forgegov.governance.identities import unlock
from forgegov.governance.registry import find_asset, register_asset
from forgegov.governance.statements import SignedStatement, make_statement

from .conftest import PASSPHRASE, Files, register_checked, tiny_checkpoint_files
from .reward_support import write_reward


@pytest.fixture
def dataset(people: Workspace, files: Files) -> str:
    path = files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'})
    register_checked(people, path, "claims")
    return "claims"


@pytest.fixture
def checkpoint(people: Workspace, files: Files) -> str:
    """A checkpoint no run produced, promotable because an ML lead approved it at the base gate."""
    path = files.folder("ckpt", tiny_checkpoint_files())
    register_asset(people, AssetKind.CHECKPOINT, path, "model", "alice", stage=CheckpointStage.CANDIDATE)
    with actions.policy_engine(people) as engine:
        actions.request(people, "model", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)
        actions.answer(people, "model", "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE, engine=engine)
    return "model"


@pytest.fixture
def engine(people: Workspace):
    with actions.policy_engine(people) as running:
        yield running


def req(ws, subject, actor, engine, **kw):
    return actions.request(ws, subject, actor, PASSPHRASE, engine=engine, **kw)


def ans(ws, subject, actor, engine, action=GateAction.APPROVE, **kw):
    return actions.answer(ws, subject, actor, PASSPHRASE, action, engine=engine, **kw)


def counts(ws: Workspace) -> dict[str, int]:
    with read_session(ws.database_url) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Approval, Decision, AuditEntry, GateRequest)
        }


def test_dataset_approved_by_data_steward(people, dataset, engine):
    opened = req(people, dataset, "alice", engine)
    assert opened.result is DecisionResult.PENDING
    assert opened.missing == ("1 more approval by role data-steward (have 0 of 1)",)
    assert find_asset(people, dataset).state.value == "pending"
    done = ans(people, dataset, "bob", engine)
    assert done.result is DecisionResult.ALLOW
    assert find_asset(people, dataset).state.value == "approved"
    assert done.opa_decision_id, "OPA's own decision id is recorded"
    assert done.policy_revision == "2026.11.23-1"


def test_self_approval_denied_and_nothing_but_the_decision_written(people, dataset, engine):
    req(people, dataset, "bob", engine)  # bob is a data steward, so only separation of duties can stop him
    before = counts(people)
    with pytest.raises(PolicyDenied) as denied:
        ans(people, dataset, "bob", engine)
    assert any("bob requested this approval and cannot approve it" in r for r in denied.value.reasons)
    after = counts(people)
    assert after["Approval"] == before["Approval"], "a denied approval is not stored"
    assert after["Decision"] == before["Decision"] + 1 and after["AuditEntry"] == before["AuditEntry"] + 1
    assert find_asset(people, dataset).state.value == "pending"


def test_approver_without_role_denied(people, dataset, engine):
    req(people, dataset, "alice", engine)
    with pytest.raises(PolicyDenied) as denied:
        ans(people, dataset, "carol", engine)
    assert denied.value.reasons == [
        "carol does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"]


def test_requester_without_role_or_ownership_denied(people, dataset, engine):
    with pytest.raises(PolicyDenied) as denied:
        req(people, dataset, "mallory", engine)
    assert "mallory cannot request this gate" in denied.value.reasons[0]
    assert counts(people)["GateRequest"] == 0


def test_production_needs_two_distinct_release_managers(people, checkpoint, engine):
    staged = actions.promote(people, checkpoint, ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    assert staged.result is DecisionResult.PENDING
    assert ans(people, checkpoint, "dave", engine).release == "staging"
    actions.promote(people, checkpoint, ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    first = ans(people, checkpoint, "erin", engine)
    assert first.result is DecisionResult.PENDING and first.release == "staging"
    assert first.missing == ("1 more approval by role release-manager (have 1 of 2)",)
    with pytest.raises(PolicyDenied) as twice:
        ans(people, checkpoint, "erin", engine)
    assert any("erin has already approved this request" in r for r in twice.value.reasons)
    second = ans(people, checkpoint, "frank", engine)
    assert second.result is DecisionResult.ALLOW
    assert find_asset(people, checkpoint).release == "production"


def test_second_open_promotion_request_refused(people, checkpoint, engine):
    actions.promote(people, checkpoint, ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    with pytest.raises(StateConflict, match="already has an open promotion request"):
        actions.promote(people, checkpoint, ReleaseStage.STAGING, "dave", PASSPHRASE, engine=engine)


def test_production_before_staging_denied(people, checkpoint, engine):
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, checkpoint, ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    assert "must be in staging before promotion to production" in denied.value.reasons[0]


def test_revoked_identity_refused_and_logged(people, dataset, engine):
    req(people, dataset, "alice", engine)
    signer = unlock(people, "bob", PASSPHRASE)  # bob unlocked his key before the revocation
    actions.revoke(people, "bob", "key compromised", "dave", PASSPHRASE, engine=engine)
    asset = find_asset(people, dataset)
    with read_session(people.database_url) as session:
        request_id = session.exec(select(GateRequest.id)).one()
    statement = make_statement(signer, Gate.DATASET, GateAction.APPROVE, asset, request_id=request_id)
    before = counts(people)
    with pytest.raises(RevokedIdentity):
        submit(people, engine, statement)
    after = counts(people)
    assert after["Approval"] == before["Approval"] and after["Decision"] == before["Decision"]
    assert after["AuditEntry"] == before["AuditEntry"] + 1, "the refusal itself is logged"
    with pytest.raises(RevokedIdentity):
        unlock(people, "bob", PASSPHRASE)


def test_approval_from_since_revoked_key_stops_counting(people, checkpoint, engine):
    actions.promote(people, checkpoint, ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    ans(people, checkpoint, "dave", engine)
    actions.promote(people, checkpoint, ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    ans(people, checkpoint, "erin", engine)
    actions.revoke(people, "erin", "left the company", "dave", PASSPHRASE, engine=engine)
    outcome = ans(people, checkpoint, "frank", engine)
    assert outcome.result is DecisionResult.PENDING, "erin's approval no longer counts once her key is revoked"
    assert any("erin" in m and "revoked" in m for m in outcome.missing)


def _open_request_id(ws: Workspace) -> str:
    with read_session(ws.database_url) as session:
        return session.exec(select(GateRequest.id)).one()


def test_replayed_approval_refused(people, dataset, engine):
    req(people, dataset, "alice", engine)
    asset = find_asset(people, dataset)
    bob = unlock(people, "bob", PASSPHRASE)
    statement = make_statement(bob, Gate.DATASET, GateAction.APPROVE, asset, request_id=_open_request_id(people))
    submit(people, engine, statement)
    # The same signed approval, replayed onto a fresh request for a new version, is refused.
    with pytest.raises((ReplayedApproval, StateConflict)):
        submit(people, engine, statement)


class _Down:
    """The pinned policy, but OPA does not answer: the gate records a denial."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.pinned_revision, self.pinned_digest = engine.pinned_revision, engine.pinned_digest

    def decide(self, gate, input_document):  # type: ignore[no-untyped-def]
        raise DecisionUnavailable("OPA at 127.0.0.1 is unreachable")


def test_a_statement_denied_while_opa_was_down_is_not_accepted_once_it_is_up(people, dataset, engine):
    # The denied approval's statement sits in its audit entry; submitted again within its freshness window, with OPA
    # back, it must not count: every decision spends its statement's nonce, denied ones included.
    req(people, dataset, "alice", engine)
    asset = find_asset(people, dataset)
    bob = unlock(people, "bob", PASSPHRASE)
    statement = make_statement(bob, Gate.DATASET, GateAction.APPROVE, asset, request_id=_open_request_id(people))
    with pytest.raises(PolicyDenied, match="dataset gate denied approve"):
        submit(people, _Down(engine), statement)
    with read_session(people.database_url) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "gate.dataset.approve")).one()
    logged = json.loads(entry.payload)
    with pytest.raises(ReplayedApproval, match="already used"):
        submit(people, engine, SignedStatement(logged["statement"], logged["signature"]))
    assert find_asset(people, dataset).state.value == "pending"


def test_approval_for_another_request_refused(people, dataset, files, engine):
    req(people, dataset, "alice", engine)
    old_request = _open_request_id(people)
    asset = find_asset(people, dataset)
    ans(people, dataset, "bob", engine, action=GateAction.REJECT, comment="bad source")
    path = files.folder("claims-v2", {"train.jsonl": '{"text": "v2"}\n'})
    register_checked(people, path, "claims")
    req(people, "claims@2", "alice", engine)
    bob = unlock(people, "bob", PASSPHRASE)
    v2 = find_asset(people, "claims@2")
    replayed = make_statement(bob, Gate.DATASET, GateAction.APPROVE, v2, request_id=old_request)
    with pytest.raises(ReplayedApproval):
        submit(people, engine, replayed)
    assert asset.digest != v2.digest


def test_altered_approval_refused(people, dataset, engine):
    req(people, dataset, "alice", engine)
    asset = find_asset(people, dataset)
    carol = unlock(people, "carol", PASSPHRASE)
    genuine = make_statement(carol, Gate.DATASET, GateAction.APPROVE, asset, request_id=_open_request_id(people))
    # carol is no data steward; claiming bob signed it (with bob's key id) must fail signature verification.
    with read_session(people.database_url) as session:
        from forgegov.governance.identities import get_identity

        bob = get_identity(session, "bob")
    forged = SignedStatement({**genuine.payload, "signer": "bob", "key_id": bob.key_id}, genuine.signature)
    with pytest.raises(SignatureInvalid):
        submit(people, engine, forged)
    tampered = SignedStatement({**genuine.payload, "comment": "edited"}, genuine.signature)
    with pytest.raises(SignatureInvalid):
        submit(people, engine, tampered)
    assert counts(people)["Approval"] == 0
    # Both refusals are in the log, and a log that faithfully records a forgery attempt is not itself tampered.
    from forgegov.audit.operations import verify_workspace

    with read_session(people.database_url) as session:
        refused = session.exec(select(AuditEntry).where(AuditEntry.action == "gate.refused")).all()
    assert len(refused) == 2
    assert verify_workspace(people).entries > 2


def test_stale_signature_refused(people, dataset, engine):
    req(people, dataset, "alice", engine)
    asset = find_asset(people, dataset)
    bob = unlock(people, "bob", PASSPHRASE)
    statement = make_statement(bob, Gate.DATASET, GateAction.APPROVE, asset, request_id=_open_request_id(people))
    from forgegov.foundation.crypto.signing import Purpose, sign

    old = {**statement.payload, "signed_at": "2026-01-01T00:00:00.000000Z"}
    with pytest.raises(SignatureInvalid, match="refused as a possible replay"):
        submit(people, engine, SignedStatement(old, sign(bob.private_key, Purpose.GATE_ACTION, old)))


def test_stored_approval_edited_in_database_stops_the_gate(people, checkpoint, engine):
    actions.promote(people, checkpoint, ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    ans(people, checkpoint, "dave", engine)
    actions.promote(people, checkpoint, ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    ans(people, checkpoint, "erin", engine)
    from forgegov.foundation.store.db import write_transaction

    with write_transaction(people.database_url) as session:
        approval = session.exec(select(Approval).where(Approval.approver == "erin")).one()
        payload = json.loads(approval.payload)
        payload["signer"], payload["key_id"] = "frank", "0" * 64
        approval.approver = "frank"
        approval.payload = json.dumps(payload)
        session.add(approval)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        ans(people, checkpoint, "erin", engine)
    assert find_asset(people, checkpoint).release == "staging"


def test_reject_closes_request_and_rejects_dataset(people, dataset, engine):
    req(people, dataset, "alice", engine)
    with pytest.raises(PolicyDenied):
        ans(people, dataset, "carol", engine, action=GateAction.REJECT, comment="not mine to judge")
    outcome = ans(people, dataset, "bob", engine, action=GateAction.REJECT, comment="unknown provenance")
    assert outcome.result is DecisionResult.ALLOW and outcome.state == "rejected"
    with pytest.raises(PolicyDenied) as again:
        req(people, dataset, "alice", engine)
    assert any("register a new version" in r for r in again.value.reasons)


def test_state_conflicts_are_bad_input(people, dataset, engine):
    with pytest.raises(StateConflict, match="no open dataset request"):
        ans(people, dataset, "bob", engine)
    req(people, dataset, "alice", engine)
    with pytest.raises(StateConflict, match="already has an open dataset request"):
        req(people, dataset, "alice", engine)
    with pytest.raises(BadInput):
        req(people, dataset, "alice", engine, target=ReleaseStage.STAGING)


def test_reward_gate(people, files, engine):
    register_asset(people, AssetKind.REWARD, write_reward(files.root / "reward"), "thing", "alice")
    opened = req(people, "thing", "alice", engine)
    assert opened.gate is Gate.REWARD and opened.result is DecisionResult.PENDING
    with pytest.raises(PolicyDenied):
        ans(people, "thing", "bob", engine)
    assert ans(people, "thing", "carol", engine).state == "approved"


def test_base_gate_approves_a_checkpoint_for_customisation(people, files, engine):
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "base", "alice",
                   stage=CheckpointStage.POST_TRAINING)
    opened = actions.request(people, "checkpoint/base", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)
    assert opened.gate is Gate.BASE and opened.result is DecisionResult.PENDING and opened.state == "pending"
    with pytest.raises(PolicyDenied):
        actions.answer(people, "checkpoint/base", "erin", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE,
                       engine=engine)
    approved = actions.answer(people, "checkpoint/base", "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE,
                              engine=engine)
    assert approved.state == "approved" and approved.release == "none"
    with pytest.raises(BadInput, match="promotion or base"):
        actions.request(people, "checkpoint/base", "alice", PASSPHRASE, gate=Gate.DATASET, engine=engine)


def test_every_decision_names_its_policy_and_input(people, dataset, engine):
    req(people, dataset, "alice", engine)
    ans(people, dataset, "bob", engine)
    with read_session(people.database_url) as session:
        decisions = list(session.exec(select(Decision)))
    assert len(decisions) == 2
    from forgegov.foundation.canonical import digest_of

    for decision in decisions:
        assert decision.policy_revision == "2026.11.23-1"
        assert decision.policy_digest == engine.pinned_digest
        assert decision.input_digest == digest_of(json.loads(decision.input))
        assert decision.opa_decision_id




def test_a_hand_registered_candidate_with_a_made_up_parent_is_not_promoted(people, files, engine):
    # The attack as written: `--stage candidate` with a parent, registered by hand, no run behind it.
    register_asset(people, AssetKind.CHECKPOINT, files.folder("base", tiny_checkpoint_files()), "base", "alice",
                   stage=CheckpointStage.POST_TRAINING)
    odd = {**tiny_checkpoint_files(), "generation_config.json": '{"note": "never trained"}'}
    register_asset(people, AssetKind.CHECKPOINT, files.folder("cand", odd), "claims-sft", "alice",
                   stage=CheckpointStage.CANDIDATE, parent="checkpoint/base")
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, "claims-sft", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    assert ("checkpoint claims-sft v1 was produced by no governed training run and is not approved at the base gate: "
            "only the candidate of a completed, approved training run with verifying provenance, or a checkpoint "
            "approved at the base gate, can be promoted") in denied.value.reasons
    # Having a parent, it is also judged against it, and was never evaluated.
    assert any("has no drift evaluation of harmful_refusal against its parent" in r for r in denied.value.reasons)


def test_a_checkpoint_rejected_at_the_base_gate_is_not_promoted(people, files, engine):
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    actions.request(people, "model", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)
    actions.answer(people, "model", "dave", PASSPHRASE, GateAction.REJECT, gate=Gate.BASE, engine=engine)
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, "model", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    assert "checkpoint model v1 was rejected at the base gate and cannot be promoted: train or register a new " \
           "version" in denied.value.reasons


def test_an_approved_dataset_is_withdrawn_by_a_signed_policy_decided_action(people, dataset, engine):
    from forgegov.governance.loading.datasets import load_dataset

    with pytest.raises(PolicyDenied) as early:
        actions.withdraw(people, dataset, "bob", PASSPHRASE, engine=engine)
    assert early.value.reasons == ["dataset claims v1 is registered, not approved: there is no approval to withdraw"]
    req(people, dataset, "alice", engine)
    ans(people, dataset, "bob", engine)
    with pytest.raises(PolicyDenied) as outsider:
        actions.withdraw(people, dataset, "alice", PASSPHRASE, engine=engine)
    assert outsider.value.reasons == ["alice cannot withdraw dataset claims v1: only a holder of one of the roles "
                                      "data-steward, privacy-officer may"]
    withdrawn = actions.withdraw(people, dataset, "grace", PASSPHRASE, comment="holds health data", engine=engine)
    assert withdrawn.result is DecisionResult.ALLOW and withdrawn.state == "withdrawn"
    assert find_asset(people, dataset).state.value == "withdrawn"  # the row agrees with the log's last word
    with pytest.raises(StateConflict, match="is withdrawn, not approved"):
        load_dataset(people, dataset, actor="alice", purpose="a run")


def test_a_release_is_not_withdrawn_through_the_promotion_gate(people, checkpoint, engine):
    with pytest.raises(PolicyDenied) as denied:
        actions.withdraw(people, checkpoint, "erin", PASSPHRASE, gate=Gate.PROMOTION, engine=engine)
    assert "a release is not withdrawn through the promotion gate" in denied.value.reasons[0]
    assert find_asset(people, checkpoint).state.value == "approved"
