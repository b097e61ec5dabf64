"""Review before you sign: `review` shows what the gate is shown, approvals sign its digest, `inbox` lists what a
person may act on (the policy says who), names resolve to the kind a verb means, and denials say who holds the roles they ask for."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlmodel import select

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, NotFound, PolicyDenied, SignatureInvalid, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Approval, Decision
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, DecisionResult, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.evidence.data_quality import check_dataset
from forgegov.governance.gate import submit
from forgegov.governance.identities import get_identity, unlock
from forgegov.governance.inbox import inbox
from forgegov.governance.registry import find_asset, register_asset
from forgegov.governance.review import gate_holders, review
from forgegov.governance.statements import SignedStatement, make_statement
from forgegov.governance.statements import check_shape as statement_shape

from .conftest import PASSPHRASE, Files, register_checked, tiny_checkpoint_files
from .test_gates import counts


@pytest.fixture
def engine(people: Workspace):
    with actions.policy_engine(people) as running:
        yield running


@pytest.fixture
def dataset(people: Workspace, files: Files) -> str:
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    return "dataset/claims@1"


def _decision(workspace: Workspace, decision_id: str) -> dict:
    with read_session(workspace.database_url) as session:
        return json.loads(session.get(Decision, decision_id).input)


def test_review_shows_exactly_the_evidence_the_decision_that_follows_is_made_on(people, dataset, engine):
    actions.request(people, dataset, "alice", PASSPHRASE, engine=engine)
    shown = review(people, dataset)
    assert shown.gate is Gate.DATASET and shown.request is not None and shown.request["requested_by"] == "alice"
    assert shown.still_required == ["1 more approval by role data-steward (have 0 of 1)"]
    assert shown.holders["data-steward"] == ["bob"] and shown.settings["dataset"]["quorum"] == {"data-steward": 1}
    assert shown.settings["data_quality"]["max_duplicate_rate"] == 0.01  # the bar the check is held to
    approved = actions.answer(people, dataset, "bob", PASSPHRASE, GateAction.APPROVE, expect_digest=shown.digest,
                              engine=engine)
    assert approved.result is DecisionResult.ALLOW and approved.evidence_digest == shown.digest
    recorded = _decision(people, approved.decision_id)
    assert recorded["evidence"] == shown.evidence
    assert shown.to_dict()["evidence"] == json.loads(json.dumps(recorded["evidence"]))


def test_expect_digest_refuses_to_sign_once_the_evidence_changed(people, dataset, engine):
    actions.request(people, dataset, "alice", PASSPHRASE, engine=engine)
    seen = review(people, dataset)
    # Between the review and the approval, a new data-quality check is recorded: the evidence is not what bob saw.
    check_dataset(people, dataset, signer=unlock(people, "bob", PASSPHRASE))
    before = counts(people)
    with pytest.raises(StateConflict, match="changed since it was reviewed"):
        actions.answer(people, dataset, "bob", PASSPHRASE, GateAction.APPROVE, expect_digest=seen.digest,
                       engine=engine)
    assert counts(people) == before, "nothing is signed, stored or logged"
    assert review(people, dataset).digest != seen.digest


def test_the_gate_refuses_an_approval_signed_for_other_evidence(people, dataset, engine):
    """The attack: an approval signed against one state of the evidence is held back and submitted once the
    evidence changed (a failing check added, an input withdrawn). The gate compares the signed review digest with
    the evidence it gathers itself, inside its transaction."""
    opened = actions.request(people, dataset, "alice", PASSPHRASE, engine=engine)
    seen = review(people, dataset)
    asset = find_asset(people, dataset)
    held_back = make_statement(unlock(people, "bob", PASSPHRASE), Gate.DATASET, GateAction.APPROVE, asset,
                               request_id=opened.request_id, evidence_digest=seen.digest)
    check_dataset(people, dataset, signer=unlock(people, "alice", PASSPHRASE))
    before = counts(people)
    with pytest.raises(StateConflict, match="changed since bob signed for it"):
        submit(people, engine, held_back)
    assert counts(people) == before


def test_an_earlier_approval_stops_counting_once_the_evidence_it_was_given_for_changed(people, files, engine):
    """The attack: bob approves a dataset with personal data while its check looks one way; the check changes
    (a new one is recorded); grace, who sees the new evidence, approves. Bob's approval was given for other evidence,
    so the policy does not count it (evidence_current is false) and asks him again."""
    rows = "".join(json.dumps({"text": f"Ticket {i}: unit ZX-{i} squeaks." + (f" Mail customer{i}@example.com."
                                                                               if i % 10 == 3 else "")}) + "\n"
                   for i in range(50))
    register_checked(people, files.folder("tickets", {"t.jsonl": rows}), "tickets")
    actions.request(people, "tickets", "alice", PASSPHRASE, engine=engine)
    first = actions.answer(people, "tickets", "bob", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert first.result is DecisionResult.PENDING and first.evidence_digest
    check_dataset(people, "tickets", signer=unlock(people, "alice", PASSPHRASE))
    justified = actions.answer(people, "tickets", "grace", PASSPHRASE, GateAction.APPROVE, engine=engine,
                               comment="support mail addresses, kept for the warranty process")
    assert justified.result is DecisionResult.PENDING and justified.state == "pending"
    assert "approval by bob does not count for role data-steward: it was given for evidence that has changed since " \
           "(a new check, an input withdrawn or replaced); bob must approve again" in justified.missing
    stale = [a for a in _decision(people, justified.decision_id)["approvals"] if a["approver"] == "bob"]
    assert [a["evidence_current"] for a in stale] == [False]
    (waiting,) = inbox(people, engine, "bob")  # his answer no longer counts: it is his to give again
    assert waiting.subject == "dataset/tickets@1"
    again = actions.answer(people, "tickets", "bob", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert again.result is DecisionResult.ALLOW and again.state == "approved"


def test_the_inbox_of_the_one_person_whose_approval_must_say_why(people, files, engine):
    rows = "".join(json.dumps({"text": f"Ticket {i}: mail customer{i}@example.com."}) + "\n" for i in range(20))
    register_checked(people, files.folder("tickets", {"t.jsonl": rows}), "tickets")
    actions.request(people, "tickets", "alice", PASSPHRASE, engine=engine)
    (item,) = inbox(people, engine, "grace")  # a privacy officer; not a rejecter of datasets
    assert item.may == ("approve",) and item.justification_needed and item.approve_would == "pending"


def test_a_review_digest_belongs_only_on_an_answer_and_must_be_a_digest(people, dataset):
    asset = find_asset(people, dataset)
    signer = unlock(people, "alice", PASSPHRASE)
    with pytest.raises(BadInput, match="only an approval or a rejection"):
        make_statement(signer, Gate.DATASET, GateAction.REQUEST, asset, evidence_digest="sha256:" + "0" * 64)
    signed = make_statement(signer, Gate.DATASET, GateAction.APPROVE, asset, request_id="r", evidence_digest="sha256:" + "0" * 64)
    statement_shape(signed)
    for bad in ({**signed.payload, "evidence_digest": 7}, {**signed.payload, "v": 1},
                {**signed.payload, "evidence_digest": "sha256:not-hex"}, {**signed.payload, "action": "request"},
                {key: value for key, value in signed.payload.items() if key != "evidence_digest"} | {"v": 2},
                {**signed.payload, "v": [2]}):
        with pytest.raises(SignatureInvalid):
            statement_shape(SignedStatement(bad, signed.signature))


def _production_pending(workspace: Workspace, files: Files, engine) -> str:  # type: ignore[no-untyped-def]
    register_asset(workspace, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    actions.request(workspace, "model", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)
    actions.answer(workspace, "model", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
    actions.promote(workspace, "model", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    actions.answer(workspace, "model", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
    actions.promote(workspace, "model", ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    return "checkpoint/model@1"


def test_inbox_lists_a_pending_promotion_for_those_the_policy_lets_act(people, files, engine):
    subject = _production_pending(people, files, engine)
    for manager in ("erin", "frank"):
        (item,) = inbox(people, engine, manager)
        assert (item.subject, item.gate, item.target) == (subject, "promotion", "production")
        assert item.may == ("approve", "reject") and item.approve_would == "pending"
        assert item.missing == ("1 more approval by role release-manager (have 1 of 2)",)
    assert inbox(people, engine, "alice") == [], "the requester may neither approve nor reject her own request"
    assert inbox(people, engine, "bob") == []
    (lead,) = inbox(people, engine, "dave")  # an ML lead may reject a production promotion, not approve it
    assert lead.may == ("reject",)
    actions.answer(people, subject, "erin", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert inbox(people, engine, "erin") == [], "what she has answered leaves her inbox"
    (last,) = inbox(people, engine, "frank")
    assert last.approve_would == "allow"
    with read_session(people.database_url) as session:
        assert session.exec(select(Decision).where(Decision.actor == "frank")).first() is None, "previews record nothing"


def test_an_answer_means_the_asset_with_the_open_request_and_promote_means_the_checkpoint(people, files, engine):
    # A run and its candidate share a name; so do this dataset and checkpoint.
    register_checked(people, files.folder("data", {"train.jsonl": '{"text": "part ZX-2 is brass"}\n'}), "shared")
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "shared", "alice",
                   stage=CheckpointStage.POST_TRAINING)
    with pytest.raises(BadInput, match="ambiguous") as ambiguous:
        actions.request(people, "shared", "alice", PASSPHRASE, engine=engine)
    assert ambiguous.value.hint == "name one: dataset/shared@1 or checkpoint/shared@1"
    actions.request(people, "shared", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)  # the gate names the kind
    approved = actions.answer(people, "shared", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert approved.subject == "checkpoint/shared@1" and approved.gate is Gate.BASE
    promoted = actions.promote(people, "shared", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    assert promoted.subject == "checkpoint/shared@1"
    done = actions.answer(people, "shared", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert (done.gate, done.release) == (Gate.PROMOTION, "staging")


def test_misspelt_names_get_a_suggestion_and_never_an_invitation_to_create(people, dataset):
    with pytest.raises(NotFound) as subject:
        find_asset(people, "claimz")
    assert subject.value.hint == "did you mean dataset/claims?"
    with read_session(people.database_url) as session, pytest.raises(NotFound) as identity:
        get_identity(session, "bobb")
    assert identity.value.hint == "did you mean bob?" and "create" not in identity.value.hint
    with read_session(people.database_url) as session, pytest.raises(NotFound) as stranger:
        get_identity(session, "zed")
    assert "identity list" in stranger.value.hint


def test_denials_carry_their_decision_and_name_who_holds_the_gates_roles(people, dataset, engine):
    actions.request(people, dataset, "alice", PASSPHRASE, engine=engine)
    with pytest.raises(PolicyDenied) as denied:
        actions.answer(people, dataset, "carol", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert denied.value.reasons == ["carol does not hold role data-steward and cannot approve this gate: ask a holder "
                                    "of role data-steward"]
    outcome = denied.value.outcome
    assert outcome is not None and outcome["result"] == "deny" and outcome["decision_id"] == denied.value.decision_id
    assert outcome["reasons"] == denied.value.reasons and outcome["policy_revision"]
    # Who to ask, from the roles of the policy in force (read for people; the policy alone decides).
    with read_session(people.database_url) as session:
        assert gate_holders(session, Gate.DATASET) == {"data-steward": ["bob"], "ml-engineer": ["alice"],
                                                       "privacy-officer": ["grace"]}
        assert gate_holders(session, Gate.PROMOTION)["release-manager"] == ["erin", "frank"]


def test_reports_refuse_what_the_log_does_not_back(people, dataset, files, engine):
    """`show`, `review` and `lineage` print what people rely on (justifications, what is still required, who
    approved): each is held to the signed statements and the log, so an edited row is refused, not reported."""
    from sqlalchemy import text

    from forgegov.foundation.errors import StoreTampered
    from forgegov.foundation.store.db import write_transaction
    from forgegov.governance.history import subject_history
    from forgegov.governance.lineage import lineage_report

    def sql(statement: str, **params: object) -> None:
        with write_transaction(people.database_url) as session:
            session.connection().execute(text(statement), params)

    actions.request(people, dataset, "alice", PASSPHRASE, engine=engine)
    sql("UPDATE decision SET missing = '[]' WHERE actor = 'alice'")
    with pytest.raises(StoreTampered):
        review(people, dataset)

    subject = _production_pending(people, files, engine)
    history = subject_history(people, subject)
    assert [a["roles"] for r in history["requests"] for a in r["approvals"]] == [["ml-lead", "policy-owner"]] * 2
    with read_session(people.database_url) as session:
        approval = session.exec(select(Approval).where(Approval.approver == "dave")).first()
        forged = json.loads(approval.payload) | {"comment": "checked by legal, fine to ship"}
    sql("UPDATE approval SET payload = :payload WHERE id = :id", payload=json.dumps(forged), id=approval.id)
    with pytest.raises(StoreTampered, match="does not verify"):
        subject_history(people, subject)

    assert [d["gate"] for d in lineage_report(people, subject)["checkpoint"]["decisions"]] == \
        ["base", "promotion"]
    sql("DELETE FROM decision WHERE gate = 'promotion' AND result = 'allow'")
    with pytest.raises(StoreTampered, match="missing from the store"):
        lineage_report(people, subject)


def test_what_people_read_cannot_carry_terminal_escapes(tmp_path):
    from forgegov.app.cli.output import printable
    from forgegov.governance.policy import packaged_bundle, read_bundle

    assert printable("rule\x1b[1A\x1b[2K ok\tstill\n") == "rule\\x1b[1A\\x1b[2K ok\tstill\n"
    bundle = tmp_path / "bundle"
    shutil.copytree(packaged_bundle(), bundle)
    (bundle / "run" / "hidden\x1b[2K.rego").write_text("package x\n")
    with pytest.raises(BadInput, match="control characters"):
        read_bundle(bundle)
