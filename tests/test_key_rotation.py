"""A name is bound to its first key for good; a new key for a name is a signed, policy-decided rotation (issue 12,
deliverable 1). What was signed before keeps verifying under the old key; open approvals by it stop counting."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from forgegov.audit.operations import verify_workspace
from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.audit.verify import AuditIntegrityError
from forgegov.foundation.config import Workspace, WorkspaceConfig
from forgegov.foundation.crypto.signing import key_id_of, public_key_to_b64
from forgegov.foundation.errors import BadInput, PolicyDenied, StoreTampered, WrongPassphrase
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.vocabulary import (
    AssetKind,
    AuditAction,
    CheckpointStage,
    DecisionResult,
    Gate,
    GateAction,
    ReleaseStage,
)
from forgegov.governance import actions
from forgegov.governance.admin import AdminAct, make_admin_statement
from forgegov.governance.identities import get_identity, unlock
from forgegov.governance.policy import AdoptionNotProven, policy_in_force
from forgegov.governance.registry import register_asset
from forgegov.governance.replay import replay_decisions

from .conftest import PASSPHRASE, audit_entries, register_checked, tiny_checkpoint_files

NEW = "a brand new passphrase for alice"


def _key_id(ws, name: str) -> str:  # type: ignore[no-untyped-def]
    with read_session(ws.database_url) as session:
        return get_identity(session, name).key_id


def test_alice_rotates_her_own_key_and_what_she_signed_before_still_verifies(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    actions.request(people, "claims", "alice", PASSPHRASE)
    old = _key_id(people, "alice")

    rotated = actions.rotate(people, "alice", NEW, "new laptop", "alice", PASSPHRASE)
    assert rotated.act is AdminAct.ROTATE and _key_id(people, "alice") != old
    assert unlock(people, "alice", NEW).key_id == _key_id(people, "alice")
    with pytest.raises(WrongPassphrase):
        unlock(people, "alice", PASSPHRASE)
    assert (people.keys_dir / f"alice+{old[:16]}.retired.key.json").exists()

    # The request alice signed with her old key is still hers: bob's approval decides it.
    assert actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE).result is DecisionResult.ALLOW
    report = verify_workspace(people)
    assert report.rows and not any("identity" in d for d in report.limits)
    replayed = replay_decisions(people)
    assert replayed.differing == [] and replayed.agreed == replayed.replayed == 3  # request, rotation, approval


def test_an_open_approval_by_a_rotated_key_no_longer_counts(people, files):
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    with actions.policy_engine(people) as engine:
        actions.request(people, "model", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)
        actions.answer(people, "model", "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE, engine=engine)
        actions.promote(people, "model", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
        actions.answer(people, "model", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
        actions.promote(people, "model", ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
        actions.answer(people, "model", "erin", PASSPHRASE, GateAction.APPROVE, engine=engine)
        actions.rotate(people, "erin", NEW, "key may have leaked", "erin", PASSPHRASE, engine=engine)
        after = actions.answer(people, "model", "frank", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert after.result is DecisionResult.PENDING and after.release == "staging"
    assert replay_decisions(people).differing == []


def test_mallory_cannot_rotate_alices_key_and_nothing_is_left_behind(people):
    old = _key_id(people, "alice")
    with pytest.raises(BadInput, match="alice's new key is made where alice holds it"):
        actions.rotate(people, "alice", NEW, "mine now", "mallory", PASSPHRASE)
    from forgegov.governance.identities import request_enrolment

    mallorys = people.root / "mallory-laptop"
    (mallorys / "keys").mkdir(parents=True)
    request = request_enrolment(Workspace(mallorys, WorkspaceConfig()), "alice", "alice@example.com", NEW)
    with pytest.raises(PolicyDenied, match="identity.rotate by mallory was denied"):
        actions.rotate(people, "alice", "", "mine now", "mallory", PASSPHRASE, request=request)
    assert _key_id(people, "alice") == old and not (people.keys_dir / "alice+next.key.json").exists()
    assert unlock(people, "alice", PASSPHRASE).key_id == old


def test_a_lost_key_is_rotated_by_two_policy_owners_onto_the_key_alice_made(people, tmp_path):
    """alice lost her laptop: on her new one she makes a key and a signed request; two policy owners (the shipped
    quorum) each sign the rotation onto that key. One alone changes nothing: otherwise one policy owner could bind a
    key of their own to alice's name and sign as her."""
    from forgegov.governance.identities import request_enrolment

    laptop = Workspace(tmp_path / "alice-new-laptop", WorkspaceConfig())
    (laptop.root / "keys").mkdir(parents=True)
    request = request_enrolment(laptop, "alice", "alice@example.com", NEW)
    old = _key_id(people, "alice")
    first = actions.rotate(people, "alice", "", "laptop lost", "dave", PASSPHRASE, request=request)
    assert first.waiting and _key_id(people, "alice") == old
    assert actions.rotate(people, "alice", "", "laptop lost", "dave", PASSPHRASE, request=request).waiting
    done = actions.rotate(people, "alice", "", "laptop lost", "grace", PASSPHRASE, request=request)
    assert done.waiting == () and _key_id(people, "alice") == request["payload"]["key_id"] != old
    assert not (people.keys_dir / "alice+next.key.json").exists()
    with pytest.raises(PolicyDenied, match="identity.rotate by mallory was denied"):
        actions.rotate(people, "bob", "", "x", "mallory", PASSPHRASE,
                       request=request_enrolment(laptop, "bob", "bob@example.com", NEW))
    verify_workspace(people)
    replayed = replay_decisions(people)
    assert replayed.differing == [] and replayed.agreed == replayed.replayed == 4  # 3 rotations asked, 1 denial


def test_a_waiting_signature_counts_only_for_what_its_signer_signed(people, tmp_path):
    """dave runs the server and holds the log key. grace signed bob's rotation, which waits. dave files her statement
    and signature a second time as a waiting act whose recorded question is a rotation of alice's key onto his own,
    then signs that rotation himself. Her signature does not count (she signed bob's, and only what a signer signed
    is matched), alice keeps her key, and `audit verify` names the entry that reused her act."""
    from forgegov.governance.identities import request_enrolment

    def laptop(name: str) -> Workspace:
        root = tmp_path / f"{name}-laptop"
        (root / "keys").mkdir(parents=True)
        return Workspace(root, WorkspaceConfig())

    bobs = request_enrolment(laptop("bob"), "bob", "bob@example.com", NEW)
    graces = actions.rotate(people, "bob", "", "lost laptop", "grace", PASSPHRASE, request=bobs)
    assert graces.waiting
    evil = request_enrolment(laptop("dave"), "alice", "alice@example.com", NEW)
    with read_session(people.database_url) as session:
        filed = json.loads(session.exec(text("SELECT payload FROM audit_entry WHERE seq = :s"),
                                        params={"s": graces.audit_seq}).one()[0])
    filed["decision"]["input"]["target"] = {"name": "alice", "key_id": evil["payload"]["key_id"]}
    filed["target"] = filed["decision"]["input"]["target"]
    with audited_transaction(people) as tx:
        tx.append(EntryDraft(actor="grace", action=AuditAction.ADMIN_PENDING, payload=filed))
    old = _key_id(people, "alice")
    assert actions.rotate(people, "alice", "", "mine", "dave", PASSPHRASE, request=evil).waiting
    assert _key_id(people, "alice") == old
    with pytest.raises(AuditIntegrityError, match="administrative act already used"):
        verify_workspace(people)


def test_a_rotation_killed_before_the_key_file_moved_is_finished_by_the_next_unlock(people, monkeypatch):
    from forgegov.governance import actions as actions_module

    monkeypatch.setattr(actions_module, "finish_rotation", lambda *_args: None)  # killed right after the commit
    actions.rotate(people, "alice", NEW, "new laptop", "alice", PASSPHRASE)
    assert (people.keys_dir / "alice+next.key.json").exists()
    assert unlock(people, "alice", NEW).key_id == _key_id(people, "alice")
    assert not (people.keys_dir / "alice+next.key.json").exists()


def test_a_key_swapped_in_the_store_is_not_a_rotation(people):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key()
    with write_transaction(people.database_url) as session:
        session.connection().execute(text("UPDATE identity SET key_id = :k, public_key = :p WHERE name = 'alice'"),
                                     {"k": key_id_of(other), "p": public_key_to_b64(other)})
    with pytest.raises(StoreTampered, match="identity 'alice': its row holds key .* but the log .* bound"):
        unlock(people, "alice", PASSPHRASE)


def _forge_rotation(ws, actor: str, *, signed: bool = True, claimed: str | None = None):  # type: ignore[no-untyped-def]
    """With the log key alone: bind a key the insider holds to alice's name, with `actor`'s own signed act (which the
    policy would refuse) and a decision claiming allow."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    mine = Ed25519PrivateKey.generate().public_key()
    public = public_key_to_b64(mine)
    statement = make_admin_statement(unlock(ws, actor, PASSPHRASE), AdminAct.ROTATE,
                                     {"name": "alice", "public_key": public}, "mine now")
    with read_session(ws.database_url) as session:
        in_force = policy_in_force(session)
    document = {"version": 1, "act": "identity.rotate", "now": statement.payload["signed_at"],
                "actor": {"name": claimed or actor, "key_id": statement.payload["key_id"]},
                "target": {"name": "alice", "key_id": key_id_of(mine)}, "reason": "mine now"}
    decision = {"allow": True, "reasons": [], "opa_decision_id": "forged", "policy_digest": in_force.digest,
                "policy_revision": in_force.revision, "input": document}
    with audited_transaction(ws) as tx:
        tx.session.connection().execute(text("UPDATE identity SET key_id = :k, public_key = :p WHERE name = 'alice'"),
                                        {"k": key_id_of(mine), "p": public})
        tx.append(EntryDraft(actor=actor, action=AuditAction.IDENTITY_ROTATE, payload={
            "name": "alice", "key_id": key_id_of(mine), "public_key": public, "previous_key_id": "x",
            "reason": "mine now", "decision": decision,
            **({"statement": statement.payload, "signature": statement.signature} if signed else {})}))


def test_a_rotation_appended_with_the_log_key_and_no_signed_act_binds_nothing(people, files):
    _forge_rotation(people, "mallory", signed=False)
    with pytest.raises(StoreTampered, match="the key rotation of 'alice' .* does not rest on a signed act"):
        unlock(people, "alice", PASSPHRASE)
    with pytest.raises(AuditIntegrityError, match="the administrative act carries no signed statement"):
        verify_workspace(people)


@pytest.mark.replay_objects
def test_a_rotation_signed_by_someone_the_policy_refuses_decides_nothing(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_rotation(people, "mallory")
    with pytest.raises(AdoptionNotProven, match="the key rotation at audit entry .* does not allow it "
                                                r"\(mallory may not identity.rotate"):
        actions.request(people, "claims", "bob", PASSPHRASE)
    [differs] = replay_decisions(people).differing
    assert differs["what"] == "identity.rotate" and differs["replayed"]["result"] == "deny"
    assert json.dumps(differs["subject"]).count("alice") == 1
    assert len(audit_entries(people, "identity.rotate")) == 1


def test_a_rotation_whose_recorded_question_is_not_the_signed_act_decides_nothing(people, files):
    # mallory signs the act; the input beside it claims alice rotated her own key, which the policy would allow.
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _forge_rotation(people, "mallory", claimed="alice")
    with pytest.raises(StoreTampered, match="the question put to the policy is not the act its actor signed"):
        actions.request(people, "claims", "bob", PASSPHRASE)
    with pytest.raises(AuditIntegrityError, match="is not what its signed act .* and its decision say"):
        verify_workspace(people)
