"""Enrolment: a member's key is bound to their name by an admin's signed act the policy decides, and only for a name
the policy lists, never by whoever claims the name first (issue 15: bob created `heidi` before heidi could)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from forgegov.audit.operations import verify_workspace
from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.audit.verify import AuditIntegrityError
from forgegov.foundation.clock import now, rfc3339
from forgegov.foundation.config import Workspace, WorkspaceConfig
from forgegov.foundation.crypto import keys as keys_module
from forgegov.foundation.crypto.signing import Purpose, key_id_of, public_key_to_b64, sign
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
    StateConflict,
    StoreTampered,
)
from forgegov.foundation.store.db import read_session
from forgegov.foundation.vocabulary import AuditAction, GateAction
from forgegov.governance import actions
from forgegov.governance.admin import AdminAct, make_admin_statement, submit_admin
from forgegov.governance.identities import (
    create_identity,
    enrolment_target,
    get_identity,
    read_enrolment_request,
    request_enrolment,
    unlock,
)
from forgegov.governance.policy import AdoptionNotProven, policy_in_force
from tests.conftest import PASSPHRASE, audit_entries, register_checked


def _laptop(tmp_path: Path, name: str) -> Workspace:
    """The new member's own machine: only their key folder matters here."""
    root = tmp_path / f"{name}-laptop"
    (root / "keys").mkdir(parents=True)
    return Workspace(root, WorkspaceConfig())


@pytest.fixture
def team(workspace: Workspace, identity_key_files: Path) -> Workspace:
    """A fresh team: dave and grace (policy owners) and alice exist; bob, whom the policy names a data steward, does
    not."""
    for name in ("dave", "grace", "alice", "mallory"):
        target = keys_module.key_path(workspace.keys_dir, name)
        shutil.copyfile(keys_module.key_path(identity_key_files, name), target)
        create_identity(workspace, name, PASSPHRASE)
    return workspace


def _arrive(team: Workspace, laptop: Workspace, name: str) -> None:
    """The enrolled member's key reaches the workspace the test acts in (in a team, they act from their laptop)."""
    shutil.copyfile(keys_module.key_path(laptop.keys_dir, name), keys_module.key_path(team.keys_dir, name))


def _enrol_by_two(team: Workspace, request: dict) -> None:
    """The shipped policy's quorum: two policy owners sign the same enrolment."""
    assert actions.enrol(team, request, "joins", "dave", PASSPHRASE).waiting
    assert not actions.enrol(team, request, "joins", "grace", PASSPHRASE).waiting


def test_two_policy_owners_enrol_a_listed_person_who_then_signs(team: Workspace, tmp_path: Path, files) -> None:
    laptop = _laptop(tmp_path, "bob")
    request = request_enrolment(laptop, "bob", "bob@example.com", PASSPHRASE)
    first = actions.enrol(team, request, "joins as data steward", "dave", PASSPHRASE)
    assert first.waiting == ("identity.enrol needs the signatures of 2 holders of role policy-owner on the same act; "
                             "signed so far by dave: another of them signs it too",)
    # One policy owner alone binds nothing, however often they sign.
    assert actions.enrol(team, request, "really", "dave", PASSPHRASE).waiting
    with read_session(team.database_url) as session, pytest.raises(NotFound):
        get_identity(session, "bob")
    outcome = actions.enrol(team, request, "agreed", "grace", PASSPHRASE)
    assert (outcome.act, outcome.actor, outcome.target["name"], outcome.waiting) == (AdminAct.ENROL, "grace", "bob",
                                                                                     ())
    [entry] = audit_entries(team, AuditAction.IDENTITY_ENROL)
    payload = json.loads(entry.payload)
    assert payload["contact"] == "bob@example.com" and entry.actor == "grace"
    assert [c["name"] for c in payload["decision"]["input"]["cosigners"]] == ["dave"]
    assert payload["decision"]["input"]["cosigners"][0]["seq"] == first.audit_seq
    assert len(audit_entries(team, AuditAction.ADMIN_PENDING)) == 2
    with read_session(team.database_url) as session:
        assert get_identity(session, "bob").key_id == request["payload"]["key_id"]

    _arrive(team, laptop, "bob")
    register_checked(team, files.folder("claims", {"t.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    actions.request(team, "claims", "alice", PASSPHRASE)
    approved = actions.answer(team, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
    assert approved.state == "approved"
    report = verify_workspace(team)
    assert report.statements >= 4

    # The name is bound for good: neither a second enrolment nor a first-come create takes it.
    again = request_enrolment(_laptop(tmp_path, "bob2"), "bob", "bob@evil.example", PASSPHRASE)
    with pytest.raises(AlreadyExists, match="'bob' already exists"):
        actions.enrol(team, again, "again", "dave", PASSPHRASE)
    with pytest.raises(AlreadyExists):
        create_identity(team, "bob", PASSPHRASE)


def test_a_quorum_counts_only_recent_signatures_of_active_holders(team: Workspace, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """dave's signature from more than the quorum window ago does not count, nor does one by a signer revoked since,
    nor one on another target (the same person under another contact)."""
    from forgegov.foundation.vocabulary import QUORUM_WINDOW
    from forgegov.governance import admin

    request = request_enrolment(_laptop(tmp_path, "bob"), "bob", "bob@example.com", PASSPHRASE)
    other = request_enrolment(_laptop(tmp_path, "bob2"), "bob", "bob@elsewhere.example", PASSPHRASE)
    assert actions.enrol(team, other, "joins", "dave", PASSPHRASE).waiting
    assert actions.enrol(team, request, "joins", "dave", PASSPHRASE).waiting
    later = now() + QUORUM_WINDOW + timedelta(hours=1)
    with monkeypatch.context() as patched:
        patched.setattr(admin, "now", lambda: later)
        patched.setattr(admin, "now_rfc3339", lambda: rfc3339(later))
        assert actions.enrol(team, request, "agreed", "grace", PASSPHRASE).waiting
    assert actions.revoke(team, "dave", "left the company", "grace", PASSPHRASE).waiting == ()
    assert actions.enrol(team, request, "agreed", "grace", PASSPHRASE).waiting
    assert audit_entries(team, AuditAction.IDENTITY_ENROL) == []
    verify_workspace(team)


def test_a_quorum_forged_in_the_store_or_with_the_log_key_is_caught(team: Workspace, tmp_path: Path) -> None:
    """grace alone, holding the store and the log key, wants bob enrolled. dave signed only erin's enrolment. She
    edits dave's waiting entry to read as one on bob's (the row no longer hashes to its leaf: refused at the
    decision); then she appends bob's enrolment under the log key, her own signed act and a decision counting dave's
    waiting signature on erin's as a cosigner: no decision is taken while the log holds it, and `audit verify` names
    the entry."""
    bob_laptop = _laptop(tmp_path, "bob")
    request = request_enrolment(bob_laptop, "bob", "bob@example.com", PASSPHRASE)
    other = request_enrolment(_laptop(tmp_path, "erin"), "erin", "erin@example.com", PASSPHRASE)
    waiting = actions.enrol(team, other, "joins", "dave", PASSPHRASE)
    requested = read_enrolment_request(request)
    bobs = {"name": "bob", "key_id": requested.key_id, "contact": requested.contact}
    with read_session(team.database_url) as session:
        original = session.exec(text("SELECT payload FROM audit_entry WHERE seq = :s"),
                                params={"s": waiting.audit_seq}).one()[0]
    edited = json.loads(original)
    edited["decision"]["input"]["target"] = bobs
    with audited_transaction(team) as tx:
        tx.session.connection().execute(text("UPDATE audit_entry SET payload = :p WHERE seq = :s"),
                                        {"p": json.dumps(edited), "s": waiting.audit_seq})
    with pytest.raises(StoreTampered, match="no longer hashes"):
        actions.enrol(team, request, "agreed", "grace", PASSPHRASE)
    with audited_transaction(team) as tx:
        tx.session.connection().execute(text("UPDATE audit_entry SET payload = :p WHERE seq = :s"),
                                        {"p": original, "s": waiting.audit_seq})

    target = {"name": "bob", "contact": requested.contact, "public_key": requested.public_key, "request": request}
    statement = make_admin_statement(unlock(team, "grace", PASSPHRASE), AdminAct.ENROL, target, "mine")
    with read_session(team.database_url) as session:
        in_force = policy_in_force(session)
    dave = {"name": "dave", "key_id": unlock(team, "dave", PASSPHRASE).key_id, "seq": waiting.audit_seq}
    document = {"version": 1, "act": "identity.enrol", "now": statement.payload["signed_at"],
                "actor": {"name": "grace", "key_id": statement.payload["key_id"]}, "target": bobs, "reason": "mine",
                "cosigners": [dave]}
    decision = {"allow": True, "reasons": [], "missing": [], "opa_decision_id": "forged",
                "policy_digest": in_force.digest, "policy_revision": in_force.revision, "input": document}
    with audited_transaction(team) as tx:
        tx.session.connection().execute(text(
            "INSERT INTO identity (record_version, name, key_id, public_key, created_at) "
            "VALUES (1, 'bob', :k, :p, :t)"), {"k": requested.key_id, "p": requested.public_key, "t": rfc3339(now())})
        tx.append(EntryDraft(actor="grace", action=AuditAction.IDENTITY_ENROL, payload={
            "name": "bob", "key_id": requested.key_id, "public_key": requested.public_key,
            "contact": requested.contact, "statement": statement.payload, "signature": statement.signature,
            "decision": decision}))
    with pytest.raises(StoreTampered, match="counted dave's signature .* toward its quorum"), \
            actions.policy_engine(team):
        pass  # opening the policy proves every enrolment the log holds
    with pytest.raises(AuditIntegrityError, match="as a cosigner of another act, signer, key or time"):
        verify_workspace(team)


def test_the_policy_decides_who_enrols_and_whom(team: Workspace, tmp_path: Path) -> None:
    bob = request_enrolment(_laptop(tmp_path, "bob"), "bob", "bob@example.com", PASSPHRASE)
    with pytest.raises(PolicyDenied) as denied:
        actions.enrol(team, bob, "let me in", "mallory", PASSPHRASE)
    assert denied.value.reasons == ["mallory may not identity.enrol: only a holder of role policy-owner may; ask one "
                                    "of them"]
    heidi = request_enrolment(_laptop(tmp_path, "heidi"), "heidi", "heidi@example.com", PASSPHRASE)
    with pytest.raises(PolicyDenied) as unlisted:
        actions.enrol(team, heidi, "new steward", "dave", PASSPHRASE)
    assert "heidi is not named in the policy's roles" in unlisted.value.reasons[0]
    assert len(audit_entries(team, AuditAction.ADMIN_DENIED)) == 2
    assert audit_entries(team, AuditAction.IDENTITY_ENROL) == []


def test_an_enrolment_rests_on_the_members_own_signed_request(team: Workspace, tmp_path: Path) -> None:
    request = request_enrolment(_laptop(tmp_path, "bob"), "bob", "bob@example.com", PASSPHRASE)
    # Someone swaps their own public key into bob's request: it no longer verifies under the key it names.
    swapped = json.loads(json.dumps(request))
    swapped["payload"]["public_key"] = public_key_to_b64(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SignatureInvalid):
        actions.enrol(team, swapped, "x", "dave", PASSPHRASE)
    # The admin's act names another contact than bob signed for.
    statement = make_admin_statement(unlock(team, "dave", PASSPHRASE), AdminAct.ENROL,
                                     {**enrolment_target(read_enrolment_request(request)),
                                      "contact": "attacker@example.com"}, "x")
    with actions.policy_engine(team) as engine, pytest.raises(SignatureInvalid, match="another name, contact"):
        submit_admin(team, engine, statement)
    # A key already bound to someone is not bound to a second name (their signatures would pass as the other's).
    alice_key = keys_module.decrypt_private_key(keys_module.read_key_file(team.keys_dir, "alice"), PASSPHRASE)
    payload = {**request["payload"], "name": "erin", "public_key": public_key_to_b64(alice_key.public_key()),
               "key_id": key_id_of(alice_key.public_key())}
    with pytest.raises(BadInput, match="already bound"):
        actions.enrol(team, {"payload": payload, "signature": sign(alice_key, Purpose.ENROLMENT, payload)}, "x",
                      "dave", PASSPHRASE)
    # A request signed weeks ago is not acted on.
    laptop = _laptop(tmp_path, "frank")
    stale = request_enrolment(laptop, "frank", "frank@example.com", PASSPHRASE)
    key = keys_module.decrypt_private_key(keys_module.read_key_file(laptop.keys_dir, "frank"), PASSPHRASE)
    old = {**stale["payload"], "signed_at": rfc3339(now() - timedelta(days=15))}
    with pytest.raises(BadInput, match="more than 14 days ago"):
        actions.enrol(team, {"payload": old, "signature": sign(key, Purpose.ENROLMENT, old)}, "x", "dave",
                      PASSPHRASE)
    assert audit_entries(team, AuditAction.IDENTITY_ENROL) == []


def _forge_enrolment(ws: Workspace, tmp_path: Path, *, valid_request: bool) -> None:
    """mallory, holding the log key and the store, appends an enrolment of a name of her own choosing (bob, a data
    steward) with her own signed act and a decision claiming allow."""
    request = request_enrolment(_laptop(tmp_path, "bob"), "bob", "mallory@example.com", PASSPHRASE)
    if not valid_request:
        request = {**request, "payload": {**request["payload"], "contact": "bob@example.com"}}
    target = {"name": "bob", "contact": request["payload"]["contact"], "public_key": request["payload"]["public_key"],
              "request": request}
    statement = make_admin_statement(unlock(ws, "mallory", PASSPHRASE), AdminAct.ENROL, target, "mine")
    with read_session(ws.database_url) as session:
        in_force = policy_in_force(session)
    document = {"version": 1, "act": "identity.enrol", "now": statement.payload["signed_at"],
                "actor": {"name": "mallory", "key_id": statement.payload["key_id"]},
                "target": {"name": "bob", "key_id": request["payload"]["key_id"], "contact": target["contact"]},
                "reason": "mine"}
    decision = {"allow": True, "reasons": [], "opa_decision_id": "forged", "policy_digest": in_force.digest,
                "policy_revision": in_force.revision, "input": document}
    with audited_transaction(ws) as tx:
        tx.session.connection().execute(text(
            "INSERT INTO identity (record_version, name, key_id, public_key, created_at) "
            "VALUES (1, 'bob', :k, :p, :t)"), {"k": request["payload"]["key_id"],
                                                "p": request["payload"]["public_key"], "t": rfc3339(now())})
        tx.append(EntryDraft(actor="mallory", action=AuditAction.IDENTITY_ENROL, payload={
            "name": "bob", "key_id": request["payload"]["key_id"], "public_key": request["payload"]["public_key"],
            "contact": target["contact"], "statement": statement.payload, "signature": statement.signature,
            "decision": decision}))


def test_an_enrolment_appended_with_the_log_key_on_a_forged_request_binds_nothing(team: Workspace,
                                                                                  tmp_path: Path) -> None:
    _forge_enrolment(team, tmp_path, valid_request=False)
    with pytest.raises(StoreTampered, match="the enrolment of 'bob' .* does not rest on a signed act"):
        unlock(team, "bob", PASSPHRASE)
    with pytest.raises(AuditIntegrityError, match="is not what its signed act"):
        verify_workspace(team)


@pytest.mark.replay_objects
def test_an_enrolment_the_policy_would_refuse_decides_nothing(team: Workspace, tmp_path: Path, files) -> None:
    register_checked(team, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_enrolment(team, tmp_path, valid_request=True)
    verify_workspace(team)  # every signature holds: only the policy, asked again, objects
    with pytest.raises(AdoptionNotProven, match=r"the enrolment at audit entry .* does not allow it "
                                                r"\(mallory may not identity.enrol"):
        actions.request(team, "claims", "alice", PASSPHRASE)


def test_a_request_refuses_a_contact_that_is_no_address(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a way to reach a person"):
        request_enrolment(_laptop(tmp_path, "bob"), "bob", "\x1b[2K", PASSPHRASE)


def test_once_the_log_enrols_no_key_is_bound_by_create(team: Workspace, tmp_path: Path) -> None:
    """carol is listed (reward reviewer) but not enrolled. Once bob's enrolment began the log's
    governed enrolment, neither `identity create` nor an insider appending an `identity.create` with the log key
    binds a key to her name; nor may anyone rotate onto bob's enrolled key."""
    laptop = _laptop(tmp_path, "bob")
    _enrol_by_two(team, request_enrolment(laptop, "bob", "bob@example.com", PASSPHRASE))
    with pytest.raises(StateConflict, match="only by a policy owner's signed enrolment"):
        create_identity(team, "carol", PASSPHRASE)

    bob_key = keys_module.decrypt_private_key(keys_module.read_key_file(laptop.keys_dir, "bob"), PASSPHRASE)
    onto_bobs = make_admin_statement(unlock(team, "alice", PASSPHRASE), AdminAct.ROTATE,
                                     {"name": "alice", "public_key": public_key_to_b64(bob_key.public_key())}, "x")
    with actions.policy_engine(team) as engine, pytest.raises(BadInput, match="already bound"):
        submit_admin(team, engine, onto_bobs)
    mine = Ed25519PrivateKey.generate().public_key()
    with audited_transaction(team) as tx:
        tx.session.connection().execute(text(
            "INSERT INTO identity (record_version, name, key_id, public_key, created_at) VALUES (1, 'carol', :k, :p, "
            ":t)"), {"k": key_id_of(mine), "p": public_key_to_b64(mine), "t": rfc3339(now())})
        tx.append(EntryDraft(actor="carol", action=AuditAction.IDENTITY_CREATE, payload={
            "name": "carol", "key_id": key_id_of(mine), "public_key": public_key_to_b64(mine)}))
    with read_session(team.database_url) as session, pytest.raises(StoreTampered, match="after the log began"):
        get_identity(session, "carol")
    with pytest.raises(AuditIntegrityError, match="after the log began enrolling"):
        verify_workspace(team)
