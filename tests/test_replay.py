"""`audit verify --replay`: every recorded decision re-evaluated with the real OPA under the policy recorded with it
(issue 12, attack 3: a fake decider is caught, each of its decisions named)."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from forgegov.app.workspace import init_workspace
from forgegov.foundation.errors import PolicyDenied, StoreTampered
from forgegov.foundation.store.db import write_transaction
from forgegov.foundation.vocabulary import DecisionResult, GateAction
from forgegov.governance import actions
from forgegov.governance.identities import create_identity
from forgegov.governance.replay import replay_decisions

from .conftest import PASSPHRASE, register_checked
from .test_cli import FORGEGOV


def test_every_decision_of_a_workspace_replays_to_what_was_recorded(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    with actions.policy_engine(people) as engine:
        actions.request(people, "claims", "alice", PASSPHRASE, engine=engine)
        with pytest.raises(PolicyDenied):
            actions.answer(people, "claims", "mallory", PASSPHRASE, GateAction.APPROVE, engine=engine)
        actions.answer(people, "claims", "bob", PASSPHRASE, GateAction.APPROVE, engine=engine)
    report = replay_decisions(people)
    assert (report.decisions, report.replayed, report.agreed, report.differing) == (3, 3, 3, [])
    assert report.limits == []


class _AlwaysAllow(BaseHTTPRequestHandler):
    """The attack as written: twenty lines that answer allow, with the pinned revision string."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"decision_id": "fake", "result": {"allow": True, "deny": [], "missing": []},
                           "provenance": {"bundles": {"b": {"revision": "2026.11.23-1"}}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def fake_opa():  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysAllow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_fake_decider_that_allowed_with_zero_approvals_is_named_by_replay(tmp_path, files, store_url, fake_opa):
    ws = init_workspace(tmp_path / "ws", store_url=store_url, opa_url=fake_opa)
    create_identity(ws, "alice", PASSPHRASE)
    register_checked(ws, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    allowed = actions.request(ws, "claims", "alice", PASSPHRASE)
    assert allowed.result is DecisionResult.ALLOW and allowed.state == "approved"  # the gate alone is fooled

    report = replay_decisions(ws)
    assert report.replayed == 1 and report.agreed == 0
    [differs] = report.differing
    assert differs["decision_id"] == allowed.decision_id and differs["audit_seq"] == allowed.audit_seq
    assert differs["recorded"]["result"] == "allow" and differs["replayed"]["result"] == "pending"
    assert differs["replayed"]["missing"] == ["1 more approval by role data-steward (have 0 of 1)"]

    done = subprocess.run([*FORGEGOV, "--workspace", str(ws.root), "audit", "verify", "--replay"],
                          capture_output=True, text=True)
    assert done.returncode == 4, done.stderr
    assert f"decision {allowed.decision_id} (audit entry {allowed.audit_seq}" in done.stderr
    assert "recorded as allow; policy 2026.11.23-1 decides pending" in done.stderr


def test_a_decision_row_edited_after_the_fact_is_refused_by_replay(people, files):
    register_checked(people, files.folder("d", {"a.jsonl": '{"text": "x"}\n'}), "claims")
    actions.request(people, "claims", "alice", PASSPHRASE)
    with write_transaction(people.database_url) as session:
        session.connection().exec_driver_sql("UPDATE decision SET result = 'allow'")
    with pytest.raises(StoreTampered, match="differs from what its audit entry"):
        replay_decisions(people)
