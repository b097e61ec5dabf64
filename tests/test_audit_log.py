"""The audit log under load and over time: concurrent writers, a killed writer, redaction, export, witnesses."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rfc8785
from sqlalchemy import select

from forgegov.app.workspace import init_workspace
from forgegov.audit.log import EntryDraft, append, canonical_leaf, consistency_proof, inclusion_proof, root_at
from forgegov.audit.merkle import verify_consistency, verify_inclusion
from forgegov.audit.note import NoteError
from forgegov.audit.operations import export_log, verify_export, verify_workspace
from forgegov.audit.tree_heads import hand_to_witness, sign_tree_head
from forgegov.audit.verify import AuditIntegrityError
from forgegov.foundation.config import load_workspace
from forgegov.foundation.errors import BadInput, StateConflict
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance import actions
from forgegov.governance.identities import create_identity

from . import merkle_reference as ref
from .conftest import PASSPHRASE, TEXT_DATA


def _append_n(ws, n: int, actor: str = "test") -> None:
    for i in range(n):
        with write_transaction(ws.database_url) as session:
            append(session, EntryDraft(actor=actor, action=AuditAction.DATASET_LOAD, payload={"i": i, "actor": actor}))


def _writer(root: str, actor: str, count: int, start) -> None:  # type: ignore[no-untyped-def]
    workspace = load_workspace(Path(root))
    start.wait(30)
    _append_n(workspace, count, actor)


def test_eight_processes_appending_at_once_stay_contiguous_and_verifiable(workspace):
    before = verify_workspace(workspace).entries
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_writer, args=(str(workspace.root), f"writer-{i}", 25, start))
               for i in range(8)]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(180)
        assert writer.exitcode == 0
    report = verify_workspace(workspace)
    assert report.entries == before + 8 * 25
    with read_session(workspace.database_url) as session:
        seqs = [s for (s,) in session.connection().execute(select(AuditEntry.seq).order_by(AuditEntry.seq))]
    assert seqs == list(range(report.entries))


CRASH_WRITER = """
import sys
from pathlib import Path
from forgegov.audit.log import EntryDraft, append
from forgegov.foundation.config import load_workspace
from forgegov.foundation.store.db import write_transaction
ws = load_workspace(Path(sys.argv[1]))
i = 0
while True:
    with write_transaction(ws.database_url) as session:
        append(session, EntryDraft(actor="crash", action="dataset.load", payload={"i": i, "pad": "x" * 200}))
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


def test_an_action_outside_the_vocabulary_is_refused_not_logged(workspace):
    with pytest.raises(ValueError, match="not a valid AuditAction"):
        with write_transaction(workspace.database_url) as session:
            append(session, EntryDraft(actor="mallory", action="dataset.approve-quietly", payload={}))  # type: ignore[arg-type]
    with read_session(workspace.database_url) as session:
        assert session.connection().execute(select(AuditEntry.seq).where(AuditEntry.actor == "mallory")).first() is None


def test_writer_killed_mid_append_leaves_a_verifiable_log(workspace):
    process = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(workspace.root)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    report = verify_workspace(workspace)
    assert report.entries > 20
    _append_n(workspace, 3)
    assert verify_workspace(workspace).entries == report.entries + 3


def test_proofs_from_stored_nodes_match_the_reference(workspace):
    _append_n(workspace, 37)
    with read_session(workspace.database_url) as session:
        leaves = [row[0].encode() for row in
                  session.connection().execute(select(AuditEntry.leaf).order_by(AuditEntry.seq))]
        size = len(leaves)
        for n in (1, 2, 5, 16, 17, size):
            root = root_at(session, n)
            assert root == ref.mth(leaves[:n])
            for index in (0, n // 2, n - 1):
                proof = inclusion_proof(session, index, n)
                assert proof == ref.path(index, leaves[:n])
                verify_inclusion(index, n, ref.leaf(leaves[index]), proof, root)
            for old in (1, 3, 8, n):
                if old <= n:
                    proof = consistency_proof(session, old, n)
                    verify_consistency(old, n, ref.mth(leaves[:old]), root, proof)


def test_redaction_keeps_the_tree_verifiable_and_is_logged(workspace):
    _append_n(workspace, 5)
    with read_session(workspace.database_url) as session:
        target = session.connection().execute(
            select(AuditEntry.seq).where(AuditEntry.action == AuditAction.DATASET_LOAD).limit(1)).scalar_one()
    checkpoint = sign_tree_head(workspace)
    create_identity(workspace, "grace", PASSPHRASE)  # a privacy officer in the shipped policy
    recorded = actions.redact(workspace, target, "GDPR art. 17 request 42", "grace", PASSPHRASE).audit_seq
    report = verify_workspace(workspace)
    # Two tree heads: the one signed before, and the one the redaction (a decided act, like a gate) signed after it.
    assert report.redacted == [target] and report.checkpoints == 2
    with read_session(workspace.database_url) as session:
        record = session.get(AuditEntry, recorded)
        assert record.action == "audit.redact" and json.loads(record.payload)["seq"] == target
        assert root_at(session, checkpoint.head.size) == checkpoint.head.root
    with pytest.raises(StateConflict):
        actions.redact(workspace, target, "again", "grace", PASSPHRASE)
    with pytest.raises(BadInput):
        actions.redact(workspace, target + 1, " ", "grace", PASSPHRASE)
    with write_transaction(workspace.database_url) as session:
        session.connection().execute(AuditEntry.__table__.update().where(AuditEntry.seq == target + 1)
                                     .values(payload=None))
    with pytest.raises(AuditIntegrityError, match=f"entry {target + 1}: payload is missing"):
        verify_workspace(workspace)


def test_export_verifies_offline_and_catches_edits(workspace, tmp_path):
    _append_n(workspace, 10)
    witness = tmp_path / "witness"
    hand_to_witness(workspace, sign_tree_head(workspace), witness)
    exported = tmp_path / "log.jsonl"
    count = export_log(workspace, exported)
    report = verify_export(exported, [witness])
    # The export ends at a tree head it signs itself: every entry is covered, witnessed or not.
    assert report.entries == count and report.checkpoints == 2 and report.witnessed == 1
    assert report.covered == count and report.limits == []
    lines = exported.read_text().splitlines()
    unsigned = tmp_path / "unsigned.jsonl"
    unsigned.write_text("".join(line + "\n" for line in lines if '"checkpoint"' not in line))
    with pytest.raises(AuditIntegrityError, match="covered by no signed tree head"):
        verify_export(unsigned, [])
    # A witness that holds a tree head covering the entries vouches for them instead.
    assert verify_export(unsigned, [witness]).covered == count
    lines[3] = lines[3].replace('\\"i\\":1', '\\"i\\":9')
    exported.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditIntegrityError, match="entry 2: payload does not match"):
        verify_export(exported, [witness])


def test_witness_refuses_rollback_and_inconsistent_history(workspace, tmp_path):
    witness = tmp_path / "witness"
    subprocess.run(["git", "init", "-q", str(witness)], check=True)
    _append_n(workspace, 4)
    small = sign_tree_head(workspace)
    _append_n(workspace, 4)
    large = sign_tree_head(workspace)
    hand_to_witness(workspace, large, witness)
    with pytest.raises(NoteError, match="rollback"):
        hand_to_witness(workspace, small, witness)
    log = subprocess.run(["git", "-C", str(witness), "log", "--oneline"], capture_output=True, text=True).stdout
    assert f"size {large.head.size}" in log
    other = init_workspace(tmp_path / "other")
    with pytest.raises(NoteError, match="under another key"):
        hand_to_witness(other, sign_tree_head(other), witness)


@pytest.mark.parametrize("value", ["plain", "quote\" back\\slash", "tab\tnewline\n\x00\x1f\x7f", "é ünï 中文 🙂",
                                   "\u2028\u2029", "</script>", "", None, 0, 2**53 - 1, -7])
def test_fast_leaf_encoding_is_rfc8785(value):
    fields = {"z": value, "a": "x", "seq": 12, "Ä": "non-ascii key", "_": None}
    assert canonical_leaf(fields) == rfc8785.dumps(fields)


def test_leaf_encoding_refuses_other_types():
    for bad in (1.5, True, [1], {"a": 1}):
        with pytest.raises(TypeError):
            canonical_leaf({"x": bad})


def test_checkpoints_follow_the_cadence(tmp_path, files):
    from forgegov.audit.note import parse_checkpoint, parse_note
    from forgegov.audit.tree_heads import stored_tree_heads
    from forgegov.foundation.vocabulary import AssetKind
    from forgegov.governance.identities import create_identity
    from forgegov.governance.registry import register_asset

    root = init_workspace(tmp_path / "ws").root
    config = root / "forgegov.toml"
    config.write_text(config.read_text().replace("checkpoint_every = 64", "checkpoint_every = 4"))
    ws = load_workspace(root)
    create_identity(ws, "alice", "a long enough passphrase")
    for i in range(5):
        register_asset(ws, AssetKind.DATASET, files.folder(f"d{i}", {"a.txt": str(i)}), f"d{i}", "alice", dataset=TEXT_DATA)
    sizes = [parse_checkpoint(parse_note(note)[0]).size for note in stored_tree_heads(ws)]
    assert sizes == [4]
    assert verify_workspace(ws).checkpoints == 1


def test_verify_says_what_it_could_not_prove(workspace, tmp_path):
    _append_n(workspace, 3)
    report = verify_workspace(workspace)
    assert report.covered == 0
    assert any("covered by no signed tree head" in limit for limit in report.limits)
    assert any("no witness copy was checked" in limit for limit in report.limits)
    witness = tmp_path / "witness"
    hand_to_witness(workspace, sign_tree_head(workspace), witness)
    _append_n(workspace, 2)
    report = verify_workspace(workspace, [witness])
    assert report.witness_covered == report.entries - 2
    assert report.limits == [f"entries {report.entries - 2}..{report.entries - 1} are covered by no signed tree head: "
                             "they could be changed or dropped without detection (`forgegov audit checkpoint`)",
                             f"entries {report.entries - 2}..{report.entries - 1} are past the newest witnessed tree "
                             "head: whoever holds the log key could rewrite them"]
