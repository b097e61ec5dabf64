"""Holding what another party resolved to what a member signed: the references in a job's start or a fetch must
name the versions the server told the policy of (a member checks the server's answer with these, replay the log's),
and a result counts for a job only when it is that job's one result, of its orders."""

from __future__ import annotations

from forgegov.foundation.vocabulary import reference_names
from forgegov.governance.evaluations import EvalRecord, job_of
from forgegov.governance.fetches import fetch_reference_holds
from forgegov.governance.jobs import evaluation_job, run_job, signed_references_hold

DIGEST = "sha256:" + "ab" * 32


def test_a_reference_names_only_what_it_can_mean() -> None:
    assert reference_names("claims", "dataset/claims@3", DIGEST)
    assert reference_names("dataset/claims@3", "dataset/claims@3", DIGEST)
    assert reference_names("claims@3", "dataset/claims@3", DIGEST)
    assert reference_names("sha256:abab", "dataset/claims@3", DIGEST)
    assert not reference_names("claims@2", "dataset/claims@3", DIGEST)  # an exact version is held to
    assert not reference_names("notes", "dataset/claims@3", DIGEST)
    assert not reference_names("checkpoint/claims", "dataset/claims@3", DIGEST)
    assert not reference_names("sha256:abac", "dataset/claims@3", DIGEST)


def _asset(label: str) -> dict:
    return {"label": label, "digest": DIGEST, "state": "approved"}


def test_a_job_target_must_be_what_was_signed() -> None:
    signed = evaluation_job("ref-post", ["suite/drift@1"], None, 64)
    target = {"kind": "evaluation", "candidate": _asset("checkpoint/ref-post@1"), "base": None,
              "suites": [_asset("suite/drift@1")], "batch_size": 64, "recent": []}
    assert signed_references_hold(signed, target)
    for changed in ({"candidate": _asset("checkpoint/ref-mid@1")}, {"suites": [_asset("suite/easy@1")]},
                    {"suites": []}, {"suites": [_asset("suite/drift@1")] * 2}, {"base": _asset("checkpoint/x@1")},
                    {"batch_size": 1}, {"kind": "run"}):
        assert not signed_references_hold(signed, {**target, **changed}), changed
    assert not signed_references_hold(signed, {"kind": "evaluation"})  # malformed: never holds
    assert signed_references_hold(run_job("run/cpt@2"), {"kind": "run", "run": _asset("run/cpt@2")})
    assert not signed_references_hold(run_job("run/cpt@2"), {"kind": "run", "run": _asset("run/cpt@1")})


def test_a_fetch_target_must_be_what_was_signed() -> None:
    target = {"subject": "claims", "kind": "dataset", "asset": {**_asset("dataset/claims@3"), "kind": "dataset"}}
    assert fetch_reference_holds({"subject": "claims", "kind": "dataset"}, target)
    assert not fetch_reference_holds({"subject": "notes", "kind": "dataset"}, target)
    assert not fetch_reference_holds({"subject": "claims", "kind": "checkpoint"}, target)
    assert not fetch_reference_holds({"subject": "claims"}, {"subject": "claims"})


def test_a_result_counts_for_its_job_once_and_only_as_ordered(monkeypatch) -> None:
    """job_of reads the job's start from the log (`started`); here a stand-in gives alice's evaluation job 7."""
    from forgegov.governance import evaluations
    from forgegov.governance.job_entries import JobKind

    orders = {"candidate": "checkpoint/c@1", "suites": ["suite/s@1"], "base": None, "batch_size": 8}
    monkeypatch.setattr(evaluations, "started", lambda _session, job: ("alice", JobKind.EVALUATION, orders))

    def record(seq: int, job: int | None = 7, **changes) -> EvalRecord:  # type: ignore[no-untyped-def]
        predicate = {"evaluation_id": f"e{seq}", "job": job, "candidate": {"label": "checkpoint/c@1"},
                     "base": {"label": "checkpoint/p@1"}, "suites": [{"name": "suite/s@1"}], "batch_size": 8,
                     **changes}
        return EvalRecord(seq, "2026-12-02T00:00:00.000000Z", "alice", {"predicate": predicate})

    counted: set[int] = set()
    assert job_of(None, record(9), counted) == {"seq": 7, "started_by": "alice"}  # type: ignore[arg-type]
    assert job_of(None, record(10), counted) is None  # type: ignore[arg-type]  # a second result of job 7
    for other in (record(11, suites=[{"name": "suite/easy@1"}]), record(12, batch_size=1), record(5),
                  record(13, job=None), record(14, candidate={"label": "checkpoint/d@1"})):
        assert job_of(None, other, set()) is None, other.predicate  # type: ignore[arg-type]
    mallorys = EvalRecord(15, "t", "mallory", record(15).statement)
    assert job_of(None, mallorys, set()) is None  # type: ignore[arg-type]


def test_a_policy_change_ends_the_reads_the_old_policy_allowed(people, files, tmp_path) -> None:
    """bob's fetch lets him read the dataset's files for a day, unless the dataset's state changes (rejected) or the
    policy that allowed it is replaced (a role taken away, say): grants are for the asset as the policy in force saw
    it."""
    from forgegov.foundation.store.db import read_session
    from forgegov.foundation.vocabulary import GateAction
    from forgegov.governance import actions
    from forgegov.governance.actions import policy_engine
    from forgegov.governance.admin import AdminAct, make_admin_statement, submit_admin
    from forgegov.governance.fetches import covered
    from forgegov.governance.identities import unlock
    from tests.conftest import PASSPHRASE, register_checked
    from tests.test_policy_update import _edited_bundle, _propose, _require_privacy_officer

    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with policy_engine(people) as engine:
        fetched = submit_admin(people, engine, make_admin_statement(
            unlock(people, "bob", PASSPHRASE), AdminAct.FETCH, {"subject": "claims", "kind": "dataset"}, "review"))
    (blob,) = [f for f in _files_of(people, fetched.audit_seq)]
    with read_session(people.database_url) as session:
        assert covered(session, "bob", blob) and not covered(session, "erin", blob)
    # The dataset requested and rejected (for the PII it holds, say): the grant was for it as it was, registered.
    actions.request(people, "claims", "alice", PASSPHRASE)
    actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.REJECT)
    with read_session(people.database_url) as session:
        assert not covered(session, "bob", blob)
    with policy_engine(people) as engine:
        submit_admin(people, engine, make_admin_statement(
            unlock(people, "bob", PASSPHRASE), AdminAct.FETCH, {"subject": "claims", "kind": "dataset"}, "again"))
    with read_session(people.database_url) as session:
        assert covered(session, "bob", blob)
    proposal, _requested = _propose(people, _edited_bundle(people, tmp_path, _require_privacy_officer))
    actions.answer(people, proposal, "grace", PASSPHRASE, GateAction.APPROVE)
    with read_session(people.database_url) as session:
        assert not covered(session, "bob", blob)


def _files_of(workspace, seq: int) -> list[str]:  # type: ignore[no-untyped-def]
    import json

    from forgegov.foundation.store.db import read_session
    from forgegov.foundation.store.models import AuditEntry

    with read_session(workspace.database_url) as session:
        return json.loads(session.get(AuditEntry, seq).payload)["files"]


def test_a_fetch_moved_into_the_grant_window_by_an_sql_edit_is_tampering(people, files) -> None:
    """The grant window is read from the entry's time column; a stale fetch edited to look recent (an `UPDATE
    audit_entry SET time=...`) no longer matches its leaf, and reading through it is refused as tampering."""
    import pytest

    from forgegov.foundation.errors import StoreTampered
    from forgegov.foundation.store.db import read_session, write_transaction
    from forgegov.foundation.store.models import AuditEntry
    from forgegov.governance.actions import policy_engine
    from forgegov.governance.admin import AdminAct, make_admin_statement, submit_admin
    from forgegov.governance.fetches import covered
    from forgegov.governance.identities import unlock
    from tests.conftest import PASSPHRASE, register_checked

    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with policy_engine(people) as engine:
        fetched = submit_admin(people, engine, make_admin_statement(
            unlock(people, "bob", PASSPHRASE), AdminAct.FETCH, {"subject": "claims", "kind": "dataset"}, "review"))
    (blob,) = _files_of(people, fetched.audit_seq)
    with write_transaction(people.database_url) as session:
        entry = session.get(AuditEntry, fetched.audit_seq)
        entry.time = "2099-01-01T00:00:00.000000Z"
        session.add(entry)
    with read_session(people.database_url) as session, pytest.raises(StoreTampered, match="no longer hashes"):
        covered(session, "bob", blob)
