"""The team server: members on their own machines (separate workspaces, each with only its own key, no store) sign;
the server decides with its policy and OPA and answers with its log's signed tree head, which every member checks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from forgegov.app import member
from forgegov.app.member import Connection, ServerUnavailable
from forgegov.audit.log_view import LogForked, LogRolledBack
from forgegov.audit.operations import export_log, verify_workspace
from forgegov.audit.tree_heads import sign_tree_head
from forgegov.foundation.artifact_store import artifact_store
from forgegov.foundation.canonical import digest_of
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import (
    AuditConfig,
    ConfigError,
    ServerConfig,
    Workspace,
    WorkspaceConfig,
    write_config,
)
from forgegov.foundation.crypto.request_auth import HEADER, sign_request
from forgegov.foundation.crypto.signing import Purpose, sign
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    DigestMismatch,
    PolicyDenied,
    SignatureInvalid,
    StateConflict,
    Tampered,
    WorkspaceError,
)
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.db import dispose_engines, read_session
from forgegov.foundation.store.models import Decision
from forgegov.foundation.vocabulary import (
    AssetKind,
    CheckpointStage,
    Classification,
    DatasetKind,
    Gate,
    GateAction,
    ReleaseStage,
)
from forgegov.governance import actions
from forgegov.governance.actions import sign_prepared
from forgegov.governance.admin import AdminAct, make_admin_statement
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.identities import create_key_file, unlock_key_file
from forgegov.governance.jobs import run_job
from forgegov.governance.policy import policy_in_force
from forgegov.governance.registry import resolve
from tests.conftest import PASSPHRASE, SQLITE_ONLY, audit_entries, register_checked
from tests.s3_support import versitygw_binary
from tests.server_support import free_port, give_key, running_server


@contextmanager
def answers_changed(monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]) -> Iterator[None]:
    """The server's answers to the paths in CHANGES, changed as a lying server would change them, as they reach a
    member (what the member checks is all that stands between them and the lie)."""
    real = Connection.call

    def call(self, method, path, signer, **kwargs):  # type: ignore[no-untyped-def]
        answer = real(self, method, path, signer, **kwargs)
        # A key ending in "/" changes the answers under it (a job's status, by its id).
        key = next((k for k in changes if path == k or (k.endswith("/") and path.startswith(k))), None)
        return changes[key](answer) if key is not None else answer

    monkeypatch.setattr(Connection, "call", call)
    try:
        yield
    finally:
        monkeypatch.setattr(Connection, "call", real)


def _members(tmp_path: Path, url: str, names: tuple[str, ...], key_files: Path) -> dict[str, Workspace]:
    joined = {}
    for name in names:
        ws = member.join(tmp_path / f"{name}-laptop", url, name)
        give_key(ws, name, key_files)
        joined[name] = ws
    return joined


def test_members_sign_on_their_machines_and_the_server_decides(people: Workspace, identity_key_files: Path,
                                                               files, tmp_path: Path) -> None:
    asset = register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob", "mallory"), identity_key_files)
        alice, bob, mallory = laptops["alice"], laptops["bob"], laptops["mallory"]
        # A member's workspace has no store: nothing on it can change state but a statement the server decides.
        with pytest.raises(WorkspaceError, match="the server keeps the store"):
            alice.database_url  # noqa: B018

        pending = member.request(alice, "claims", "alice", PASSPHRASE, comment="for the claims CPT")
        assert (pending.result.value, pending.state) == ("pending", "pending")
        assert pending.missing

        shown = member.review(bob, "claims", None, "bob", PASSPHRASE)
        assert shown.subject_digest == asset.digest and shown.request["requested_by"] == "alice"
        with pytest.raises(StateConflict, match="changed since it was reviewed"):
            member.answer(bob, "claims", "bob", PASSPHRASE, GateAction.APPROVE, expect_digest="sha256:" + "0" * 64)
        approved = member.answer(bob, "claims", "bob", PASSPHRASE, GateAction.APPROVE, expect_digest=shown.digest,
                                 comment="checked the sample")
        assert (approved.result.value, approved.state) == ("allow", "approved")
        assert approved.evidence_digest == shown.digest

        # The policy decides on the server, and a denial comes back as one, with its recorded decision.
        with pytest.raises(PolicyDenied) as denied:
            member.withdraw(mallory, "claims", "mallory", PASSPHRASE, comment="no reason")
        assert denied.value.outcome is not None and denied.value.outcome["result"] == "deny"

        # Every member verifies the same log, on their own machine, under the key pinned when they joined.
        reports = [member.verify_log(ws, name, PASSPHRASE) for name, ws in laptops.items()]
        assert len({(r.entries, r.root) for r in reports}) == 1
        assert reports[0].statements >= 3 and reports[0].covered == reports[0].entries
        assert verify_workspace(people).root == reports[0].root


@SQLITE_ONLY  # who may send what is the server's check, the same on either store
def test_a_member_sends_only_what_they_signed(people: Workspace, identity_key_files: Path, files,
                                              tmp_path: Path) -> None:
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob"), identity_key_files)
        alice, bob = laptops["alice"], laptops["bob"]
        connection = Connection(alice)
        alice_key = unlock_key_file(alice, "alice", PASSPHRASE)
        bob_key = unlock_key_file(bob, "bob", PASSPHRASE)

        # bob relays a statement alice signed (captured, or handed to him): the server takes statements only from
        # their signer.
        prepared = member.prepare_remote(connection, alice_key, "claims", GateAction.REQUEST, None, None)
        statement = sign_prepared(alice_key, prepared, GateAction.REQUEST)
        with pytest.raises(SignatureInvalid, match="signed themselves"):
            Connection(bob).call("POST", "/v1/gate", bob_key,
                                 document={"payload": statement.payload, "signature": statement.signature})

        # A captured signed request sent again is refused; so is one whose body was changed after signing.
        body = json.dumps({"subject": "claims", "action": "request"}).encode()
        origin = alice.config.audit.origin
        header = sign_request(alice_key, origin, "POST", "/v1/prepare", body)
        first = httpx.post(url + "/v1/prepare", content=body, headers={HEADER: header})
        again = httpx.post(url + "/v1/prepare", content=body, headers={HEADER: header})
        assert first.status_code == 200
        assert again.status_code == 409 and "replay" in again.json()["error"]["message"]
        altered = httpx.post(url + "/v1/prepare", content=body.replace(b"claims", b"other"),
                             headers={HEADER: sign_request(alice_key, origin, "POST", "/v1/prepare", body)})
        assert altered.status_code == 409 and "another request" in altered.json()["error"]["message"]
        # A request signed for another server (a restored twin, a staging copy) is not this server's.
        elsewhere = httpx.post(url + "/v1/prepare", content=body, headers={
            HEADER: sign_request(alice_key, "forgegov.local/log/0123456789abcdef", "POST", "/v1/prepare", body)})
        assert elsewhere.status_code == 409 and "another server" in elsewhere.json()["error"]["message"]
        # A body larger than any request is refused before it is read.
        large = b"x" * (17 << 20)
        huge = httpx.post(url + "/v1/gate", content=large,
                          headers={HEADER: sign_request(alice_key, origin, "POST", "/v1/gate", large)})
        assert huge.status_code == 400 and "larger than" in huge.json()["error"]["message"]
        assert huge.headers.get("Forgegov-Log-Note")

        # Someone with a key but no enrolment learns nothing, not even members' names.
        stranger = member.join(tmp_path / "eve-laptop", url, "eve")
        create_key_file(stranger, "alicia", PASSPHRASE)
        with pytest.raises(SignatureInvalid, match="not signed by a member") as refused:
            member.whoami(stranger, "alicia", PASSPHRASE)
        assert "alice" not in (refused.value.hint or "") + refused.value.message
        # Nor does a stranger who names a member: the refusal is the same, whether the name exists or not.
        create_key_file(stranger, "alice", PASSPHRASE)
        with pytest.raises(SignatureInvalid) as named:
            member.whoami(stranger, "alice", PASSPHRASE)
        assert named.value.message == refused.value.message
        unsigned = httpx.post(url + "/v1/review", json={"subject": "claims"})
        assert unsigned.status_code == 409 and "not signed" in unsigned.json()["error"]["message"]


@SQLITE_ONLY
def test_a_rolled_back_or_forked_server_is_caught_on_the_next_call(workspace: Workspace, people: Workspace,
                                                                   identity_key_files: Path, files,
                                                                   tmp_path: Path) -> None:
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    register_checked(people, files.folder("notes", {"train.jsonl": '{"text": "part ZX-9 is tin"}\n'}), "notes")
    database = Path(people.database_url.removeprefix("sqlite:///"))
    port = free_port()
    with running_server(people, port) as url:
        alice = _members(tmp_path, url, ("alice",), identity_key_files)["alice"]
        member.whoami(alice, "alice", PASSPHRASE)
        source, copy = sqlite3.connect(database), sqlite3.connect(tmp_path / "backup.db")
        source.backup(copy)
        source.close()
        copy.close()
        member.request(alice, "claims", "alice", PASSPHRASE)
        seen = Connection(alice).view.seen()
    # The operator restores last night's backup: the log alice saw is longer than the one the server now has.
    dispose_engines()
    for journal in database.parent.glob(database.name + "-*"):
        journal.unlink()
    shutil.copyfile(tmp_path / "backup.db", database)
    with running_server(people, port) as url:
        with pytest.raises(LogRolledBack, match="rolled back"):
            member.whoami(alice, "alice", PASSPHRASE)
        # The server then grows past what alice saw with other entries: a different history (a fork).
        other = member.join(tmp_path / "alice-new-laptop", url, "alice")
        give_key(other, "alice", identity_key_files)
        member.request(other, "notes", "alice", PASSPHRASE)
        member.request(other, "claims", "alice", PASSPHRASE, comment="a different request")
        assert Connection(other).view.seen().size > seen.size
        with pytest.raises(LogForked, match="not an extension"):
            member.whoami(alice, "alice", PASSPHRASE)
    # What alice saw last is kept: the server cannot talk her out of it.
    assert Connection(alice).view.seen() == seen


@SQLITE_ONLY
def test_artifacts_are_verified_on_receipt_and_on_every_fetch(people: Workspace, identity_key_files: Path,
                                                              tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(member, "UPLOAD_CHUNK", 4096)
    blob = tmp_path / "shard-00.bin"
    blob.write_bytes(bytes(range(256)) * 100)  # 25,600 bytes: seven chunks
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob"), identity_key_files)
        alice, bob = laptops["alice"], laptops["bob"]
        key = unlock_key_file(alice, "alice", PASSPHRASE)
        digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()

        # An upload dropped after two chunks resumes from where the server says it stopped.
        connection = Connection(alice)
        connection.call("POST", f"/v1/artifacts/{digest}", key, document={"size": blob.stat().st_size})
        data = blob.read_bytes()
        connection.call("PUT", f"/v1/artifacts/{digest}?offset=0", key, content=data[:4096])
        with pytest.raises(StateConflict, match="has 4096 bytes") as retried:
            connection.call("PUT", f"/v1/artifacts/{digest}?offset=0", key, content=data[:4096])
        assert retried.value.hint == "resume from byte 4096"
        connection.call("PUT", f"/v1/artifacts/{digest}?offset=4096", key, content=data[4096:8192])
        # bob declares the same digest with a terabyte and writes at alice's offset: his upload is his own, and
        # neither blocks nor touches hers.
        bob_key = unlock_key_file(bob, "bob", PASSPHRASE)
        Connection(bob).call("POST", f"/v1/artifacts/{digest}", bob_key, document={"size": 1 << 40})
        with pytest.raises(StateConflict, match="has 0 bytes"):
            Connection(bob).call("PUT", f"/v1/artifacts/{digest}?offset=8192", bob_key, content=b"garbage")
        put = member.put_artifact(alice, blob, "alice", PASSPHRASE)
        assert put == {"digest": digest, "size": len(data), "sent": len(data) - 8192}

        # Bytes that do not hash to the digest named are discarded on receipt.
        wrong = "sha256:" + "ab" * 32
        connection.call("POST", f"/v1/artifacts/{wrong}", key, document={"size": 3})
        connection.call("PUT", f"/v1/artifacts/{wrong}?offset=0", key, content=b"abc")
        with pytest.raises(DigestMismatch, match="discarded"):
            connection.call("POST", f"/v1/artifacts/{wrong}/finish", key, document={})

        # Bytes are read by who uploaded every one of them, or through a fetch the policy allowed (and the log
        # records): bob, who only names the digest, is refused.
        with pytest.raises(StateConflict, match="no fetch by bob in the last day covers blob"):
            member.get_artifact(bob, digest, tmp_path / "bob" / "shard-00.bin", "bob", PASSPHRASE)
        fetched = member.get_artifact(alice, digest, tmp_path / "alice" / "shard-00.bin", "alice", PASSPHRASE)
        assert Path(fetched["path"]).read_bytes() == data

        # A blob changed in the store after receipt is refused by the member, and nothing is left behind.
        stored = people.artifacts_dir / "store" / "blobs" / "sha256" / digest[7:9] / digest[7:]
        stored.chmod(0o644)
        stored.write_bytes(data[:-1] + b"\x00")
        target = tmp_path / "alice" / "again.bin"
        with pytest.raises((DigestMismatch, member.ServerUnavailable)):
            member.get_artifact(alice, digest, target, "alice", PASSPHRASE)
        assert not target.exists() and not list(target.parent.glob(".again.bin*"))


@SQLITE_ONLY
def test_joining_pins_the_servers_log_and_refuses_a_server_without_one(people: Workspace, tmp_path: Path) -> None:
    with running_server(people) as url:
        joined = member.join(tmp_path / "laptop", url, "alice")
        assert joined.config.audit.origin == people.config.audit.origin
        assert joined.config.audit.log_public_key == people.config.audit.log_public_key
        assert joined.config.provenance.public_key == people.config.provenance.public_key
        note = json.loads((joined.root / "log-view.json").read_text())["note"]
        assert note.startswith(people.config.audit.origin + "\n")
        # A second workspace at the same place is refused, and a failed join leaves nothing behind.
        with pytest.raises(AlreadyExists, match="already a forgegov workspace"):
            member.join(tmp_path / "laptop", url)
    with pytest.raises(member.ServerUnavailable):
        member.join(tmp_path / "nowhere", url)
    assert not (tmp_path / "nowhere").exists()
    # Plain HTTP to another machine: anyone on the way could forge the answers.
    with pytest.raises(ConfigError, match="plain HTTP to another machine"):
        member.join(tmp_path / "remote", "http://192.0.2.1:8900")
    assert not (tmp_path / "remote").exists()


def test_a_new_member_is_enrolled_through_the_server_and_approves_from_their_laptop(
        workspace: Workspace, identity_key_files: Path, files, tmp_path: Path, monkeypatch) -> None:
    """Through the CLI, as people type it: bob joins and asks to be enrolled; dave and grace, policy owners each on
    their own machine, enrol him (the quorum of two); bob then approves alice's request. No one but the server
    touches the store."""
    from typer.testing import CliRunner

    from forgegov.app.cli.main import app
    from forgegov.governance.identities import create_identity

    for name in ("alice", "dave", "grace"):  # the team's first members, made on the server by its operator
        give_key(workspace, name, identity_key_files)
        create_identity(workspace, name, PASSPHRASE)
    register_checked(workspace, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def forgegov(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=True)
        if result.exit_code != 0:
            raise AssertionError(f"forgegov {' '.join(args)} exited {result.exit_code}: {result.output}"
                                 f"{result.exception!r}")
        return result.output

    with running_server(workspace) as url:
        for name in ("alice", "bob", "dave", "grace"):
            forgegov("init", "--dir", f"{name}-laptop", "--join", url, "--as", name)
        for name in ("alice", "dave", "grace"):
            give_key(member.load_member(tmp_path / f"{name}-laptop"), name, identity_key_files)
        forgegov("-w", "bob-laptop", "identity", "request", "bob", "--contact", "bob@example.com",
                 "-o", "bob.enrolment.json")
        waiting = json.loads(forgegov("-w", "dave-laptop", "identity", "enrol", "bob.enrolment.json", "--as", "dave",
                                      "--reason", "joins as data steward", "--json"))
        assert waiting["waiting"] and waiting["actor"] == "dave"
        assert "enrolled by grace" in forgegov("-w", "grace-laptop", "identity", "enrol", "bob.enrolment.json",
                                               "--as", "grace", "--reason", "agreed")
        forgegov("-w", "alice-laptop", "request", "claims", "--as", "alice")
        shown = json.loads(forgegov("-w", "bob-laptop", "review", "claims", "--json"))
        assert shown["request"]["requested_by"] == "alice"
        decided = json.loads(forgegov("-w", "bob-laptop", "approve", "claims", "--as", "bob", "--json",
                                      "--expect-digest", shown["digest"]))
        assert (decided["result"], decided["state"]) == ("allow", "approved")
        verified = json.loads(forgegov("-w", "bob-laptop", "audit", "verify", "--json"))
        assert verified["ok"] and verified["entries"] == verify_workspace(workspace).entries
        # Reads ask the server; a member's workspace has no store, and a command that still needs one says where
        # the store is.
        listed = json.loads(forgegov("-w", "bob-laptop", "list", "dataset", "--json"))
        assert [(r["name"], r["state"]) for r in listed] == [("claims", "approved")]
        refused = runner.invoke(app, ["-w", "bob-laptop", "identity", "list"])
        assert refused.exit_code != 0 and "the server keeps the store" in str(refused.exception)

        # bob rotates his own key from his laptop: made there, bound by the server, swapped in once logged.
        monkeypatch.setenv("FORGEGOV_NEW_PASSPHRASE", "bob's new passphrase")
        bob_keys = tmp_path / "bob-laptop" / "keys"
        before = json.loads((bob_keys / "bob.key.json").read_text())["key_id"]
        rotated = json.loads(forgegov("-w", "bob-laptop", "identity", "rotate", "bob", "--as", "bob", "--reason",
                                      "new laptop", "--json"))
        assert rotated["target"]["key_id"] == json.loads((bob_keys / "bob.key.json").read_text())["key_id"] != before
        # Another's key is never made on the admin's machine.
        other = runner.invoke(app, ["-w", "dave-laptop", "identity", "rotate", "bob", "--as", "dave", "--reason", "x"])
        assert other.exit_code != 0 and "made on bob's machine" in str(other.exception)
        # grace revokes bob (one signer suffices to revoke, as shipped); his next signed call is refused.
        monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)
        assert "identity bob revoked by grace" in forgegov("-w", "grace-laptop", "identity", "revoke", "bob",
                                                           "--as", "grace", "--reason", "left the team")
        monkeypatch.setenv("FORGEGOV_PASSPHRASE", "bob's new passphrase")
        gone = runner.invoke(app, ["-w", "bob-laptop", "review", "claims", "--json"])
        assert gone.exit_code != 0 and "revoked" in str(gone.exception)
        monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)
        assert json.loads(forgegov("-w", "grace-laptop", "audit", "verify", "--json"))["ok"]


@pytest.mark.long
def test_the_teams_walkthrough_runs(tmp_path: Path) -> None:
    """docs/teams.md's walkthrough, as written, in one strict shell: a server and three people's machines."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "teams.md").read_text(encoding="utf-8")
    [walkthrough] = re.findall(r"```bash\n(.*?)```", text, re.S)
    script = walkthrough.replace("8931", str(free_port()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("FORGEGOV_HOME", "FORGEGOV_DATABASE_URL"):
        env.pop(name, None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script + "\nwait\n"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "server.log").read_text()
    assert "signed by dave (audit entry" in done.stdout and "bob enrolled by grace" in done.stdout
    assert "checked dataset/claims@1: 2 records" in done.stdout and "verified against sha256:" in done.stdout
    assert "dataset gate: approve on dataset/claims@1 allowed (state approved)" in done.stdout
    assert "audit log of http://127.0.0.1:" in done.stdout and "verified here" in done.stdout
    assert not list((tmp_path / "server" / "keys").glob("alice*")), "alice's key left the server"
    assert json.loads((tmp_path / "server-backup" / "backup.json").read_text())["manifest"]["log"]["size"] > 0


@pytest.mark.parametrize("unit", ["forgegov-server.service", "forgegov-s3.service", "forgegov-backup.service",
                                  "forgegov-backup.timer"])
def test_the_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    text = (Path(__file__).resolve().parents[1] / "deploy" / "systemd" / unit).read_text(encoding="utf-8")
    # Where this checkout installed the programs the units start (systemd checks that they exist).
    gateway = versitygw_binary() or Path(sys.executable)
    text = text.replace("/opt/forgegov/.venv/bin/forgegov", str(Path(sys.executable).with_name("forgegov")))
    text = text.replace("/opt/forgegov/bin/versitygw", str(gateway))
    (tmp_path / unit).write_text(text)
    done = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@SQLITE_ONLY
def test_a_members_audit_verify_refuses_an_export_of_another_history(people: Workspace, files, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """A server that replays the tree head a member saw (so the answer's own check passes) and exports a forked log
    under the same key: the export's first entries must have the root the member verified, and do not."""
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    dispose_engines()
    twin = Workspace(tmp_path / "twin", people.config)
    shutil.copytree(people.root, twin.root)  # same keys, same log so far
    actions.request(people, "claims", "alice", PASSPHRASE)
    seen = sign_tree_head(people)
    register_checked(twin, files.folder("notes", {"train.jsonl": '{"text": "part ZX-9 is tin"}\n'}), "notes")
    actions.request(twin, "notes", "alice", PASSPHRASE)
    actions.request(twin, "claims", "alice", PASSPHRASE, comment="another history")
    assert sign_tree_head(twin).head.size > seen.head.size
    export_log(twin, tmp_path / "forked.jsonl")
    dispose_engines()

    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "keys").mkdir()
    config = WorkspaceConfig(audit=AuditConfig(origin=people.config.audit.origin,
                                               log_public_key=people.config.audit.log_public_key),
                             server=ServerConfig(url="http://127.0.0.1:9"))
    write_config(laptop, config, create=True)
    bob = Workspace(laptop, config)
    Connection(bob).view.advance(seen.note, [])

    def replayed(self, method, path, signer, *, document=None, content=b"", sink=None):  # type: ignore[no-untyped-def]
        class Response:
            def iter_bytes(self):  # type: ignore[no-untyped-def]
                yield (tmp_path / "forked.jsonl").read_bytes()
        return sink(Response())

    monkeypatch.setattr(Connection, "call", replayed)
    monkeypatch.setattr(member, "_signer", lambda *args: None)
    with pytest.raises(LogForked, match="not the log this member verified"):
        member.verify_log(bob, "bob", PASSPHRASE)


@SQLITE_ONLY
def test_a_member_registers_a_dataset_the_server_checks_and_another_fetches_it(
        people: Workspace, identity_key_files: Path, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """alice's files go to the server's store; the server checks the bytes it holds (contamination against every
    dataset it has, which alice could not run); alice signs the check it computed. bob fetches exactly those bytes,
    and approves what he read."""
    spec = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)
    source = files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n',
                                     "more/extra.jsonl": '{"text": "part ZX-2 is brass"}\n'})
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob", "erin"), identity_key_files)
        alice, bob, erin = laptops["alice"], laptops["bob"], laptops["erin"]
        outcome = member.register_dataset(alice, source, "claims", spec, "alice", PASSPHRASE)
        assert outcome.dataset == "dataset/claims@1" and outcome.summary["records"] == 2
        fetched = member.fetch_dataset(bob, "claims", tmp_path / "bob-reads", "bob", PASSPHRASE,
                                       "review before approval")
        assert fetched["files"] == 2 and fetched["digest"] == outcome.dataset_digest
        # Who read it, which files, and why, is in the log: what a privacy officer answers from.
        (read,) = audit_entries(people, "asset.fetch")
        logged_fetch = json.loads(read.payload)
        assert (read.actor, read.subject_digest, logged_fetch["statement"]["reason"]) == (
            "bob", outcome.dataset_digest, "review before approval")
        assert len(logged_fetch["files"]) == 2
        # erin (a release manager) may not read proprietary data: the policy refuses, the log says so, and the
        # store does not serve her the files by digest either.
        with pytest.raises(PolicyDenied) as denied:
            member.fetch_dataset(erin, "claims", tmp_path / "erin-reads", "erin", PASSPHRASE)
        assert denied.value.reasons[0].startswith("erin may not fetch dataset/claims@1 (proprietary)")
        assert not (tmp_path / "erin-reads").exists()
        assert json.loads(audit_entries(people, "admin.denied")[-1].payload)["act"] == "asset.fetch"
        # A server answering that a fetch merely waits for more signers is caught: it serves or refuses a fetch in
        # the same call, never leaves it waiting.
        with answers_changed(monkeypatch, {"/v1/fetch": lambda a: {**a, "act": {**a["act"], "waiting": ["more"]}}}), \
                pytest.raises(Tampered, match="as waiting for more signers, which it never acts upon"):
            member.fetch_dataset(bob, "claims", tmp_path / "bob-again", "bob", PASSPHRASE, "again")
        with pytest.raises(StateConflict, match="no fetch by erin"):
            member.get_artifact(erin, logged_fetch["files"][0], tmp_path / "erin.bin", "erin", PASSPHRASE)
        # Nor may she register those files (whose digests `show` lists) as a public dataset of her own to read them.
        copied = build_manifest(source).to_document()
        copied["files"] = [{**entry, "path": f"copy/{entry['path']}"} for entry in copied["files"]]
        erin_key = unlock_key_file(erin, "erin", PASSPHRASE)
        with pytest.raises(StateConflict, match="no fetch by erin"):
            Connection(erin).call("POST", "/v1/datasets/prepare", erin_key, document={
                "name": "copy", "kind": "pretraining-text", "classification": "public", "manifest": copied})
        assert (tmp_path / "bob-reads" / "more" / "extra.jsonl").read_bytes() == \
            (source / "more" / "extra.jsonl").read_bytes()
        member.request(alice, "claims", "alice", PASSPHRASE)
        shown = member.review(bob, "claims", None, "bob", PASSPHRASE)
        assert shown.evidence["data_quality"][0]["checked_by"] == "alice"
        approved = member.answer(bob, "claims", "bob", PASSPHRASE, GateAction.APPROVE, expect_digest=shown.digest)
        assert approved.state == "approved"

        # A modified client cannot make a check up: the server accepts a signature only over the result it computed.
        connection, key = Connection(alice), unlock_key_file(alice, "alice", PASSPHRASE)
        other = files.folder("notes", {"train.jsonl": '{"text": "part ZX-9 is tin"}\n'})
        manifest = build_manifest(other)
        member._upload(connection, key, other / "train.jsonl", f"sha256:{manifest.files[0].sha256}",
                       manifest.files[0].size)
        prepared = connection.call("POST", "/v1/datasets/prepare", key, document={
            "name": "notes", "kind": "pretraining-text", "classification": "proprietary",
            "manifest": manifest.to_document()})
        statement = {**prepared["statement"], "result_digest": "sha256:" + "0" * 64, "signer": "alice",
                     "key_id": key.key_id, "signed_at": now_rfc3339()}
        with pytest.raises(SignatureInvalid, match="not the check the server computed"):
            connection.call("POST", "/v1/datasets/register", key, document={
                "check_id": prepared["check_id"], "statement": statement,
                "signature": sign(key.private_key, Purpose.DATA_QUALITY, statement)})
        # A manifest whose paths leave the folder is refused before anything is written.
        escaping = manifest.to_document()
        escaping["files"][0]["path"] = "../../keys/alice.key.json"
        with pytest.raises(BadInput, match="would leave its folder"):
            connection.call("POST", "/v1/datasets/prepare", key, document={
                "name": "notes", "kind": "pretraining-text", "classification": "proprietary", "manifest": escaping})


@pytest.mark.long(2)
@SQLITE_ONLY  # runs, evaluations and the gates that read them run on both stores in test_runs.py and test_eval_runs.py
def test_a_team_trains_evaluates_and_promotes_from_their_own_machines(people: Workspace, tiny_family,
                                                                      identity_key_files: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """alice asks for a run from her laptop and dave approves it from his; the server trains it and signs its
    provenance with the platform key, which never leaves it; bob verifies that provenance on his machine against
    the candidate's bytes fetched from the store; the server evaluates the candidate; the promotion gate reads that
    evaluation. Each step's data as a member reads it is the server's own."""
    from forgegov.governance.runs.records import run_record
    from tests.runs_support import GENERAL, PROPRIETARY, approve, recipe_text, sentences, write_jsonl
    from tests.test_eval_runs import _governed_family

    labels = _governed_family(people, tiny_family[0], small=True)
    approve(people, labels["post"], Gate.BASE, "alice", "dave")
    for name, spec in (("claims", PROPRIETARY), ("general", GENERAL), ("replay", GENERAL)):
        register_checked(people, write_jsonl(tmp_path / name, sentences(name, 120, 1)), name, "alice", spec)
        approve(people, name, Gate.DATASET, "alice", "bob")
    recipe = tmp_path / "team-cpt.toml"
    recipe.write_text(recipe_text(name="team-cpt", base=labels["post"], max_steps=4), encoding="utf-8")
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob", "dave", "erin"), identity_key_files)
        alice, bob, dave = laptops["alice"], laptops["bob"], laptops["dave"]

        # Registered and requested, not trained: the run gate waits for an ML lead.
        asked = member.start_run(alice, recipe, "alice", lambda: PASSPHRASE, comment="claims CPT")
        assert (asked.registered, asked.state, asked.trained) == (True, "pending", None) and asked.missing
        again = member.start_run(alice, recipe, "alice", lambda: PASSPHRASE)
        assert (again.registered, again.state, again.missing) == (False, "pending", asked.missing)
        # A server that registered other bytes, or asks for a signature on another run, gets no signature.
        requests_before = len(audit_entries(people, "gate.run.request"))
        with answers_changed(monkeypatch, {"/v1/runs/register": lambda a: {**a, "digest": "sha256:" + "1" * 64}}), \
                pytest.raises(Tampered, match="not this recipe"):
            member.start_run(alice, recipe, "alice", lambda: PASSPHRASE)
        with answers_changed(monkeypatch, {"/v1/runs/register": lambda a: {**a, "state": "registered"},
                                           "/v1/prepare": lambda a: {**a, "digest": "sha256:" + "2" * 64}}), \
                pytest.raises(Tampered, match="asks for a signature on"):
            member.start_run(alice, recipe, "alice", lambda: PASSPHRASE)
        assert len(audit_entries(people, "gate.run.request")) == requests_before
        # Asking the server to train it anyway is refused before a process starts.
        alice_key, bob_key = unlock_key_file(alice, "alice", PASSPHRASE), unlock_key_file(bob, "bob", PASSPHRASE)

        def job_act(key, act: AdminAct, target: dict) -> dict:  # type: ignore[no-untyped-def]
            signed = make_admin_statement(key, act, target, "a reason")
            return {"payload": signed.payload, "signature": signed.signature}

        with pytest.raises(StateConflict, match="a run starts only once the run gate approved it"):
            Connection(alice).call("POST", "/v1/jobs", alice_key,
                                   document=job_act(alice_key, AdminAct.JOB_START, run_job(asked.run)))
        assert not (people.root / "jobs").exists()
        shown = member.review(dave, asked.run, None, "dave", PASSPHRASE)
        member.answer(dave, asked.run, "dave", PASSPHRASE, GateAction.APPROVE, expect_digest=shown.digest)

        # Approved, the run is still not anyone's to train: bob (a data steward) is refused by the policy, and the
        # refusal is logged; alice's signed start sent by bob, or a job act sent as a plain admin act, is refused.
        with pytest.raises(PolicyDenied, match="job.start by bob was denied") as denied:
            member._job(Connection(bob), bob_key, run_job(asked.run), "mine now", None)
        assert denied.value.reasons == ["bob may not start a job of kind run: only a holder of role ml-lead may, or "
                                        "who asked the run gate for the run; ask one of them"]
        assert [json.loads(e.payload)["act"] for e in audit_entries(people, "admin.denied")] == ["job.start"]
        with pytest.raises(SignatureInvalid, match="not another's"):
            Connection(bob).call("POST", "/v1/jobs", bob_key,
                                 document=job_act(alice_key, AdminAct.JOB_START, run_job(asked.run)))
        with pytest.raises(BadInput, match="a job is started at /v1/jobs"):
            Connection(alice).call("POST", "/v1/admin", alice_key,
                                   document=job_act(alice_key, AdminAct.JOB_START, run_job(asked.run)))
        assert not (people.root / "jobs").exists() and not audit_entries(people, "job.start")

        # alice's job, stopped: not by bob (the policy: who started it, or an ML lead), by alice herself. It records
        # that it stopped, and the run trains when it is started again.
        first = Connection(alice).call("POST", "/v1/jobs", alice_key,
                                       document=job_act(alice_key, AdminAct.JOB_START, run_job(asked.run)))
        job = int(first["job"]["id"])
        assert (job, first["job"]["actor"]) == (first["act"]["audit_seq"], "alice")
        with pytest.raises(PolicyDenied, match="job.cancel by bob was denied"):
            member.cancel_job(bob, job, "not mine to stop", "bob", PASSPHRASE)
        stopped = member.cancel_job(alice, job, "wrong mixture", "alice", PASSPHRASE)
        assert stopped["state"] == "failed" and stopped["id"] == str(job)
        assert [json.loads(e.payload)["job"] for e in audit_entries(people, "job.cancel")] == [job]

        phases: list[str] = []
        jobs: list[int] = []
        started = member.start_run(alice, recipe, "alice", lambda: PASSPHRASE,
                                   progress=lambda phase, *_rest: phases.append(phase), on_start=jobs.append)
        done = started.trained
        assert jobs and jobs[0] > job
        assert done is not None and done.status.value == "completed" and phases
        record = run_record(people, done.run_id)
        assert record["started_by"] == "alice" and record["candidate_digest"] == done.candidate_digest
        assert member.read(bob, "run.show", {"run": done.run_id}, "bob", PASSPHRASE) == json.loads(
            json.dumps(record))
        # A second start of a completed run is the server's refusal, as in a workspace of one.
        with pytest.raises(StateConflict, match="already completed"):
            member.start_run(alice, recipe, "alice", lambda: PASSPHRASE)
        assert not list((tmp_path / "alice-laptop" / "keys").glob("platform*"))

        # bob checks the provenance here: the platform key he pinned at join, the candidate's bytes hashed here.
        verified = member.verify_run(bob, done.run_id, "bob", PASSPHRASE)
        assert (verified["candidate_digest"], verified["verified"]) == (done.candidate_digest, True)

        # A server that shows other weights' manifest, or another run's provenance, is refused by bob's check.
        def reordered(answer: dict) -> dict:
            manifest = {**answer["candidate"]["manifest"], "files": answer["candidate"]["manifest"]["files"][::-1]}
            digest = digest_of(manifest)
            return {**answer, "candidate": {**answer["candidate"], "manifest": manifest, "digest": digest},
                    "run": {**answer["run"], "candidate_digest": digest}}

        with answers_changed(monkeypatch, {"/v1/runs/provenance": reordered}), \
                pytest.raises(Tampered, match="not the candidate"):
            member.verify_run(bob, done.run, "bob", PASSPHRASE)
        with answers_changed(monkeypatch, {"/v1/runs/provenance": lambda a: {
                **a, "run": {**a["run"], "run_id": "0" * 8 + a["run"]["run_id"][8:]}}}), \
                pytest.raises(SignatureInvalid, match="the signed provenance is of run"):
            member.verify_run(bob, done.run, "bob", PASSPHRASE)

        # bob may not add an evaluation the promotion gate would read (a tiny suite's would block the candidate).
        with pytest.raises(PolicyDenied) as denied:
            member.run_evaluation(bob, done.candidate, [labels["suite"]], "bob", PASSPHRASE, batch_size=64)
        assert denied.value.reasons[0].startswith("bob may not start a job of kind evaluation")
        evaluated = member.run_evaluation(alice, done.candidate, [labels["suite"]], "alice", PASSPHRASE,
                                          batch_size=64)
        assert (evaluated["candidate"]["digest"], evaluated["base"]["label"]) == (done.candidate_digest, labels["post"])
        assert member.read(bob, "eval.list", {"candidate": done.candidate}, "bob", PASSPHRASE) == [evaluated]

        # The promotion gate reads the evaluation the server recorded: whatever it decides, it cites that result.
        member.request(alice, done.candidate, "alice", PASSPHRASE, gate=Gate.BASE)
        member.answer(dave, done.candidate, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE)
        try:
            member.promote(alice, done.candidate, ReleaseStage.STAGING, "alice", PASSPHRASE)
        except PolicyDenied as denied:
            assert not any("has no drift evaluation" in r for r in denied.reasons), denied.reasons
        history = member.read(bob, "show", {"subject": done.candidate}, "bob", PASSPHRASE)
        assert any(d["gate"] == "promotion" for d in history["decisions"])
        with read_session(people.database_url) as session:
            decision = session.exec(select(Decision).where(Decision.gate == Gate.PROMOTION)).first()
        assert decision is not None
        cited = json.loads(decision.input)["evidence"]["evaluation"]["results"]
        assert [r["id"] for r in cited] == [evaluated["id"]]

        reports = [member.verify_log(ws, name, PASSPHRASE) for name, ws in laptops.items()]
        assert len({(r.entries, r.root) for r in reports}) == 1 and reports[0].root == verify_workspace(people).root

        # A member's read commands show the server's data, as a workspace of one shows its own.
        from typer.testing import CliRunner

        from forgegov.app.cli.main import app

        monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)

        def bobs(*args: str) -> Any:
            result = CliRunner().invoke(app, ["-w", str(bob.root), *args, "--json"])
            assert result.exit_code == 0, f"{args}: {result.output} {result.exception!r}"
            return json.loads(result.stdout)

        assert bobs("run", "show", done.run_id)["candidate_digest"] == done.candidate_digest
        assert [r["run_id"] for r in bobs("run", "list")] == [done.run_id]
        assert bobs("run", "verify", done.run_id)["verified"] is True
        assert [e["id"] for e in bobs("eval", "list")] == [evaluated["id"]]
        assert bobs("eval", "show", evaluated["id"])["statement"]["predicate"]["evaluation_id"] == evaluated["id"]
        assert done.candidate_digest in {r["digest"] for r in bobs("list", "checkpoint")}
        assert bobs("show", done.candidate)["asset"]["digest"] == done.candidate_digest
        assert bobs("lineage", done.candidate)["checkpoint"]["label"] == done.candidate
        assert isinstance(bobs("inbox", "--as", "erin"), list)

        # The candidate's weights changed in the server's store after signing: bob's check refuses them.
        weights = next(e for e in build_manifest(Path(record["output_dir"]) / "candidate").files
                       if e.path.endswith(".safetensors"))
        stored = artifact_store(people).backend._path(f"sha256:{weights.sha256}")  # type: ignore[attr-defined]
        stored.chmod(0o644)
        data = bytearray(stored.read_bytes())
        data[-1] ^= 1
        stored.write_bytes(bytes(data))
        with pytest.raises((DigestMismatch, ServerUnavailable)):
            member.verify_run(bob, done.run_id, "bob", PASSPHRASE)

        # A server that reports a kinder evaluation than the one the platform key signed is caught by alice.
        def kinder(answer: dict) -> dict:
            if answer.get("state") != "succeeded":
                return answer
            metrics = {name: {**m, "verdict": "non-inferior"} for name, m in answer["result"]["metrics"].items()}
            return {**answer, "result": {**answer["result"], "metrics": metrics}}

        with answers_changed(monkeypatch, {"/v1/jobs/": kinder}), \
                pytest.raises(Tampered, match="not the result the platform key signed"):
            member.run_evaluation(alice, done.candidate, [labels["suite"]], "alice", PASSPHRASE, batch_size=64)

        # So are kinder verdicts in what `eval list` and `eval show` read, summary or signed statement.
        def kinder_reads(answer: dict) -> dict:
            shown = answer["data"]
            for summary in shown if isinstance(shown, list) else [shown]:
                summary["metrics"] = {n: {**m, "verdict": "non-inferior", "adjusted_p": 0.0}
                                      for n, m in summary["metrics"].items()}
            return answer

        for name, arguments in (("eval.list", {"candidate": done.candidate}),
                                ("eval.show", {"evaluation": evaluated["id"]})):
            with answers_changed(monkeypatch, {"/v1/read": kinder_reads}), \
                    pytest.raises(Tampered, match="not the result the platform key signed"):
                member.read(bob, name, arguments, "bob", PASSPHRASE)
        with answers_changed(monkeypatch, {"/v1/read": lambda a: {"data": {**a["data"], "statement": {
                **a["data"]["statement"], "predicate": {**a["data"]["statement"]["predicate"], "design": {}}}}}}), \
                pytest.raises(Tampered, match="not the result the platform key signed"):
            member.read(bob, "eval.show", {"evaluation": evaluated["id"]}, "bob", PASSPHRASE)

        # A server that reports other orders than it logged for a job is caught before the member follows it.
        def other_orders(answer: dict) -> dict:
            return {**answer, "act": {**answer["act"], "target": {**answer["act"]["target"], "batch_size": 1}}}

        with answers_changed(monkeypatch, {"/v1/jobs": other_orders}), \
                pytest.raises(Tampered, match="on the target the server reported"):
            member.run_evaluation(alice, done.candidate, [labels["suite"]], "alice", PASSPHRASE, batch_size=64)


@SQLITE_ONLY  # what a member checks of the server's word; the store is the server's business
def test_an_outcome_the_log_does_not_hold_is_refused(people: Workspace, identity_key_files: Path, files,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that tells a member their statement was decided otherwise than it logged it, or points at another
    entry, is caught: the member asks for the entry and its inclusion proof under the tree head they verified."""
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with running_server(people) as url:
        alice = _members(tmp_path, url, ("alice",), identity_key_files)["alice"]
        honest = member.request(alice, "claims", "alice", PASSPHRASE)
        assert honest.state == "pending"
        for n, (change, found) in enumerate((
                (lambda a: {**a, "result": "allow", "state": "approved"}, "does not record the outcome"),
                (lambda a: {**a, "audit_seq": honest.audit_seq}, "does not record the outcome"),
                (lambda a: {**a, "audit_seq": 0}, "is not alice's gate.dataset.request"),
                (lambda a: {**a, "audit_seq": a["audit_seq"] + 1000}, "which its signed tree head does not cover"))):
            register_checked(people, files.folder(f"more-{n}", {"train.jsonl": f'{{"text": "part ZX-{n} is tin"}}\n'}),
                             f"more-{n}")
            with answers_changed(monkeypatch, {"/v1/gate": change}), pytest.raises(Tampered, match=found):
                member.request(alice, f"more-{n}", "alice", PASSPHRASE)


@SQLITE_ONLY
def test_two_starts_for_one_free_place_cannot_both_be_logged(people: Workspace) -> None:
    """The place for a job is taken before its start is decided and logged (a busy server spends nobody's quota),
    and held until its process starts: a second start asked meanwhile is refused before the policy is asked."""
    from forgegov.app.server.jobs import Jobs

    jobs = Jobs(people)
    with jobs.slot():
        with pytest.raises(StateConflict, match="the server is running 1 job"), jobs.slot():
            pass
    with jobs.slot():  # given back once the first start was done with (here: refused)
        pass


def test_members_register_checkpoints_and_propose_policies_from_their_machines(people: Workspace, files,
                                                                              identity_key_files: Path,
                                                                              tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """alice registers a checkpoint from her laptop: its files go to the store, the server registers them as hers
    (the same scan: safetensors only). dave proposes a policy change from his: the server checks the bundle, he
    signs its request, grace adopts it from hers. A lying server's answer, a registration of files one never
    uploaded (known by digest, or readable under a fetch grant), and a bundle with files no bundle holds are
    refused; a file the store already holds is registered by whoever sends its bytes again."""
    from tests.conftest import tiny_checkpoint_files
    from tests.test_policy_update import _edited_bundle

    checkpoint = files.folder("ckpt", tiny_checkpoint_files())
    bundle = _edited_bundle(people, tmp_path, lambda data: data["roles"].update({"heidi": ["data-steward"]}))
    register_checked(people, files.folder("claims", {"train.jsonl": '{"text": "part ZX-1 is steel"}\n'}), "claims")
    with running_server(people) as url:
        laptops = _members(tmp_path, url, ("alice", "bob", "dave", "grace"), identity_key_files)
        alice, bob, dave, grace = laptops["alice"], laptops["bob"], laptops["dave"], laptops["grace"]
        registered = member.register_asset(alice, AssetKind.CHECKPOINT, checkpoint, "model", "alice", PASSPHRASE,
                                           stage=CheckpointStage.CANDIDATE)
        assert registered["subject"] == "checkpoint/model@1"
        with read_session(people.database_url) as session:
            asset = resolve(session, "checkpoint/model@1")
        assert (asset.owner, asset.registered_by, asset.digest) == ("alice", "alice", registered["digest"])
        # dave's checkpoint shares every file but one with alice's: he sends those bytes again, and it is his.
        other = files.folder("ckpt2", {**tiny_checkpoint_files(), "README.md": "second\n"})
        with answers_changed(monkeypatch, {"/v1/assets/register": lambda a: {**a, "digest": "sha256:" + "3" * 64}}), \
                pytest.raises(Tampered, match="other files than the 3 sent, or under a digest"):
            member.register_asset(dave, AssetKind.CHECKPOINT, other, "fork", "dave", PASSPHRASE,
                                  stage=CheckpointStage.CANDIDATE)
        with read_session(people.database_url) as session:
            assert resolve(session, "checkpoint/fork@1").owner == "dave"
        # Knowing the files' digests (`show` lists them) is not holding them; nor is a fetch grant: bob may read
        # the claims dataset, but its file does not become a reward everyone may read.
        manifest = build_manifest(checkpoint).to_document()
        grace_key = unlock_key_file(grace, "grace", PASSPHRASE)
        with pytest.raises(StateConflict, match="grace has not uploaded"):
            Connection(grace).call("POST", "/v1/assets/register", grace_key, document={
                "kind": "checkpoint", "name": "mine", "manifest": manifest, "stage": "candidate", "parent": None})
        member.fetch_dataset(bob, "claims", tmp_path / "bob-reads", "bob", PASSPHRASE, "review")
        with pytest.raises(StateConflict, match="bob has not uploaded"):
            Connection(bob).call("POST", "/v1/assets/register", unlock_key_file(bob, "bob", PASSPHRASE), document={
                "kind": "reward", "name": "leak", "manifest": build_manifest(tmp_path / "bob-reads").to_document()})
        # A dataset or a run is registered through its own call, with its own checks.
        with pytest.raises(BadInput, match="through its own call"):
            Connection(alice).call("POST", "/v1/assets/register", unlock_key_file(alice, "alice", PASSPHRASE),
                                   document={"kind": "dataset", "name": "x", "manifest": manifest})
        # A bundle holding a file no bundle has is refused before anything is registered.
        (bundle / "README.md").write_text("notes\n")
        with pytest.raises(BadInput, match="exactly the files it reads"):
            member.register_asset(dave, AssetKind.POLICY, bundle, "policy", "dave", PASSPHRASE)
        assert not (people.artifacts_dir / "policy" / build_manifest(bundle).digest.removeprefix("sha256:")).exists()
        (bundle / "README.md").unlink()

        proposed = member.register_asset(dave, AssetKind.POLICY, bundle, "policy", "dave", PASSPHRASE)
        requested = member.request(dave, proposed["digest"], "dave", PASSPHRASE)
        assert requested.result.value == "pending"
        shown = member.review(grace, proposed["subject"], None, "grace", PASSPHRASE)
        adopted = member.answer(grace, proposed["subject"], "grace", PASSPHRASE, GateAction.APPROVE,
                                expect_digest=shown.digest)
        assert adopted.result.value == "allow"
        # A server asked about a bundle by its digest that prepares another is caught before anything is signed.
        with answers_changed(monkeypatch, {"/v1/prepare": lambda a: {**a, "digest": "sha256:" + "4" * 64}}), \
                pytest.raises(Tampered, match="not on " + proposed["digest"]):
            member.request(dave, proposed["digest"], "dave", PASSPHRASE)
    with read_session(people.database_url) as session:
        assert policy_in_force(session).digest == proposed["digest"]
    verify_workspace(people)
