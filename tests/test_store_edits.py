"""Authority flows from signatures, not rows: the one-statement SQL edits that used to defeat the gates (issue 12,
attack 1), each reproduced as written and now refused with the row and the audit entry named."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from forgegov.foundation.crypto.keys import key_path
from forgegov.foundation.errors import AlreadyExists, StoreTampered
from forgegov.foundation.store.db import write_transaction
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.identities import create_identity
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.registry import find_asset, register_asset

from .conftest import PASSPHRASE, register_checked, tiny_checkpoint_files


def _sql(ws, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with write_transaction(ws.database_url) as session:
        session.connection().execute(text(statement), params)


@pytest.fixture
def engine(people):  # type: ignore[no-untyped-def]
    with actions.policy_engine(people) as running:
        yield running


def test_an_unapproved_dataset_set_approved_in_the_store_is_refused(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "never reviewed"}\n'}), "unapproved")
    _sql(people, "UPDATE asset SET state = 'approved' WHERE name = 'unapproved'")
    with pytest.raises(StoreTampered, match=r"dataset/unapproved@1 is approved .* entry \d+ \(dataset.register\), is "
                                            r"registered"):
        load_dataset(people, "dataset/unapproved", actor="alice", purpose="a run")
    with pytest.raises(StoreTampered):
        actions.request(people, "unapproved", "alice", PASSPHRASE, engine=engine)


def test_a_release_moved_in_the_store_is_refused(people, files, engine):
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    _sql(people, "UPDATE asset SET release = 'production' WHERE name = 'model'")
    with pytest.raises(StoreTampered, match="release production"):
        find_asset(people, "checkpoint/model")
    with pytest.raises(StoreTampered):
        actions.promote(people, "model", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)


def test_a_requester_rewritten_in_the_store_cannot_approve_their_own_request(people, files, engine):
    # bob (data steward) requests; the row is edited to say alice did, so that bob's own approval would pass the
    # policy's requester-is-not-approver rule.
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    actions.request(people, "claims", "bob", PASSPHRASE, engine=engine)
    _sql(people, "UPDATE gate_request SET requested_by = 'alice'")
    with pytest.raises(StoreTampered, match=r"differs from the statement that opened it \(signed by bob; the row says "
                                            "requested by alice"):
        actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert find_asset(people, "claims").state.value == "pending"


def test_a_revocation_cleared_in_the_store_does_not_bring_the_identity_back(people, files, engine):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    _sql(people, "UPDATE identity SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL "
                 "WHERE name = 'mallory'")
    with pytest.raises(StoreTampered, match=r"identity 'mallory' was revoked \(audit entry \d+\)"):
        actions.request(people, "claims", "mallory", PASSPHRASE, engine=engine)


def test_a_deleted_identity_cannot_be_created_again(people):
    _sql(people, "DELETE FROM identity WHERE name = 'carol'")
    key_path(people.keys_dir, "carol").unlink()
    with pytest.raises(AlreadyExists, match="names are never reused"):
        create_identity(people, "carol", "a new passphrase for carol")
    assert not key_path(people.keys_dir, "carol").exists()


def test_an_owner_rewritten_in_the_store_is_refused(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    _sql(people, "UPDATE asset SET owner = 'dave' WHERE name = 'claims'")
    with pytest.raises(StoreTampered, match="differs from what its audit entry .* committed to \\(owner\\)"):
        find_asset(people, "dataset/claims")


def test_audit_verify_refuses_a_name_created_twice(people):
    # What the insider would have to append to reuse a name: a second identity.create, now an integrity failure.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.audit.log import EntryDraft, append
    from forgegov.audit.operations import verify_workspace
    from forgegov.audit.verify import AuditIntegrityError
    from forgegov.foundation.crypto.signing import key_id_of, public_key_to_b64
    from forgegov.foundation.vocabulary import AuditAction

    public = Ed25519PrivateKey.generate().public_key()
    with write_transaction(people.database_url) as session:
        append(session, EntryDraft(actor="carol", action=AuditAction.IDENTITY_CREATE,
                                   payload={"name": "carol", "key_id": key_id_of(public),
                                            "public_key": public_key_to_b64(public)}))
    with pytest.raises(AuditIntegrityError, match="identity 'carol' is created a second time"):
        verify_workspace(people)


def test_audit_verify_names_every_row_that_differs_from_the_log(people, files, engine):
    # Before, `audit verify` passed after each of these edits: the log itself was intact.
    from forgegov.audit.operations import verify_workspace
    from forgegov.audit.verify import AuditIntegrityError

    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "unapproved")
    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    actions.revoke(people, "mallory", "left the company", "dave", PASSPHRASE)
    clean = verify_workspace(people)
    # Two assets, the dataset's check, the eight people and the policy activation; limits: no witness.
    assert clean.rows == 2 + 1 + 8 + 1 and clean.limits
    _sql(people, "UPDATE asset SET state = 'approved' WHERE name = 'unapproved'")
    _sql(people, "UPDATE asset SET release = 'production' WHERE name = 'model'")
    _sql(people, "UPDATE identity SET revoked_at = NULL WHERE name = 'mallory'")
    with pytest.raises(AuditIntegrityError) as caught:
        verify_workspace(people)
    message = caught.value.message
    assert message.startswith("3 store row(s) differ from the log")
    assert "(dataset/unapproved@1): state is 'approved', the log (entry" in message
    assert "(checkpoint/model@1): release is 'production'" in message
    assert "identity row 'mallory': revoked is False" in message


def test_an_approver_key_swapped_in_the_store_stops_the_quorum(people, files, engine):
    # erin's stored approval counts towards the production quorum only under the key the log bound to her name: a
    # row pointing her name at another key (to make a forged approval verify) stops the gate.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.foundation.crypto.signing import key_id_of, public_key_to_b64

    register_asset(people, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    actions.request(people, "model", "alice", PASSPHRASE, gate=Gate.BASE, engine=engine)  # no run made it
    actions.answer(people, "model", "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE, engine=engine)
    actions.promote(people, "model", ReleaseStage.STAGING, "alice", PASSPHRASE, engine=engine)
    actions.answer(people, "model", "dave", PASSPHRASE, GateAction.APPROVE, engine=engine)
    actions.promote(people, "model", ReleaseStage.PRODUCTION, "alice", PASSPHRASE, engine=engine)
    actions.answer(people, "model", "erin", PASSPHRASE, GateAction.APPROVE, engine=engine)
    other = Ed25519PrivateKey.generate().public_key()
    _sql(people, "UPDATE identity SET key_id = :key_id, public_key = :public_key WHERE name = 'erin'",
         key_id=key_id_of(other), public_key=public_key_to_b64(other))
    with pytest.raises(StoreTampered, match="identity 'erin'"):
        actions.answer(people, "model", "frank", PASSPHRASE, GateAction.APPROVE, engine=engine)
