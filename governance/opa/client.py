"""Asking OPA for a gate decision, and refusing anything that is not a clear, well-formed answer.

Fail closed: OPA unreachable, a timeout, an HTTP error, an undefined result, a malformed answer or an answer from a
policy revision other than the workspace's pinned one all become `DecisionUnavailable`, which the gate records as a
denial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from forgegov.foundation.errors import DecisionUnavailable
from forgegov.foundation.vocabulary import Gate

PACKAGE_PREFIX = "forgegov.gates"
DECISION_RULE = "decision"


@dataclass(frozen=True)
class OpaAnswer:
    allow: bool
    deny: tuple[str, ...]
    missing: tuple[str, ...]
    decision_id: str | None
    revision: str | None


def _string_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DecisionUnavailable(f"OPA's answer is malformed: `{field}` is not a list of strings")
    return tuple(sorted(value))


def parse_answer(body: Any, expected_revision: str | None) -> OpaAnswer:
    if not isinstance(body, dict):
        raise DecisionUnavailable("OPA's answer is malformed: not a JSON object")
    if "result" not in body:
        raise DecisionUnavailable(
            "OPA's answer is undefined: the policy bundle has no decision for this gate",
            hint="check that the bundle defines `decision` in package forgegov.gates.<gate>",
        )
    result = body["result"]
    if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
        raise DecisionUnavailable("OPA's answer is malformed: `decision.allow` is not a boolean")
    deny = _string_list(result.get("deny"), "decision.deny")
    missing = _string_list(result.get("missing"), "decision.missing")
    if result["allow"] != (not deny and not missing):
        raise DecisionUnavailable("OPA's answer is malformed: `allow` contradicts `deny`/`missing`")
    revisions = [
        bundle.get("revision") for bundle in body.get("provenance", {}).get("bundles", {}).values()
        if isinstance(bundle, dict)
    ]
    revision = revisions[0] if len(revisions) == 1 else None
    if expected_revision is not None and revision != expected_revision:
        raise DecisionUnavailable(
            f"OPA answered from policy revision {revision!r}, but this workspace pins {expected_revision!r}",
            hint="load the policy in force (`forgegov policy export`) into that OPA, or propose its policy through the "
                 "policy gate (`forgegov policy propose`)",
        )
    decision_id = body.get("decision_id")
    return OpaAnswer(
        allow=result["allow"], deny=deny, missing=missing,
        decision_id=decision_id if isinstance(decision_id, str) else None, revision=revision,
    )


class PolicyClient:
    """One HTTP session to one OPA; `decide` asks `data.forgegov.gates.<gate>.decision`."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parsed = urlparse(url)
        if parsed.hostname is None or parsed.port is None:
            raise DecisionUnavailable(f"OPA URL {url!r} has no host and port")
        self.url = url
        # Imported here: opa_client brings aiohttp (a tenth of a second), which a command that never asks OPA (most
        # reads) should not pay for.
        from opa_client.opa import OpaClient

        self._client = OpaClient(host=parsed.hostname, port=parsed.port, ssl=parsed.scheme == "https",
                                 timeout=timeout_s, retries=0)
        # The OPA URL is explicit, so proxy settings from the environment never apply; without this, requests
        # re-reads every proxy variable on each query (about a millisecond per decision here).
        self._client._session.trust_env = False

    def close(self) -> None:
        self._client.close_connection()

    def decide(self, gate: Gate, input_document: dict[str, Any], expected_revision: str | None) -> OpaAnswer:
        return self.decide_package(f"{PACKAGE_PREFIX}.{gate.value}", input_document, expected_revision)

    def decide_package(self, package: str, input_document: dict[str, Any],
                       expected_revision: str | None) -> OpaAnswer:
        """`data.<package>.decision` for `input_document`: the gates' packages, or the administrative acts'."""
        import requests  # with the client (see __init__): a command that never asks OPA does not load it

        try:
            body = self._client.query_rule(
                input_data=input_document, package_path=package,
                rule_name=DECISION_RULE, query_params={"provenance": "true"},
            )
        except requests.exceptions.Timeout as exc:
            raise DecisionUnavailable(f"OPA at {self.url} did not answer in time") from exc
        except requests.exceptions.ConnectionError as exc:
            raise DecisionUnavailable(
                f"OPA at {self.url} is unreachable",
                hint="start OPA (or switch the workspace to the embedded OPA) and try again",
            ) from exc
        except requests.exceptions.HTTPError as exc:
            raise DecisionUnavailable(f"OPA at {self.url} returned an error: {exc}") from exc
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise DecisionUnavailable(f"OPA at {self.url} gave no usable answer: {exc}") from exc
        return parse_answer(body, expected_revision)
