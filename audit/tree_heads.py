"""Signed tree heads: made on demand or every `audit.checkpoint_every` entries (see `recorder.py`), handed to witnesses.

A signed tree head is written as a C2SP checkpoint note (`note.py`), which is why the files, the table and the
setting keep that word; in code "checkpoint" means model weights, so here they are tree heads. A witness folder
(plain, or a git repository whose history then keeps every one) pins the log's key on first use, refuses a tree head
from another key, a smaller tree, or one that is not consistent with the last it holds (checked with a consistency
proof), and may cosign what it accepts with a witness identity's key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from forgegov.audit.log import consistency_proof, inclusion_proof, root_at, tree_size
from forgegov.audit.log_key import LogKey, load_log_key, pinned_public_key
from forgegov.audit.merkle import verify_consistency
from forgegov.audit.note import Checkpoint, NoteError, cosign, open_checkpoint, sign_checkpoint
from forgegov.audit.remote_witness import WitnessUnavailable, hand_over
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import public_key_to_b64
from forgegov.foundation.errors import BadInput, ForgegovError, NotFound
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.store.models import RECORD_VERSION, AuditEntry, AuditTreeHead
from forgegov.foundation.verifier_key import parse_verifier_key

_TREE_HEAD = AuditTreeHead.__table__  # type: ignore[attr-defined]
log = logging.getLogger(__name__)
WITNESS_STATE = "witness.json"
_DECIMAL_NAME = re.compile(r"(0|[1-9][0-9]{0,18})\Z", re.ASCII)


@dataclass(frozen=True)
class SignedTreeHead:
    head: Checkpoint
    note: str


def sign_tree_head(workspace: Workspace) -> SignedTreeHead:
    key = load_log_key(workspace)
    with write_transaction(workspace.database_url) as session:
        return _sign_and_store(session, key)


def _sign_and_store(session: Session, key: LogKey) -> SignedTreeHead:
    size = tree_size(session)
    checkpoint = Checkpoint(key.origin, size, root_at(session, size))
    note = sign_checkpoint(checkpoint, key.origin, key.private_key)
    session.connection().execute(insert(_TREE_HEAD), [{
        "record_version": RECORD_VERSION, "size": size, "root": checkpoint.root.hex(), "note": note,
        "created_at": now_rfc3339(),
    }])
    return SignedTreeHead(checkpoint, note)


def stored_tree_heads(workspace: Workspace, up_to: int | None = None) -> list[str]:
    """The stored signed tree heads, oldest first; with `up_to`, only those covering at most that many entries."""
    query = select(_TREE_HEAD.c.note).order_by(_TREE_HEAD.c.id)
    if up_to is not None:
        query = query.where(_TREE_HEAD.c.size <= up_to)
    with read_session(workspace.database_url) as session:
        return [row[0] for row in session.connection().execute(query)]


def witness_state(folder: Path) -> dict[str, Any] | None:
    """The witness folder's pin (origin, log key, cosigners), or None for a folder that has none yet."""
    path = folder / WITNESS_STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NoteError(f"witness state {path} is not readable JSON: {type(exc).__name__}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("origin"), str) \
            or not isinstance(state.get("log_public_key"), str) or not isinstance(state.get("cosigners", {}), dict):
        raise NoteError(f"witness state {path} must name origin and log_public_key (and cosigners as an object)")
    return state


def witness_notes(folder: Path) -> list[tuple[str, str]]:
    """The notes a witness folder holds, by size. Every file there must be `<size>.note` holding UTF-8 bytes, read
    as they are (a CRLF note is refused by the parser, not normalised on the way in)."""
    notes_dir = folder / "checkpoints"
    if not notes_dir.is_dir():
        return []
    notes = []
    for path in notes_dir.iterdir():
        if not path.is_file() or path.suffix != ".note" or not _DECIMAL_NAME.match(path.stem):
            raise NoteError(f"witness folder {notes_dir} holds {path.name!r}, which is not a <size>.note file",
                            hint="a witness folder holds only what forgegov wrote there; move the stray file away")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"witness note {path} is not UTF-8 (byte {exc.start})") from exc
        notes.append((int(path.stem), str(path), text))
    return [(source, text) for _, source, text in sorted(notes)]


def hand_to_witness(workspace: Workspace, signed: SignedTreeHead, folder: Path,
                    cosigner: Signer | None = None) -> Path:
    """Store `signed` in a witness folder after the checks a witness makes; cosign it when `cosigner` is given."""
    log_key = pinned_public_key(workspace)
    origin = workspace.config.audit.origin
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"witness {folder} is not a folder", hint="--witness names a folder (plain, or a git repository)")
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / WITNESS_STATE
    state = witness_state(folder) or {"origin": origin, "log_public_key": public_key_to_b64(log_key)}
    if state["origin"] != origin or state["log_public_key"] != public_key_to_b64(log_key):
        raise NoteError(f"witness {folder} holds checkpoints of {state['origin']} under another key: "
                        "refusing a checkpoint from a different log key")
    checkpoint = open_checkpoint(signed.note, origin, log_key)
    previous = witness_notes(folder)
    if previous:
        last = open_checkpoint(previous[-1][1], origin, log_key)
        if checkpoint.size < last.size:
            raise NoteError(f"witness {folder} already holds size {last.size}; size {checkpoint.size} is a rollback")
        with read_session(workspace.database_url) as session:
            proof = consistency_proof(session, last.size, checkpoint.size)
        verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
    note = signed.note
    if cosigner is not None:
        note = cosign(note, cosigner.name, cosigner.private_key, int(time.time()))
        state.setdefault("cosigners", {})[cosigner.name] = public_key_to_b64(cosigner.private_key.public_key())
    (folder / "checkpoints").mkdir(exist_ok=True)
    path = folder / "checkpoints" / f"{checkpoint.size}.note"
    path.write_text(note, encoding="utf-8")
    state_path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    if (folder / ".git").exists():
        _git_commit(folder, f"checkpoint {origin} size {checkpoint.size}")
    return path


def hand_to_witnesses(workspace: Workspace, signed: SignedTreeHead) -> list[Path]:
    """Give a new signed tree head to every configured witness that does not already hold a larger one (writers
    that commit concurrently may sign out of order; the larger head already covers the smaller): the witness
    folders, then the witnesses elsewhere, whose cosigned heads are kept in a folder each."""
    handed = []
    for folder in [workspace.root / w for w in workspace.config.audit.witnesses]:
        if _held(workspace, folder) >= signed.head.size:
            continue
        handed.append(hand_to_witness(workspace, signed, folder))
    for witness in workspace.config.audit.remote_witnesses:
        folder = workspace.remote_witness_dir(witness)
        held = _held(workspace, folder)
        if not witness.url:
            log.warning("witness %s has no url in this workspace's forgegov.toml: it is handed nothing", witness.name)
            continue
        if held >= signed.head.size:
            continue
        try:
            note = hand_over(witness, signed.note, signed.head.size, held,
                             lambda old: _proof(workspace, old, signed.head.size), lambda: _log_size(workspace))
        except WitnessUnavailable as exc:
            # A witness down does not stop the log: the next tree head is handed to it from where it stopped, and
            # `audit verify` shows how far each witness's cosignatures reach.
            log.warning("%s", exc.message)
            continue
        if note is not None:
            handed.append(_keep(workspace, folder, signed.head.size, note,
                                {witness.name: public_key_to_b64(parse_verifier_key(witness.key).public_key)}))
    return handed


def _log_size(workspace: Workspace) -> int:
    with read_session(workspace.database_url) as session:
        return tree_size(session)


def _held(workspace: Workspace, folder: Path) -> int:
    previous = witness_notes(folder) if folder.is_dir() else []
    if not previous:
        return 0
    return open_checkpoint(previous[-1][1], workspace.config.audit.origin, pinned_public_key(workspace)).size


def _proof(workspace: Workspace, old: int, new: int) -> list[bytes]:
    if old == 0:
        return []
    with read_session(workspace.database_url) as session:
        return consistency_proof(session, old, new)


def _keep(workspace: Workspace, folder: Path, size: int, note: str, cosigners: dict[str, str]) -> Path:
    """A cosigned tree head, kept in the witness's folder (one per witness key) as a folder witness keeps one
    (`witness_notes`): written whole or not at all, since every gate reads the newest."""
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    expected = {"origin": workspace.config.audit.origin,
                "log_public_key": public_key_to_b64(pinned_public_key(workspace)), "cosigners": cosigners}
    state = witness_state(folder)
    if state is not None and state != expected:
        raise NoteError(f"witness folder {folder} holds tree heads of another log, key or witness",
                        hint="move the folder away; it is not this log's")
    path = folder / "checkpoints" / f"{size}.note"
    for target, text in ((folder / WITNESS_STATE, json.dumps(expected, indent=2, sort_keys=True) + "\n"),
                         (path, note)):
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, target)
    return path


def check_against_witnesses(workspace: Workspace, session: Session) -> None:
    """NoteError (tampering) unless the store's log extends every configured witness's newest tree head: at least as
    many entries (else the store was rolled back, a database file restored from a copy, say), with the same root at
    the witnessed size (else the log was rewritten, with or without the log key). O(log n) stored nodes per witness,
    so every gate can afford it."""
    origin, log_key = workspace.config.audit.origin, pinned_public_key(workspace)
    size = tree_size(session)
    for folder in workspace.witness_dirs():
        notes = witness_notes(folder) if folder.is_dir() else []
        if not notes:
            continue
        source, text = notes[-1]
        witnessed = open_checkpoint(text, origin, log_key)
        if witnessed.size > size:
            raise NoteError(f"the audit log has {size} entries, but witness {folder} holds a tree head of "
                            f"{witnessed.size} ({source}): the store was rolled back",
                            hint="restore the store from the newest copy; `forgegov audit verify --witness` shows more")
        if root_at(session, witnessed.size) != witnessed.root:
            raise NoteError(f"the audit log's first {witnessed.size} entries do not hash to the root witness "
                            f"{folder} holds ({source}): the log was rewritten",
                            hint="run `forgegov audit verify --witness`")


def _git_commit(folder: Path, message: str) -> None:
    for args in (["add", "-A"], ["-c", "user.name=forgegov", "-c", "user.email=forgegov@localhost", "commit", "-q",
                                  "-m", message]):
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
        if done.returncode != 0 and "nothing to commit" not in done.stdout:
            raise BadInput(f"witness repository {folder}: git {args[-1]} failed: {done.stderr.strip()}")


def newest_head(workspace: Workspace, seen: int) -> tuple[str, list[bytes]]:
    """The newest signed tree head, covering every entry (one is signed and handed to the witnesses when the newest
    stored one lags), and a consistency proof to it from a tree of `seen` entries: what a team server attaches to each
    answer, so that its members check that the log only ever grew."""
    with read_session(workspace.database_url) as session:
        size = tree_size(session)
        row = session.connection().execute(
            select(_TREE_HEAD.c.size, _TREE_HEAD.c.note).order_by(_TREE_HEAD.c.size.desc()).limit(1)).first()
    if row is None or row[0] < size:
        signed = sign_tree_head(workspace)
        try:
            hand_to_witnesses(workspace, signed)
        except ForgegovError as exc:
            # The head is signed and stored whatever the witnesses say; the member is answered with it, and the
            # operator reads why a witness would not take it.
            log.error("a witness was not handed tree head %d: %s", signed.head.size, exc.message)
        head_size, note = signed.head.size, signed.note
    else:
        head_size, note = row[0], row[1]
    if not 0 < seen < head_size:
        return note, []  # nothing to prove from an empty tree; a member ahead of the server sees the rollback itself
    with read_session(workspace.database_url) as session:
        return note, consistency_proof(session, seen, head_size)


def included_entry(workspace: Workspace, seq: int, size: int) -> tuple[str, str | None, list[bytes]]:
    """Entry SEQ's leaf and payload as stored, and its inclusion proof in the tree of SIZE entries: what a team
    server hands a member who checks that an outcome they were told is the one the log holds."""
    with read_session(workspace.database_url) as session:
        if not 0 <= seq < size <= tree_size(session):
            raise BadInput(f"entry {seq} is not in a tree of {size} entries of this log")
        row = session.get(AuditEntry, seq)
        if row is None:
            raise NotFound(f"the log has no entry {seq}")
        return row.leaf, row.payload, inclusion_proof(session, seq, size)
