"""The data-quality gate end to end: checks on verified bytes become evidence, OPA decides on it, and the evidence
itself is tamper-evident (stored result ↔ its digest ↔ the audit entry that committed to it)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from forgegov.audit.operations import verify_workspace
from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.errors import DigestMismatch, NotFound, PolicyDenied, StoreTampered
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import Asset, AuditEntry, DatasetCheck, Decision
from forgegov.foundation.vocabulary import AssetKind, Classification, DatasetKind, DecisionResult, GateAction
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.evidence.data_quality import check_dataset
from forgegov.governance.history import subject_history
from forgegov.governance.identities import unlock
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.registry import find_asset, register_asset

from .conftest import PASSPHRASE, TEXT_DATA, register_checked

EVAL = DatasetSpec(DatasetKind.EVAL, Classification.PUBLIC)
CHAT = DatasetSpec(DatasetKind.SFT_CHAT, Classification.PROPRIETARY)
SENTENCE = "the warranty on part ZX-481 covers corrosion of the titanium housing for ten years from delivery"


def _jsonl(rows):
    return "".join(json.dumps(row) + "\n" for row in rows)


def _clean(n=40):
    return _jsonl({"text": f"Claim {i}: hinge ZX-{i} replaced under warranty after {i} days."} for i in range(n))


@pytest.fixture
def engine(people):
    with actions.policy_engine(people) as running:
        yield running


def _request(ws, subject, engine, actor="alice"):
    return actions.request(ws, subject, actor, PASSPHRASE, engine=engine)


def _approve(ws, subject, actor, engine, comment=""):
    return actions.answer(ws, subject, actor, PASSPHRASE, GateAction.APPROVE, engine=engine, comment=comment)


def _last_input(ws):
    with read_session(ws.database_url) as session:
        decision = session.exec(select(Decision).order_by(Decision.decided_at.desc())).first()  # type: ignore[attr-defined]
        return json.loads(decision.input)


def test_clean_dataset_approved_on_its_check(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    assert _request(people, "claims", engine).result is DecisionResult.PENDING
    done = _approve(people, "claims", "bob", engine)
    assert done.result is DecisionResult.ALLOW and done.state == "approved"
    [evidence] = _last_input(people)["evidence"]["data_quality"]
    with read_session(people.database_url) as session:
        stored = session.exec(select(DatasetCheck)).one()
        entry = session.get(AuditEntry, stored.audit_seq)
    assert evidence["result_digest"] == stored.result_digest == json.loads(entry.payload)["result_digest"]
    assert evidence["records"] == 40 and evidence["failed"] == [] and evidence["pii"]["rate"] == 0
    assert entry.action == "dataset.check" and entry.subject_digest == find_asset(people, "claims").digest


def test_unchecked_dataset_denied(people, files, engine):
    register_asset(people, AssetKind.DATASET, files.folder("d", {"a.jsonl": _clean()}), "claims", "alice",
                   dataset=TEXT_DATA)
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "claims", engine)
    assert denied.value.reasons == ["dataset claims v1 has no data-quality check on record: run "
                                    "`forgegov dataset check` on it, then ask again"]
    assert find_asset(people, "claims").state.value == "registered"


def test_pii_dataset_needs_the_privacy_officers_justified_approval(people, files, engine):
    rows = [{"text": f"Ticket {i}: unit ZX-{i} squeaks."
             + (f" Reply to customer{i}@example.com." if i % 10 == 3 else "")} for i in range(50)]
    outcome = register_checked(people, files.folder("d", {"t.jsonl": _jsonl(rows)}), "tickets")
    assert outcome.version == 1
    opened = _request(people, "tickets", engine)
    assert "1 more approval by role privacy-officer (have 0 of 1)" in opened.missing
    steward = _approve(people, "tickets", "bob", engine)
    assert steward.result is DecisionResult.PENDING and steward.state == "pending"
    assert any("pii findings in 5 of 50 records (10%" in m and "t.jsonl:4" in m for m in steward.missing)
    with pytest.raises(PolicyDenied) as unjustified:
        _approve(people, "tickets", "grace", engine)
    assert "must give a justification of at least 20 characters" in unjustified.value.reasons[0]
    assert find_asset(people, "tickets").state.value == "pending"
    done = _approve(people, "tickets", "grace", engine, comment="addresses are customers' own, under contract 7")
    assert done.result is DecisionResult.ALLOW and done.state == "approved"
    (request,) = subject_history(people, "tickets")["requests"]
    assert [(a["approver"], a["comment"]) for a in request["approvals"]] == [
        ("bob", ""), ("grace", "addresses are customers' own, under contract 7")]
    # Locations only: the address never reaches OPA's input or the log.
    with read_session(people.database_url) as session:
        texts = [d.input for d in session.exec(select(Decision))] + \
                [e.payload or "" for e in session.exec(select(AuditEntry))] + \
                [c.result for c in session.exec(select(DatasetCheck))]
    assert not any("example.com" in text for text in texts)
    assert load_dataset(people, "tickets", actor="alice", purpose="support-assistant SFT").num_rows == 50


def test_failed_schema_always_denies(people, files, engine):
    chat = register_checked(people, files.folder("d", {"c.jsonl": _jsonl([{"prompt": "hi"}] * 3)}), "chat",
                            spec=CHAT)
    assert chat.dataset_kind == "sft-chat"
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "chat", engine)
    assert any(r.startswith("dataset chat v1 failed the schema check (expect_column_to_exist on messages")
               for r in denied.value.reasons)


@pytest.mark.parametrize("eval_first", [True, False])
def test_contamination_denies_in_both_directions(people, files, engine, eval_first):
    train = files.folder("train", {"a.jsonl": _clean() + _jsonl([{"text": f"Note: {SENTENCE}."}])})
    held_out = files.folder("eval", {"e.jsonl": _jsonl([{"prompt": SENTENCE}, {"prompt": "what is a hinge?"}])})
    if eval_first:
        register_checked(people, held_out, "heldout", spec=EVAL)
        register_checked(people, train, "claims")
        subject, message = "claims", "dataset claims v1 overlaps dataset/heldout@1: 1 of 2 eval items (50%)"
    else:
        register_checked(people, train, "claims")
        register_checked(people, held_out, "heldout", spec=EVAL)
        subject, message = "heldout", "dataset heldout v1 overlaps dataset/claims@1: 1 of 2 eval items (50%)"
    with pytest.raises(PolicyDenied) as denied:
        _request(people, subject, engine)
    assert any(r.startswith(message) and "e.jsonl:1" in r for r in denied.value.reasons)


def test_a_check_edited_in_the_store_stops_the_gate(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    with write_transaction(people.database_url) as session:
        stored = session.exec(select(DatasetCheck)).one()
        result = json.loads(stored.result)
        result["quality"]["expectations"][0]["success"] = not result["quality"]["expectations"][0]["success"]
        stored.result = json.dumps(result)
        session.add(stored)
    with pytest.raises(StoreTampered, match="does not match its digest"):
        _request(people, "claims", engine)
    with read_session(people.database_url) as session:
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "gate.refused")).first() is not None


def _rewrite_result_consistently(session) -> DatasetCheck:  # type: ignore[no-untyped-def]
    stored = session.exec(select(DatasetCheck)).one()
    result = json.loads(stored.result)
    result["quality"]["records"] = 1
    stored.result, stored.result_digest = canonical_bytes(result).decode(), digest_of(result)
    session.add(stored)
    return stored


def test_a_check_whose_digest_and_entry_disagree_stops_the_gate(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    with write_transaction(people.database_url) as session:
        _rewrite_result_consistently(session)  # consistent row, but not what the log committed to
    with pytest.raises(StoreTampered, match="differs from what its audit entry .* committed to"):
        _request(people, "claims", engine)


def test_a_check_whose_row_and_audit_payload_were_both_rewritten_stops_the_gate(people, files, engine):
    # The insider edits the stored result, its digest, and the audit entry's payload and payload-digest column to
    # agree with each other; only the leaf (committed to by the Merkle tree and signed tree heads) still says no.
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    with write_transaction(people.database_url) as session:
        stored = _rewrite_result_consistently(session)
        entry = session.get(AuditEntry, stored.audit_seq)
        payload = {**json.loads(entry.payload), "result_digest": stored.result_digest}
        entry.payload = canonical_bytes(payload).decode()
        entry.payload_digest = digest_of(payload)
        session.add(entry)
    with pytest.raises(StoreTampered, match="no longer hashes to what the log committed to"):
        _request(people, "claims", engine)


def test_a_check_pointing_at_another_entry_stops_the_gate(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    with write_transaction(people.database_url) as session:
        stored = session.exec(select(DatasetCheck)).one()
        stored.audit_seq = 0
        session.add(stored)
    with pytest.raises(StoreTampered, match="has no matching dataset.check entry"):
        _request(people, "claims", engine)


def test_the_newest_check_decides(people, files, engine):
    train = files.folder("train", {"a.jsonl": _clean() + _jsonl([{"text": f"Note: {SENTENCE}."}])})
    register_checked(people, train, "claims")
    register_asset(people, AssetKind.DATASET, files.folder("eval", {"e.jsonl": _jsonl([{"prompt": SENTENCE}])}),
                   "heldout", "alice", dataset=EVAL)
    _request(people, "claims", engine)  # the first check predates the eval set: pending, not denied
    again = check_dataset(people, "dataset/claims", signer=unlock(people, "bob", PASSPHRASE))
    assert again.summary["contamination"]["compared"][0]["contaminated"] == 1
    with pytest.raises(PolicyDenied, match="approve"):
        _approve(people, "claims", "bob", engine)
    assert find_asset(people, "claims").state.value == "pending"


def test_check_refuses_bytes_changed_since_registration(people, files):
    folder = files.folder("d", {"a.jsonl": _clean()})
    register_asset(people, AssetKind.DATASET, folder, "claims", "alice", dataset=TEXT_DATA)
    (folder / "a.jsonl").write_text(_clean().replace("hinge", "Hinge", 1))
    with pytest.raises(DigestMismatch, match="a.jsonl"):
        check_dataset(people, "claims", signer=unlock(people, "alice", PASSPHRASE))
    with read_session(people.database_url) as session:
        assert session.exec(select(DatasetCheck)).first() is None


def test_check_is_in_the_verified_log(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    assert verify_workspace(people, []).entries >= 2


def test_check_by_unknown_identity_refused(people, files):
    register_asset(people, AssetKind.DATASET, files.folder("d", {"a.jsonl": _clean()}), "claims", "alice",
                   dataset=TEXT_DATA)
    with pytest.raises(NotFound):
        check_dataset(people, "claims", signer=unlock(people, "nobody", PASSPHRASE))


def test_check_of_a_dataset_whose_kind_was_erased_in_the_store_is_refused(people, files):
    register_asset(people, AssetKind.DATASET, files.folder("d", {"a.jsonl": _clean()}), "claims", "alice",
                   dataset=TEXT_DATA)
    with write_transaction(people.database_url) as session:
        # A row made to look written before migration 0003 gave datasets a kind: its registration entry says which
        # kind it was registered as (the suite it is checked with follows from it), so the edit is tampering.
        row = session.exec(select(Asset)).one()
        row.dataset_kind = None
        session.add(row)
    with pytest.raises(StoreTampered, match="differs from what its audit entry"):
        check_dataset(people, "claims", signer=unlock(people, "alice", PASSPHRASE))


def _hiding_findings(run_suite):  # type: ignore[no-untyped-def]
    """A modified client: the real suite, with every finding erased from what it reports."""
    def run(records, locations, kind):  # type: ignore[no-untyped-def]
        quality = run_suite(records, locations, kind)
        quality["sensitive"]["findings"] = {}
        for expectation in quality["expectations"]:
            expectation.update(success=True, unexpected_count=0, unexpected_percent=0.0, sample_locations=[])
        return quality
    return run


def test_a_clean_check_recorded_by_a_modified_client_hides_no_earlier_finding(people, files, engine, monkeypatch):
    # The attack as written: after a check found an e-mail, an SSN and a card number, a modified client records
    # "no findings" for the same bytes; the gate used to decide on that newest check alone.
    text = "Ticket: reach me at jane.doe@example.com, SSN 123-45-6789, card 4111 1111 1111 1111."
    register_checked(people, files.folder("d", {"a.jsonl": _clean() + _jsonl([{"text": text}])}), "tickets")
    from forgegov.governance.evidence import data_quality

    monkeypatch.setattr(data_quality, "run_suite", _hiding_findings(data_quality.run_suite))
    hidden = check_dataset(people, "tickets", signer=unlock(people, "alice", PASSPHRASE))
    assert hidden.summary["pii"]["findings"] == {} and hidden.summary["failed"] == []
    opened = _request(people, "tickets", engine)
    assert "1 more approval by role privacy-officer (have 0 of 1)" in opened.missing
    steward = _approve(people, "tickets", "bob", engine)
    assert steward.result is DecisionResult.PENDING and steward.state == "pending"
    assert any("pii findings in 1 of 41 records" in m for m in steward.missing), steward.missing


def test_a_check_moved_to_another_checkers_name_stops_the_gate(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": _clean()}), "claims")
    with write_transaction(people.database_url) as session:
        stored = session.exec(select(DatasetCheck)).one()
        stored.checked_by = "bob"
        session.add(stored)
    with pytest.raises(StoreTampered, match="is not what bob signed"):
        _request(people, "claims", engine)
