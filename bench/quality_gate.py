"""Data-quality gate time: forgegov's suite beside bare great-expectations running the same checks, same run.

    python bench/quality_gate.py [--rows 1000000] [--repeat 1]
    python bench/quality_gate.py --smoke [--out FILE]     # 5,000 rows: checks the script still runs (seconds)

Both sides start from the same in-memory list of `{"text": ...}` records (deterministic; about 1 in 200 carries an
e-mail address, a phone number, a payment card or a key, and about 1 in 500 is a duplicate) and both include
building their DataFrame from that list:
  forgegov run_suite      `run_suite(records, locations, DatasetKind.PRETRAINING_TEXT)` end to end: derived columns
                          (length, record key, PII/secret counts per record via sensitive.py), the GE validation of
                          the pretraining-text suite, and the evidence with locations and the sensitive summary
  bare great-expectations GE 1.x, ephemeral context, pandas datasource, progress bars off, directly on the raw
                          records' DataFrame, with GE's own built-in expectations for the same checks: text exists,
                          not null, of type str, value lengths 1..200,000, values unique, and
                          ExpectColumnValuesToNotMatchRegexList with the regexes sensitive.py uses
GE cannot express the Luhn check on card candidates (nor per-category counts), so the bare side flags every
card-shaped digit run; it does the same regex work, slightly less arithmetic. Target: forgegov <= 1.2x bare.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from forgegov.foundation.vocabulary import DatasetKind
from forgegov.governance.datasets import sensitive
from forgegov.governance.datasets.quality import run_suite

TARGET = 1.2
SEED = 7
_WORDS = ("the model was trained on a corpus of public domain books and filtered web pages with careful review "
          "of licences while the evaluation held out news articles from later years so that results reflect "
          "generalisation rather than memorisation part ZX-481 version 1.22.2 released on 2026-11-22 at 20:13:04 "
          "order 1234567 costs 42 dollars").split()
_SENSITIVE = ["write to jane.doe+claims@example.co.uk today", "call +44 20 7946 0958 after six",
              "call (415) 555-0132", "card 4111 1111 1111 1111 exp 12/29", "ssn 123-45-6789 on file",
              "aws AKIAIOSFODNN7EXAMPLE in config", "-----BEGIN PRIVATE KEY-----", "NI number AB 12 34 56 C"]


def make_records(n: int) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(SEED)
    records: list[dict[str, Any]] = []
    for i in range(n):
        if i and rng.random() < 0.002:
            records.append(dict(records[rng.randrange(len(records))]))  # an exact duplicate
            continue
        words = rng.choices(_WORDS, k=rng.randint(20, 120))
        if rng.random() < 0.005:
            words.insert(rng.randrange(len(words)), rng.choice(_SENSITIVE))
        records.append({"text": f"{i} " + " ".join(words)})
    return records, [f"train.jsonl:{i}" for i in range(1, n + 1)]


def bare_patterns() -> list[str]:
    """The patterns `sensitive.find` counts with; the card candidate stands in for the card check (no Luhn)."""
    return [p.pattern for p in (sensitive._EMAIL, sensitive._PHONE, sensitive._CARD_CANDIDATE,
                                sensitive._NATIONAL_ID, sensitive._API_KEY, sensitive._PRIVATE_KEY)]


def bare_ge(records: list[dict[str, Any]]) -> dict[str, Any]:
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = pd.DataFrame.from_records(records)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("bare").add_dataframe_asset(name="records")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    suite = gx.ExpectationSuite(name="bare-pretraining-text")
    for expectation in (
        gx.expectations.ExpectColumnToExist(column="text"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="text"),
        gx.expectations.ExpectColumnValuesToBeOfType(column="text", type_="str"),
        gx.expectations.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1, max_value=200_000),
        gx.expectations.ExpectColumnValuesToBeUnique(column="text"),
        gx.expectations.ExpectColumnValuesToNotMatchRegexList(column="text", regex_list=bare_patterns()),
    ):
        suite.add_expectation(expectation)
    validation = batch.validate(suite, result_format="SUMMARY")
    return {r.expectation_config.type: int((r.result or {}).get("unexpected_count") or 0) for r in validation.results}


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the best is reported")
    parser.add_argument("--smoke", action="store_true", help="--rows 5000 --repeat 1, to check the script still runs "
                        "(overrides both)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/quality_gate.json, or .smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.repeat = 5000, 1
    out = args.out or Path(__file__).parent / "results" / f"quality_gate{'.smoke' if args.smoke else ''}.json"

    print(f"building {args.rows:,} records ...", file=sys.stderr)
    records, locations = make_records(args.rows)
    chars = sum(len(r["text"]) for r in records)
    # Warm both code paths (imports, regex compilation, GE's registries) on a small slice before timing.
    run_suite(records[:1000], locations[:1000], DatasetKind.PRETRAINING_TEXT)
    bare_ge(records[:1000])

    print("timing bare great-expectations ...", file=sys.stderr)
    bare_s, bare = timed(lambda: bare_ge(records), args.repeat)
    print("timing forgegov run_suite ...", file=sys.stderr)
    ours_s, evidence = timed(lambda: run_suite(records, locations, DatasetKind.PRETRAINING_TEXT), args.repeat)

    ratio = ours_s / bare_s
    verdict = "PASS" if ratio <= TARGET else "MISS"
    by_check = {(e["type"], e["column"]): e["unexpected_count"] for e in evidence["expectations"]}
    findings = {k: v["records"] for k, v in evidence["sensitive"]["findings"].items() if v["records"]}
    print(f"\ndata-quality gate, {args.rows:,} pretraining-text rows ({chars / args.rows:.0f} chars/row), "
          f"best of {args.repeat}")
    print(f"  bare great-expectations (same checks)   {bare_s:8.2f} s")
    print(f"  forgegov run_suite                       {ours_s:8.2f} s")
    print(f"  forgegov / bare                          {ratio:8.2f}×  (target <= {TARGET}×): {verdict}")
    print(f"  duplicates flagged: forgegov {by_check[('expect_column_values_to_be_unique', '_record_key')]:,}, "
          f"bare {bare['expect_column_values_to_be_unique']:,}")
    print(f"  records with PII or secrets: forgegov {by_check[('expect_column_values_to_be_between', '_pii')]:,} "
          f"PII + {by_check[('expect_column_values_to_be_between', '_secrets')]:,} secrets; "
          f"bare regex list {bare['expect_column_values_to_not_match_regex_list']:,}")
    print(f"  forgegov records per finding category: {findings}")
    print("  note: GE has no Luhn check, so the bare run flags card-shaped digit runs without validating them; "
          "forgegov also counts per category and keeps locations.")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": args.rows, "repeat": args.repeat, "forgegov_s": ours_s, "bare_ge_s": bare_s,
                               "ratio": ratio, "target": TARGET, "verdict": verdict, "bare": bare,
                               "forgegov_failed": evidence["failed"], "sensitive_records": findings}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
