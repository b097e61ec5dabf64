"""Signed notes and witness folders are parsed as strictly as the C2SP signed-note and tlog-checkpoint specs (and Go's
sumdb note package) require: what one parser reads differently from another is how a split view slips through."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forgegov.app.workspace import init_workspace
from forgegov.audit.log_key import load_log_key
from forgegov.audit.note import (
    SIG_COSIGNATURE,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    cosign,
    note_key_id,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_cosignature,
)
from forgegov.audit.operations import witness_copies
from forgegov.audit.tree_heads import hand_to_witness, sign_tree_head, witness_notes

ORIGIN = "example.com/log"
ROOT = bytes(range(32))
KEY = Ed25519PrivateKey.generate()


def _signed(body: str, name: str = ORIGIN, key: Ed25519PrivateKey = KEY) -> str:
    """A note over `body` exactly as given, with a valid signature: only the parser can refuse it."""
    blob = note_key_id(name, key.public_key(), SIG_ED25519) + key.sign(body.encode())
    return f"{body}\n\u2014 {name} {base64.b64encode(blob).decode()}\n"


def _body(size: str) -> str:
    return f"{ORIGIN}\n{size}\n{base64.b64encode(ROOT).decode()}\n"


def test_a_well_formed_checkpoint_opens():
    note = sign_checkpoint(Checkpoint(ORIGIN, 14, ROOT), ORIGIN, KEY)
    assert open_checkpoint(note, ORIGIN, KEY.public_key()) == Checkpoint(ORIGIN, 14, ROOT)
    assert open_checkpoint(_signed(_body(str(2**63 - 1))), ORIGIN, KEY.public_key()).size == 2**63 - 1


@pytest.mark.parametrize("size", ["²", "١٤", "１４", "014", "-1", "+14", "1_4", " 14", str(2**63), ""])
def test_a_size_off_the_grammar_is_refused_with_a_note_error(size):
    # '²' used to crash with a traceback; '١٤' was read as 14.
    with pytest.raises(NoteError, match="ASCII decimal below 2\\^63"):
        open_checkpoint(_signed(_body(size)), ORIGIN, KEY.public_key())


def test_a_note_splits_at_its_last_blank_line():
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, KEY)
    body, lines = parse_note(note)
    assert body == _body("3") and [line.name for line in lines] == [ORIGIN]
    # A blank line among the signatures moves the split: what precedes it is text, and no longer what was signed.
    doubled = note + "\n" + note.split("\n\n", 1)[1]
    assert parse_note(doubled)[0] == note
    with pytest.raises(NoteError):
        open_checkpoint(doubled, ORIGIN, KEY.public_key())


@pytest.mark.parametrize("name", ["example.com log", "example.com+log", "tab\tname", "nbsp\u00a0name"])
def test_key_names_hold_no_white_space_and_no_plus(name):
    with pytest.raises(NoteError, match="key name|control characters|not base64"):
        parse_note(_signed(_body("3"), name=name))
    with pytest.raises(NoteError, match="witness name"):
        cosign(sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, KEY), name, KEY, 1)


def test_at_most_one_hundred_signatures():
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, KEY)
    line = note.split("\n\n", 1)[1]
    assert len(parse_note(note + line * 99)[1]) == 100
    with pytest.raises(NoteError, match="at most 100 signatures"):
        parse_note(note + line * 100)


def test_a_crlf_note_is_refused_not_normalised():
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, KEY)
    with pytest.raises(NoteError, match="control characters"):
        open_checkpoint(note.replace("\n", "\r\n"), ORIGIN, KEY.public_key())


def test_cosignature_times_stay_below_two_to_the_63():
    witness = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, KEY)
    assert verify_cosignature(cosign(note, "w1", witness, 2**63 - 1), "w1", witness.public_key()) == 2**63 - 1
    with pytest.raises(NoteError, match="outside 0..2\\^63-1"):
        cosign(note, "w1", witness, 2**63)
    # A cosignature line carrying 2^64 - 1, validly signed: refused for its time, not accepted as a huge one.
    body = parse_note(note)[0]
    time = 2**64 - 1
    signature = witness.sign(f"cosignature/v1\ntime {time}\n".encode() + body.encode())
    blob = note_key_id("w1", witness.public_key(), SIG_COSIGNATURE) + struct.pack(">Q", time) + signature
    forged = note + f"\u2014 w1 {base64.b64encode(blob).decode()}\n"
    with pytest.raises(NoteError, match="above 2\\^63-1"):
        verify_cosignature(forged, "w1", witness.public_key())


@pytest.fixture
def witnessed(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    witness = tmp_path / "witness"
    hand_to_witness(ws, sign_tree_head(ws), witness)
    return ws, witness


@pytest.mark.parametrize("stray", ["README", "notes.txt", "x.note", "01.note", "-1.note"])
def test_a_stray_file_in_a_witness_folder_is_named(witnessed, stray):
    _, witness = witnessed
    (witness / "checkpoints" / stray).write_text("hello\n")
    with pytest.raises(NoteError, match=f"holds '{stray}'"):
        witness_notes(witness)


def test_an_undecodable_or_crlf_witness_note_is_an_integrity_error(witnessed):
    ws, witness = witnessed
    (path,) = (witness / "checkpoints").iterdir()
    text = path.read_bytes()
    path.write_bytes(text.replace(b"\n", b"\r\n"))
    (_, note), = witness_notes(witness)
    with pytest.raises(NoteError, match="control characters"):
        open_checkpoint(note, ws.config.audit.origin, load_log_key(ws).public_key)
    path.write_bytes(b"\xff" + text)
    with pytest.raises(NoteError, match="not UTF-8"):
        witness_notes(witness)


@pytest.mark.parametrize("state", ["[" * 100_000 + "]" * 100_000, "\xff", "[]", '{"origin": 1}'])
def test_a_broken_witness_state_is_an_integrity_error(witnessed, state):
    ws, witness = witnessed
    (witness / "witness.json").write_bytes(b"\xff" if state == "\xff" else state.encode())
    with pytest.raises(NoteError, match="witness state"):
        witness_copies([witness])
    with pytest.raises(NoteError, match="witness state"):
        hand_to_witness(ws, sign_tree_head(ws), witness)
