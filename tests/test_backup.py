"""A server's workspace backed up and restored: the restored log verifies and is exactly the one backed up; a
backup changed since it was made is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from forgegov.app.backup import backup, restore
from forgegov.app.workspace import init_workspace
from forgegov.audit.operations import verify_workspace
from forgegov.foundation.artifact_store import artifact_store
from forgegov.foundation.errors import AlreadyExists, DigestMismatch, SignatureInvalid
from forgegov.foundation.store.db import dispose_engines
from forgegov.foundation.vocabulary import GateAction
from forgegov.governance import actions
from forgegov.governance.replay import replay_decisions
from tests.conftest import PASSPHRASE, SQLITE_ONLY, register_checked


def _lose(workspace) -> Path:  # type: ignore[no-untyped-def]
    """The disaster: the server's folder and its store are gone (the folder is moved aside, for the fixture's own
    checks once the test is done; the PostgreSQL schema is dropped, and the restore recreates it)."""
    url = workspace.database_url
    dispose_engines()
    if not url.startswith("sqlite"):
        schema = url.rsplit("search_path%3D", 1)[1]
        engine = create_engine(make_url(url).set(query={}), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    aside = workspace.root.with_name("lost")
    workspace.root.rename(aside)
    return aside


def test_a_restored_server_verifies_and_holds_exactly_what_was_backed_up(people, files, tmp_path: Path) -> None:
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    actions.request(people, "claims", "alice", PASSPHRASE)
    actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE)
    blob = tmp_path / "shard.bin"
    blob.write_bytes(b"weights" * 1000)
    digest = artifact_store(people).put_file(blob)
    made = backup(people, tmp_path / "backup")
    before = verify_workspace(people)
    assert made["entries"] == before.entries
    with pytest.raises(AlreadyExists):
        backup(people, tmp_path / "backup")

    aside = _lose(people)
    restored, report = restore(tmp_path / "backup", tmp_path / "restored", people.config.audit.log_public_key)
    assert (report.entries, report.root) == (before.entries, before.root)
    assert verify_workspace(restored).root == before.root
    assert b"".join(artifact_store(restored).read_verified(digest)) == blob.read_bytes()
    assert replay_decisions(restored).differing == []
    # The restored server goes on deciding.
    register_checked(restored, files.folder("notes", {"train.jsonl": '{"text": "part ZX-9 is tin"}\n'}), "notes")
    assert actions.request(restored, "notes", "alice", PASSPHRASE).result.value == "pending"
    dispose_engines()
    if people.database_url.startswith("sqlite"):
        aside.rename(people.root)  # the fixture replays the original workspace at the end
    else:
        shutil.rmtree(aside)
        shutil.copytree(restored.root, people.root)


@SQLITE_ONLY
def test_a_backup_changed_since_it_was_made_is_refused(people, files, tmp_path: Path) -> None:
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    backup(people, tmp_path / "backup")
    key = people.config.audit.log_public_key
    signed = tmp_path / "backup" / "backup.json"
    original = signed.read_text()
    document = json.loads(original)
    keyfile = next(name for name in document["manifest"]["files"] if name.startswith("keys/"))
    (tmp_path / "backup" / keyfile).write_text("{}")
    with pytest.raises(DigestMismatch, match="changed since it was made"):
        restore(tmp_path / "backup", tmp_path / "restored", key)
    assert not (tmp_path / "restored").exists()

    # The configuration pointed at someone else's OPA, its hash recomputed in the manifest: the log key's signature
    # over the manifest no longer holds.
    config = tmp_path / "backup" / "forgegov.toml"
    config.write_text(config.read_text().replace('mode = "embedded"', 'mode = "url"\nurl = "http://203.0.113.9:8181"'))
    document["manifest"]["files"]["forgegov.toml"] = hashlib.sha256(config.read_bytes()).hexdigest()
    signed.write_text(json.dumps(document))
    with pytest.raises(SignatureInvalid, match="not signed by the log key"):
        restore(tmp_path / "backup", tmp_path / "restored", key)

    # Another server's intact backup is not this log's.
    other = init_workspace(tmp_path / "other")
    backup(other, tmp_path / "other-backup")
    with pytest.raises(SignatureInvalid, match="not signed by the log key"):
        restore(tmp_path / "other-backup", tmp_path / "restored", key)
    assert not (tmp_path / "restored").exists()
