"""External reward endpoints: an HTTP service that scores completions under Amazon Nova's reward-Lambda contract, so a
reward written for that contract runs here unchanged.

    request  POST <url>  [{"id": "...", "messages": [{"role": ..., "content": ...}, ...], "metadata": {...}}, ...]
    response             [{"id": "...", "aggregate_reward_score": 0.8,
                           "metrics_list": [{"name": "...", "value": 0.9, "type": "Reward" | "Metric"}]}, ...]

Each item's messages are the prompt (a string becomes one user message) followed by the completion as the assistant's
message; its metadata are the item's dataset columns. A batch is sent in chunks, at most `concurrency` at a time;
a chunk that times out, cannot connect, or gets 429 or a 5xx is sent again (`retries` times, with backoff); any
other status, a body that is not the contract (ids missing, repeated or foreign, a score that is not a finite
number) fails the call with a message saying which. The answer is a `CallResult`, as a sandboxed reward's is, and is
recorded the same way. Which endpoints a run may use is the policy's decision (the run gate reads each one's URL,
identity and version from the recipe); the spec's digest is what lineage and provenance name.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from forgegov.foundation.canonical import digest_of
from forgegov.governance.sandbox.pool import CallResult, Outcome

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class EndpointSpec:
    url: str
    identity: str  # who runs it, as the recipe declares it and the policy lists it
    version: str  # the scorer's version, recorded with every run that used it
    timeout_s: float = 30.0
    retries: int = 2
    concurrency: int = 4
    chunk: int = 64

    @property
    def digest(self) -> str:
        return digest_of({"url": self.url, "identity": self.identity, "version": self.version})

    @property
    def label(self) -> str:
        return f"endpoint {self.url} ({self.identity}, {self.version})"

    def to_document(self) -> dict[str, Any]:
        return {"url": self.url, "identity": self.identity, "version": self.version, "digest": self.digest}


def _messages(prompt: Any, completion: Any) -> list[dict[str, Any]]:
    conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    reply = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else list(completion)
    return conversation + reply


def contract_request(ids: list[str], kwargs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    columns = {name: values for name, values in kwargs.items() if name not in ("prompts", "completions")}
    return [{"id": item, "messages": _messages(kwargs["prompts"][i], kwargs["completions"][i]),
             "metadata": {name: values[i] for name, values in columns.items()}} for i, item in enumerate(ids)]


def contract_scores(body: Any, ids: list[str]) -> list[float]:
    """The aggregate scores in `ids` order, or ValueError naming what breaks the contract."""
    if not isinstance(body, list):
        raise ValueError(f"the response is a {type(body).__name__}, not a list of results")
    scores: dict[str, float] = {}
    for index, result in enumerate(body):
        if not isinstance(result, dict) or not isinstance(result.get("id"), str):
            raise ValueError(f"result {index} has no string id")
        item = result["id"]
        if item not in ids or item in scores:
            raise ValueError(f"result {index} answers id {item!r}, which was not asked or was answered twice")
        score = result.get("aggregate_reward_score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(float(score)):
            raise ValueError(f"result {item!r} has aggregate_reward_score {score!r}, not a finite number")
        metrics = result.get("metrics_list", [])
        if not isinstance(metrics, list) or any(not isinstance(m, dict) or not isinstance(m.get("name"), str)
                                                for m in metrics):
            raise ValueError(f"result {item!r} has a metrics_list that is not a list of named metrics")
        scores[item] = float(score)
    if len(scores) != len(ids):
        raise ValueError(f"the response answers {len(scores)} of {len(ids)} ids")
    return [scores[item] for item in ids]


class RewardEndpoint:
    """Scores batches through one endpoint; `score` has the sandbox's signature and result."""

    def __init__(self, spec: EndpointSpec) -> None:
        import httpx

        self.spec = spec
        self.label, self.digest = spec.label, spec.digest
        # trust_env off: a proxy or certificate bundle named by an environment variable must not decide where
        # rewards come from.
        self.client = httpx.Client(timeout=spec.timeout_s, follow_redirects=False, trust_env=False)
        self.pool = ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="forgegov-endpoint")
        self.calls = 0

    def __enter__(self) -> RewardEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def _post(self, payload: list[dict[str, Any]], ids: list[str]) -> tuple[Outcome, list[float] | None, str]:
        import httpx

        last, outcome = "", Outcome.ERROR
        for attempt in range(self.spec.retries + 1):
            if attempt:
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
            try:
                status, body = self._exchange(payload)
            except httpx.TimeoutException:
                last, outcome = f"no answer within {self.spec.timeout_s:g} s", Outcome.TIMEOUT
                continue
            except httpx.TransportError as exc:
                last, outcome = f"cannot reach {self.spec.url}: {exc}", Outcome.UNAVAILABLE
                continue
            except httpx.HTTPError as exc:  # an undecodable body, a redirect loop: not an answer
                return Outcome.INVALID, None, f"the response from {self.spec.url} cannot be read: {exc}"
            if status in RETRY_STATUSES:
                last, outcome = f"HTTP {status} from {self.spec.url}", Outcome.ERROR
                continue
            if status != 200:
                return Outcome.ERROR, None, f"HTTP {status} from {self.spec.url}: {body[:200]!r}"
            if body is None:
                return Outcome.INVALID, None, f"the response is larger than {MAX_RESPONSE_BYTES} bytes"
            try:
                return Outcome.OK, contract_scores(json.loads(body), ids), ""
            except (ValueError, RecursionError) as exc:
                return Outcome.INVALID, None, f"the response breaks the reward contract: {exc}"
        return outcome, None, f"{last} (after {self.spec.retries + 1} attempts)"

    def _exchange(self, payload: list[dict[str, Any]]) -> tuple[int, bytes | None]:
        """The status and body (None past MAX_RESPONSE_BYTES: read no further) of one POST."""
        with self.client.stream("POST", self.spec.url, json=payload) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    return response.status_code, None
            return response.status_code, body

    def score(self, kwargs: dict[str, list[Any]]) -> CallResult:
        started = time.monotonic()
        self.calls += 1
        items = len(kwargs["prompts"])
        ids = [f"{self.calls}-{i}" for i in range(items)]
        chunks = [(start, min(start + self.spec.chunk, items)) for start in range(0, items, self.spec.chunk)]
        request = contract_request(ids, kwargs)
        answers = list(self.pool.map(lambda bounds: self._post(request[bounds[0]:bounds[1]],
                                                               ids[bounds[0]:bounds[1]]), chunks))
        seconds = time.monotonic() - started
        failed = next((a for a in answers if a[0] is not Outcome.OK), None)
        if failed is not None:
            return CallResult(failed[0], None, failed[2], items, seconds)
        return CallResult(Outcome.OK, [s for _o, scores, _d in answers for s in scores or []], "", items, seconds)
