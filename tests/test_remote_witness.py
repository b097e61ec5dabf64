"""Witnesses elsewhere (issue 15, deliverable 5): every tree head the log signs is handed, over C2SP tlog-witness, to
the witnesses configured, each run by someone else. Tested against litewitness (filippo.io/torchwood), an
implementation forgegov did not write: it accepts only a head a consistency proof shows extends the last it cosigned,
and its cosignatures verify under the key its operator published."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from forgegov.audit.log import consistency_proof, root_at, tree_size
from forgegov.audit.log_key import load_log_key, pinned_public_key
from forgegov.audit.note import Checkpoint, NoteError, open_checkpoint, sign_checkpoint, verify_cosignature
from forgegov.audit.operations import verify_workspace
from forgegov.audit.remote_witness import hand_over
from forgegov.audit.tree_heads import witness_notes
from forgegov.foundation.config import RemoteWitness, Workspace, write_config
from forgegov.foundation.errors import ConfigError
from forgegov.foundation.store.db import read_session
from forgegov.foundation.verifier_key import parse_verifier_key
from forgegov.foundation.vocabulary import GateAction
from forgegov.governance import actions
from tests.conftest import PASSPHRASE, SQLITE_ONLY, register_checked
from tests.server_support import free_port
from tests.witness_support import NAME, litewitness


def _with_witness(ws: Workspace, witness: RemoteWitness) -> Workspace:
    config = dataclasses.replace(ws.config, audit=dataclasses.replace(ws.config.audit, remote_witnesses=(witness,)))
    write_config(ws.root, config)
    return Workspace(ws.root, config)


def _root(ws: Workspace, size: int) -> bytes:
    with read_session(ws.database_url) as session:
        return root_at(session, size)


def _size(ws: Workspace) -> int:
    with read_session(ws.database_url) as session:
        return tree_size(session)


@SQLITE_ONLY
def test_every_tree_head_is_cosigned_by_a_witness_run_elsewhere(people: Workspace, files, tmp_path, caplog) -> None:
    with litewitness(tmp_path / "witness") as witness:
        witness.add_log(people.config.audit.origin, pinned_public_key(people))
        remote = RemoteWitness(witness.key, witness.url)
        ws = _with_witness(people, remote)
        folder = ws.remote_witness_dir(remote)
        register_checked(ws, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
        actions.request(ws, "claims", "alice", PASSPHRASE)
        first = _size(ws)
        # The second head is accepted only with a consistency proof from the first: litewitness checks it.
        actions.answer(ws, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
        second = _size(ws)
        notes = witness_notes(folder)
        assert second > first and first in [int(s.rsplit("/", 1)[1].split(".")[0]) for s, _ in notes]
        source, note = notes[-1]
        assert open_checkpoint(note, ws.config.audit.origin, pinned_public_key(ws)).size == second
        assert verify_cosignature(note, NAME, parse_verifier_key(witness.key).public_key) > 0
        report = verify_workspace(ws)
        assert report.witness_covered == second

        # A server that forgot what the witness holds (its folder lost) hands a head over from 0: the witness
        # answers with the size it holds (409), and the head is handed over again from there.
        key = load_log_key(ws)
        with read_session(ws.database_url) as session:
            size, root = tree_size(session), root_at(session, tree_size(session))
        honest = sign_checkpoint(Checkpoint(ws.config.audit.origin, size, root), ws.config.audit.origin,
                                 key.private_key)
        with read_session(ws.database_url) as session, \
                caplog.at_level(logging.INFO, logger="forgegov.audit.remote_witness"):
            cosigned = hand_over(remote, honest, size, 0,
                                 lambda old: consistency_proof(session, old, size) if old else [], lambda: size)
        assert verify_cosignature(cosigned, NAME, parse_verifier_key(witness.key).public_key)
        assert any(f"holds size {second}, not 0" in record.getMessage() for record in caplog.records)

        # A forked head (same log key, a root this log never had) is refused by the witness: loudly, not as an outage.
        forged = sign_checkpoint(Checkpoint(ws.config.audit.origin, size + 1, b"\x07" * 32), ws.config.audit.origin,
                                 key.private_key)
        with pytest.raises(NoteError, match="does not extend"):
            hand_over(remote, forged, size + 1, size, lambda old: [b"\x00" * 32], lambda: size + 1)
        # A witness holding a larger head of this log than this one (another writer handed it over meanwhile) is
        # not an alarm; one larger than the whole log is.
        smaller = sign_checkpoint(Checkpoint(ws.config.audit.origin, first, _root(ws, first)), ws.config.audit.origin,
                                  key.private_key)
        assert hand_over(remote, smaller, first, 0, lambda old: [], lambda: size) is None
        with pytest.raises(NoteError, match="more than this log has"):
            hand_over(remote, smaller, first, 0, lambda old: [], lambda: first)

    # The witness gone, the log goes on: the outage is logged, nothing is refused.
    register_checked(ws, files.folder("e", {"b.jsonl": '{"text": "y"}\n'}), "other")
    with caplog.at_level(logging.WARNING, logger="forgegov.audit.tree_heads"):
        actions.request(ws, "other", "alice", PASSPHRASE)
    assert any(NAME in record.getMessage() for record in caplog.records)


def test_a_witness_is_configured_by_its_verifier_key_and_reached_over_https() -> None:
    key = "witness.example/w+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with pytest.raises(ConfigError, match="key hash"):
        RemoteWitness(key, "https://w.example")
    with pytest.raises(ConfigError, match="not a verifier key"):
        RemoteWitness("witness.example/w", "https://w.example")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.foundation.verifier_key import ED25519, verifier_key

    public = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ConfigError, match="not a cosignature/v1 key"):
        RemoteWitness(verifier_key("w.example/x", ED25519, public), "https://w.example")
    cosigning = verifier_key("w.example/x", 0x04, public)
    for url in (f"http://192.0.2.1:{free_port()}", "http://localhost.evil.example", "http://localhost@evil.example",
                "ftp://w.example"):
        with pytest.raises(ConfigError, match="plain HTTP only to this machine"):
            RemoteWitness(cosigning, url)
    assert RemoteWitness(cosigning, "https://w.example").name == "w.example/x"


@SQLITE_ONLY
def test_members_check_the_witness_cosignatures_under_keys_they_pinned(people: Workspace, files, tmp_path,
                                                                        identity_key_files) -> None:
    """A member pins the witness's key from its operator when joining; `audit verify` on their machine checks the
    witness's cosignature on the newest tree head it holds, against the log they exported. A member who pinned
    another key under that witness's name is told the cosignature does not verify."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.app import member
    from forgegov.audit.verify import AuditIntegrityError
    from forgegov.foundation.verifier_key import COSIGNATURE, verifier_key
    from tests.server_support import give_key, running_server

    with litewitness(tmp_path / "witness") as witness:
        witness.add_log(people.config.audit.origin, pinned_public_key(people))
        ws = _with_witness(people, RemoteWitness(witness.key, witness.url))
        register_checked(ws, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
        actions.request(ws, "claims", "alice", PASSPHRASE)
        with running_server(ws) as url:
            bob = member.join(tmp_path / "bob-laptop", url, "bob", (witness.key,))
            give_key(bob, "bob", identity_key_files)
            report = member.verify_log(bob, "bob", PASSPHRASE)
            assert report.witness_covered == _size(ws) and report.witnessed == 1
            assert not any("has cosigned no tree head" in limit for limit in report.limits)
            other = verifier_key(NAME, COSIGNATURE, Ed25519PrivateKey.generate().public_key())
            mallory = member.join(tmp_path / "mallory-laptop", url, "bob", (other,))
            give_key(mallory, "bob", identity_key_files)
            with pytest.raises(AuditIntegrityError, match=f"no cosignature by witness {NAME}"):
                member.verify_log(mallory, "bob", PASSPHRASE)
            unknown = verifier_key("witness.example/other", COSIGNATURE, Ed25519PrivateKey.generate().public_key())
            carol = member.join(tmp_path / "carol-laptop", url, "bob", (unknown,))
            give_key(carol, "bob", identity_key_files)
            assert any("witness.example/other has cosigned no tree head" in limit
                       for limit in member.verify_log(carol, "bob", PASSPHRASE).limits)


def test_a_witness_that_never_answered_stops_nothing(people: Workspace, files, caplog) -> None:
    """Configured but unreachable from the start (or a workspace restored from a backup, whose witnesses start
    afresh): gates decide, the outage is logged, and `audit verify` passes with nothing of that witness to check."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forgegov.foundation.verifier_key import COSIGNATURE, verifier_key

    key = verifier_key("witness.example/down", COSIGNATURE, Ed25519PrivateKey.generate().public_key())
    ws = _with_witness(people, RemoteWitness(key, f"http://127.0.0.1:{free_port()}"))
    register_checked(ws, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with caplog.at_level(logging.WARNING, logger="forgegov.audit.tree_heads"):
        actions.request(ws, "claims", "alice", PASSPHRASE)
    assert any("witness.example/down" in record.getMessage() for record in caplog.records)
    assert verify_workspace(ws).entries == _size(ws)
