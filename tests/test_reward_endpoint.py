"""External reward endpoints under Nova's reward-Lambda contract, against a real HTTP server on 127.0.0.1: the
contract both ways, timeouts, retries, the concurrency limit and clear errors; then a GRPO run that may use an
endpoint only once the policy lists it, with the endpoint's URL, identity and version in lineage and provenance."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from forgegov.foundation.errors import PolicyDenied
from forgegov.foundation.vocabulary import AssetKind, Gate, GateAction, RunStatus
from forgegov.governance import actions
from forgegov.governance.registry import label, register_asset
from forgegov.governance.reward_endpoints import EndpointSpec, RewardEndpoint, contract_request, contract_scores
from forgegov.governance.sandbox.pool import Outcome
from forgegov.training.grpo import ROLLOUTS_FILE

from .conftest import PASSPHRASE, audit_entries
from .runs_support import build_tiny_base
from .test_grpo import _approved_run, _inputs, _recipe, _start
from .test_policy_update import _edited_bundle


@pytest.fixture(scope="module")
def base_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("base") / "tiny-base")


class Seen:
    """What one server was sent: kept per server, since a handler of an earlier test's server may still be running
    (a /slow answer outlives the client's timeout) and must not count here."""

    def __init__(self) -> None:
        self.bodies: list[list[dict]] = []
        self.flaky: dict[str, int] = {}
        self.active = 0
        self.most = 0
        self.lock = threading.Lock()


class Contract(BaseHTTPRequestHandler):
    """A reward service as Nova's contract has it: the share of digits in the assistant's last message. The path
    picks a behaviour: /ok, /slow, /flaky (503 twice per batch id, then answers), /foreign (answers other ids),
    /refuse (400)."""

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen = self.server.seen  # type: ignore[attr-defined]
        with seen.lock:
            seen.bodies.append(body)
            seen.active += 1
            seen.most = max(seen.most, seen.active)
        # Counted as in flight only while it waits, a window inside the client's request: counting until after the
        # answer was written let the client's next request arrive first (CI saw 3 of 2, twice).
        time.sleep(0.05)
        with seen.lock:
            seen.active -= 1
        self._answer(body)

    def _answer(self, body: list[dict]) -> None:
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/refuse":
            return self._send(400, {"error": "no metadata.answer"})
        if self.path == "/garbled":
            return self._send(200, b"not gzip at all", encoding="gzip")
        if self.path == "/flaky":
            key = body[0]["id"]
            flaky = self.server.seen.flaky  # type: ignore[attr-defined]
            flaky[key] = flaky.get(key, 0) + 1
            if flaky[key] <= 2:
                return self._send(503, {"error": "warming up"})
        results = []
        for item in body:
            text = item["messages"][-1]["content"]
            share = sum(c.isdigit() for c in text) / max(1, len(text))
            results.append({"id": item["id"] if self.path != "/foreign" else "x" + item["id"],
                            "aggregate_reward_score": share,
                            "metrics_list": [{"name": "digits", "value": share, "type": "Reward"}]})
        self._send(200, results)

    def _send(self, status: int, document: object, encoding: str | None = None) -> None:
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def server(seen: Seen):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Contract)
    httpd.seen = seen  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


BATCH = {"prompts": ["Claim 1:", [{"role": "user", "content": "Claim 2:"}]] * 4,
         "completions": ["12ab", "none"] * 4, "answer": ["a", "b"] * 4}


def _spec(url: str, **options) -> EndpointSpec:  # type: ignore[no-untyped-def]
    return EndpointSpec(url, "chem-team", "v3", **options)


def test_the_contract_request_and_response():
    [first, second] = contract_request(["1-0", "1-1"], {key: values[:2] for key, values in BATCH.items()})
    assert first == {"id": "1-0", "messages": [{"role": "user", "content": "Claim 1:"},
                                               {"role": "assistant", "content": "12ab"}], "metadata": {"answer": "a"}}
    assert second["messages"][0] == {"role": "user", "content": "Claim 2:"}
    assert contract_scores([{"id": "b", "aggregate_reward_score": 1}, {"id": "a", "aggregate_reward_score": 0.5,
                                                                        "metrics_list": []}], ["a", "b"]) == [0.5, 1.0]
    for body, message in (({"id": "a"}, "not a list"), ([{"id": "a", "aggregate_reward_score": "1"}], "not a finite"),
                          ([{"id": "z", "aggregate_reward_score": 1}], "was not asked"),
                          ([{"id": "a", "aggregate_reward_score": 1}] * 2, "answered twice"),
                          ([{"id": "a", "aggregate_reward_score": float("nan")}], "not a finite"),
                          ([{"id": "a", "aggregate_reward_score": 1}], "answers 1 of 2")):
        with pytest.raises(ValueError, match=message):
            contract_scores(body, ["a", "b"])


def test_an_endpoint_scores_in_chunks_within_its_concurrency_limit(server, seen):
    with RewardEndpoint(_spec(f"{server}/ok", chunk=2, concurrency=2)) as endpoint:
        result = endpoint.score(BATCH)
    assert result.outcome is Outcome.OK and result.scores == [0.5, 0.0] * 4
    assert len(seen.bodies) == 4 and all(len(body) == 2 for body in seen.bodies) and seen.most <= 2


def test_a_failing_endpoint_is_retried_then_reported(server, seen):
    with RewardEndpoint(_spec(f"{server}/flaky", retries=2)) as endpoint:
        assert endpoint.score(BATCH).scores == [0.5, 0.0] * 4  # two 503s, then an answer
    seen.flaky.clear()
    with RewardEndpoint(_spec(f"{server}/flaky", retries=1)) as endpoint:
        failed = endpoint.score(BATCH)
    assert failed.outcome is Outcome.ERROR and "HTTP 503" in failed.detail and "after 2 attempts" in failed.detail


def test_timeouts_contract_breaches_and_refusals_are_clear_outcomes(server, seen):
    with RewardEndpoint(_spec(f"{server}/slow", timeout_s=0.5, retries=1)) as endpoint:
        slow = endpoint.score(BATCH)
    assert slow.outcome is Outcome.TIMEOUT and "no answer within 0.5 s (after 2 attempts)" in slow.detail
    with RewardEndpoint(_spec(f"{server}/foreign")) as endpoint:
        foreign = endpoint.score(BATCH)
    assert foreign.outcome is Outcome.INVALID and "breaks the reward contract" in foreign.detail
    seen.bodies.clear()
    with RewardEndpoint(_spec(f"{server}/refuse", retries=3)) as endpoint:
        refused = endpoint.score(BATCH)
    assert refused.outcome is Outcome.ERROR and "HTTP 400" in refused.detail and len(seen.bodies) == 1
    with RewardEndpoint(_spec("http://127.0.0.1:9/none", retries=0)) as endpoint:
        assert endpoint.score(BATCH).outcome is Outcome.UNAVAILABLE
    with RewardEndpoint(_spec(f"{server}/garbled")) as endpoint:  # found by a review: it escaped as httpx's error
        garbled = endpoint.score(BATCH)
    assert garbled.outcome is Outcome.INVALID and "cannot be read" in garbled.detail


def test_proxy_variables_do_not_decide_where_rewards_come_from(server, monkeypatch):
    """Found by a review: httpx followed HTTP_PROXY, so whoever set it chose the scores."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with RewardEndpoint(_spec(f"{server}/ok")) as endpoint:
        assert endpoint.score(BATCH).scores == [0.5, 0.0] * 4


def _allow_endpoint(ws, tmp_path: Path, url: str) -> None:
    """The policy change a policy owner makes by pull request: dave proposes it, grace adopts it."""
    def listing(data: dict) -> None:
        data["rewards"]["endpoints"] = [{"url": url, "identity": "chem-team"}]

    folder = _edited_bundle(ws, tmp_path, listing, revision="2026.12.03-endpoints")
    asset = register_asset(ws, AssetKind.POLICY, folder, "house-rules", "dave")
    actions.request(ws, label(asset), "dave", PASSPHRASE)
    actions.answer(ws, label(asset), "grace", PASSPHRASE, GateAction.APPROVE, gate=Gate.POLICY)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (scripts/install.sh)")
def test_a_grpo_run_uses_an_endpoint_only_once_the_policy_lists_it(people, tmp_path, base_template, server):
    _inputs(people, tmp_path / "inputs", base_template)
    url = f"{server}/ok"
    endpoint = f'\n[[rewards]]\nendpoint = "{url}"\nidentity = "chem-team"\nversion = "v3"\nweight = 0.5\n'
    recipe = _recipe(tmp_path, steps=3)
    recipe.write_text(recipe.read_text().replace("\n[rl]", endpoint + "\n[rl]"))
    with pytest.raises(PolicyDenied) as denied:
        _start(people, recipe)
    assert any(f"reward endpoint {url} run by chem-team (version v3)" in r and "is not one the policy allows" in r
               for r in denied.value.reasons)
    _allow_endpoint(people, tmp_path, url)
    _approved_run(people, recipe)
    done = _start(people, recipe).trained
    assert done is not None and done.status is RunStatus.COMPLETED
    calls = [json.loads(line) for line in (Path(done.output_dir) / ROLLOUTS_FILE).read_text().splitlines()]
    by_kind = {True: [c for c in calls if c["endpoint"]], False: [c for c in calls if not c["endpoint"]]}
    assert len(by_kind[True]) == len(by_kind[False]) == 3 and all(c["outcome"] == "ok" for c in calls)
    assert [c["scores"] for c in by_kind[True]] == [c["scores"] for c in by_kind[False]]  # the same scorer, twice
    spec = EndpointSpec(url, "chem-team", "v3")
    [complete] = audit_entries(people, "run.complete")
    assert json.loads(complete.payload)["endpoints"] == [{"url": url, "identity": "chem-team", "version": "v3",
                                                          "digest": spec.digest}]
    envelope = json.loads((Path(done.output_dir) / "provenance" / "provenance.intoto.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    [dependency] = [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
                    if d.get("uri") == url]
    assert dependency["annotations"] == {"role": "reward-endpoint", "weight": 0.5, "identity": "chem-team",
                                         "version": "v3"}
