"""The data-quality suite for a dataset kind, run with great-expectations on the dataset's records.

Suites live beside this file as JSON (one per kind, versioned, digested into the evidence). Besides the records' own
fields the suites read derived columns computed here: `_length` (characters of the kind's text fields),
`_record_key` (digest of the record, for duplicates), `_pii` and `_secrets` (finding counts from `sensitive.py`).
GE measures; the policy decides: every expectation is strict, and the evidence carries the unexpected counts and
percentages that the Rego thresholds compare against. Row positions become `file:line` locations; no value is
ever copied into the evidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.errors import BadInput
from forgegov.foundation.vocabulary import DatasetKind
from forgegov.governance.datasets.intake import collect_records
from forgegov.governance.datasets.sensitive import PII, SECRETS, ScanSummary, find

SUITE_VERSION = 1
MAX_SAMPLE_LOCATIONS = 5


@dataclass(frozen=True)
class QualitySuite:
    kind: DatasetKind
    document: dict[str, Any]

    @property
    def digest(self) -> str:
        return digest_of(self.document)

    @property
    def text_fields(self) -> list[str]:
        return list(self.document["text_fields"])

    def text_of(self, record: dict[str, Any]) -> str:
        """The text a record contributes under this suite: what length, PII and contamination checks read."""
        return "\n".join(_text_of(record.get(field)) for field in self.text_fields)


def load_suite(kind: DatasetKind) -> QualitySuite:
    text = resources.files("forgegov.governance.datasets.suites").joinpath(f"{kind.value}.json").read_text("utf-8")
    document = json.loads(text)
    if document.get("suite") != kind.value or document.get("version") != SUITE_VERSION \
            or not isinstance(document.get("expectations"), list) or not document["expectations"]:
        raise BadInput(f"quality suite for {kind.value} is malformed or empty; an empty suite would pass anything")
    return QualitySuite(kind, document)


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        return "\n".join(_text_of(item) for item in value.values())
    return ""


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records and their locations (`file:line`, or `file:row N` in columnar files), parsed by intake's own code so
    the suite judges exactly the records intake admitted. Trainers read through `reader.read_verified` instead."""
    kept = collect_records(path)
    return kept.records, kept.locations


def run_suite(records: Sequence[dict[str, Any]], locations: Sequence[str], kind: DatasetKind) -> dict[str, Any]:
    """Validate `records` (with their `file:line` locations) against the suite for `kind`."""
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite = load_suite(kind)
    scan = ScanSummary(max_samples=MAX_SAMPLE_LOCATIONS)
    lengths: list[int] = []
    keys: list[str] = []
    pii: list[int] = []
    secrets: list[int] = []
    sha256, dumps = hashlib.sha256, json.dumps
    for record, location in zip(records, locations, strict=True):
        text = suite.text_of(record)
        findings = find(text)  # scanned once: the summary and the per-record counts share the findings
        scan.add_findings(location, findings)
        lengths.append(len(text))
        # The duplicate key only has to be equal exactly when the records are equal. For the common record of
        # strings only, sorted compact JSON is such a form and far cheaper than RFC 8785; anything else (numbers,
        # nesting) and text that is not valid Unicode (lone surrogates, which RFC 8785 refuses) take the canonical
        # bytes, with their refusals. Equal bytes from the two forms parse to the same value, so they never collide.
        if all(isinstance(k, str) and isinstance(v, str) for k, v in record.items()):
            try:
                key = dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                key = canonical_bytes(record)
        else:
            key = canonical_bytes(record)
        keys.append(sha256(key).hexdigest())
        if findings:
            pii.append(sum(findings[k] for k in PII))
            secrets.append(sum(findings[k] for k in SECRETS))
        else:
            pii.append(0)
            secrets.append(0)
    frame = pd.DataFrame.from_records(records)
    for column, values in (("_length", lengths), ("_record_key", keys), ("_pii", pii), ("_secrets", secrets)):
        frame[column] = values

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("forgegov").add_dataframe_asset(name="records")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    gx_suite = gx.ExpectationSuite(name=f"forgegov-{kind.value}-v{SUITE_VERSION}")
    for item in suite.document["expectations"]:
        gx_suite.add_expectation(getattr(gx.expectations, item["type"])(**item["kwargs"]))
    validation = batch.validate(gx_suite, result_format="SUMMARY")

    expectations = []
    for result in validation.results:
        details = result.result or {}
        indexes = details.get("partial_unexpected_index_list") or []
        expectations.append({
            "type": result.expectation_config.type,
            "column": result.expectation_config.kwargs.get("column"),
            "success": bool(result.success),
            "unexpected_count": int(details.get("unexpected_count") or 0),
            "unexpected_percent": float(details.get("unexpected_percent") or 0.0),
            "sample_locations": [locations[i] for i in indexes[:MAX_SAMPLE_LOCATIONS] if isinstance(i, int)],
        })
    return {
        "suite": suite.document["suite"], "suite_version": SUITE_VERSION, "suite_digest": suite.digest,
        "records": len(records), "success": bool(validation.success),
        "failed": sorted({e["type"] + ":" + str(e["column"]) for e in expectations if not e["success"]}),
        "expectations": expectations,
        "sensitive": scan.to_evidence(),
    }
