"""Fail closed: no trustworthy answer from OPA means deny, with a reason that says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from forgegov.app.workspace import init_workspace
from forgegov.foundation.errors import DecisionUnavailable, PolicyBundleError, PolicyDenied
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Decision
from forgegov.foundation.vocabulary import DecisionResult
from forgegov.governance import actions
from forgegov.governance.identities import create_identity
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.opa.client import parse_answer
from forgegov.governance.opa.supervisor import LocalOpa
from forgegov.governance.policy import packaged_bundle
from forgegov.governance.registry import find_asset

from .conftest import PASSPHRASE, PEOPLE, Files, register_checked


def _bundle_with(tmp_path: Path, dataset_policy: str | None = None, revision: str = "2026.11.23-1") -> Path:
    """The shipped bundle, optionally with the dataset gate replaced and another revision."""
    bundle = tmp_path / "bundle"
    shutil.copytree(packaged_bundle(), bundle, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    if dataset_policy is not None:
        shutil.rmtree(bundle / "dataset")
        (bundle / "dataset").mkdir()
        (bundle / "dataset" / "policy.rego").write_text(dataset_policy, encoding="utf-8")
    (bundle / ".manifest").write_text(json.dumps({"revision": revision}), encoding="utf-8")
    return bundle


def _workspace_with_dataset(tmp_path: Path, files: Files, store_url: str | None, **init_kwargs):
    ws = init_workspace(tmp_path / "ws", store_url=store_url, **init_kwargs)
    for name in ("alice", "bob"):
        create_identity(ws, name, PASSPHRASE)
    register_checked(ws, files.folder("d", {"a.txt": "hello"}), "claims")
    return ws


def _decisions(ws) -> list[Decision]:
    with read_session(ws.database_url) as session:
        return list(session.exec(select(Decision).order_by(Decision.decided_at)))


def test_opa_stopped_between_two_commands_denies(tmp_path, files, store_url):
    opa = LocalOpa(find_opa(), packaged_bundle(), tmp_path / "opa.log")
    opa.start()
    try:
        ws = _workspace_with_dataset(tmp_path, files, store_url, opa_url=opa.url)
        first = actions.request(ws, "claims", "alice", PASSPHRASE)
        assert first.result is DecisionResult.PENDING
    finally:
        opa.stop()
    with pytest.raises(PolicyDenied) as denied:
        actions.answer(ws, "claims", "bob", PASSPHRASE, actions.GateAction.APPROVE)
    assert denied.value.reasons == [f"OPA at {ws.opa.url} is unreachable"]
    assert find_asset(ws, "claims").state.value == "pending"
    last = _decisions(ws)[-1]
    assert last.result is DecisionResult.DENY and last.opa_decision_id is None


@pytest.mark.parametrize("policy,needle", [
    ("package forgegov.gates.dataset\n\nx := 1\n", "undefined"),
    ('package forgegov.gates.dataset\n\ndecision := {"allow": true, "deny": ["no"], "missing": []}\n',
     "contradicts"),
    ('package forgegov.gates.dataset\n\ndecision := {"allow": "yes", "deny": [], "missing": []}\n', "not a boolean"),
    ('package forgegov.gates.dataset\n\ndecision := {"allow": false, "deny": [1], "missing": []}\n',
     "not a list of strings"),
])
def test_undefined_or_malformed_answer_denies(tmp_path, files, store_url, policy, needle):
    ws = _workspace_with_dataset(tmp_path, files, store_url, policy_source=_bundle_with(tmp_path, policy))
    with pytest.raises(PolicyDenied) as denied:
        actions.request(ws, "claims", "alice", PASSPHRASE)
    assert needle in denied.value.reasons[0]
    assert find_asset(ws, "claims").state.value == "registered"


def test_policy_that_fails_opa_check_is_never_put_in_force(tmp_path, files, store_url):
    broken = _bundle_with(tmp_path, "package forgegov.gates.dataset\n\ndecision := {\n")
    with pytest.raises(PolicyBundleError, match="fails `opa check --strict`") as refused:
        init_workspace(tmp_path / "ws", store_url=store_url, policy_source=broken)
    assert "rego_parse_error" in refused.value.message
    assert not (tmp_path / "ws").exists()


def test_opa_serving_another_revision_denies(tmp_path, files, store_url):
    other = _bundle_with(tmp_path, revision="rogue-1")
    with LocalOpa(find_opa(), other, tmp_path / "opa.log") as opa:
        ws = _workspace_with_dataset(tmp_path, files, store_url, opa_url=opa.url)
        with pytest.raises(PolicyDenied) as denied:
            actions.request(ws, "claims", "alice", PASSPHRASE)
    assert "answered from policy revision 'rogue-1'" in denied.value.reasons[0]


def test_supervised_opa_leaves_no_process_or_port(tmp_path):
    import os
    import socket

    opa = LocalOpa(find_opa(), packaged_bundle(), tmp_path / "opa.log")
    with opa:
        pid, port = opa.pid, opa.port
        assert pid is not None and port is not None
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("body,needle", [
    ([], "not a JSON object"),
    ({}, "undefined"),
    ({"result": {"allow": True, "deny": [], "missing": []}}, None),
    ({"result": {"allow": True, "deny": [], "missing": []}, "provenance": {"bundles": {"b": {"revision": "r2"}}}},
     "answered from policy revision 'r2'"),
    ({"result": {"allow": False, "deny": [], "missing": []}}, "contradicts"),
    ({"result": {"allow": False, "deny": "no", "missing": []}}, "not a list"),
    ({"result": {"allow": False, "deny": [], "missing": None}}, "not a list"),
    ({"result": ["allow"]}, "not a boolean"),
])
def test_parse_answer_fails_closed(body, needle):
    if needle is None:
        with pytest.raises(DecisionUnavailable, match="answered from policy revision None"):
            parse_answer(body, expected_revision="r1")
        assert parse_answer(body, expected_revision=None).allow is True
        return
    with pytest.raises(DecisionUnavailable, match=needle):
        parse_answer(body, expected_revision="r1" if "provenance" in body else None)


def test_people_fixture_matches_policy_data():
    roles = json.loads((packaged_bundle() / "data" / "data.json").read_text())["roles"]
    assert set(PEOPLE) == set(roles)
