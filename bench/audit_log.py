"""Audit log throughput: append rate, full verification, proof times.

    python bench/audit_log.py [--store URL] [--size 1000000] [--single 2000]
    python bench/audit_log.py --smoke [--out FILE]     # 3,000 entries: checks the script still runs (seconds)

  append, one entry per transaction   the gate's pattern: each decision commits its own entry (durable)
  append, 1,000 entries per transaction, then a signed checkpoint    bulk import / high-rate event streams
  full verify                         `audit verify` on the whole log (leaves, nodes, checkpoints, statements)
  inclusion / consistency proof       from stored nodes at the full size, median of 200 random queries
Each figure comes from this run; the store is a fresh workspace (SQLite) or an empty database (--store).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from forgegov.app.workspace import init_workspace
from forgegov.audit.log import EntryDraft, append, append_many, consistency_proof, inclusion_proof, tree_size
from forgegov.audit.operations import verify_workspace
from forgegov.audit.tree_heads import sign_tree_head
from forgegov.foundation.store.db import read_session, write_transaction
from forgegov.foundation.vocabulary import AuditAction


def draft(i: int) -> EntryDraft:
    # The log takes only actions in its vocabulary. dataset.load is the most frequent entry a real log holds, and
    # verification hashes it without decoding a statement, so the figures measure the log, not signature checks.
    return EntryDraft(actor="bench", action=AuditAction.DATASET_LOAD, subject_digest="sha256:" + f"{i:064x}",
                      payload={"i": i, "result": "allow", "reasons": [], "note": "benchmark entry"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="store URL of an empty database (default: SQLite)")
    parser.add_argument("--size", type=int, default=1_000_000, help="entries in the log for verify and proofs")
    parser.add_argument("--single", type=int, default=2000, help="entries appended one per transaction")
    parser.add_argument("--smoke", action="store_true",
                        help="--size 3000 --single 50, to check the script still runs (overrides both)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/audit_log.json, or .smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.single = 3000, 50
    out = args.out or Path(__file__).parent / "results" / f"audit_log{'.smoke' if args.smoke else ''}.json"

    ws = init_workspace(Path(tempfile.mkdtemp(prefix="forgegov-bench-audit-")) / "ws", store_url=args.store)
    url = ws.database_url
    results: dict[str, float | int | str] = {"store": "postgresql" if args.store else "sqlite"}

    start = time.perf_counter()
    for i in range(args.single):
        with write_transaction(url) as session:
            append(session, draft(i))
    results["append_single_per_s"] = args.single / (time.perf_counter() - start)

    batch = 1000
    start = time.perf_counter()
    appended = tree_size_now(url)
    while appended < args.size:
        n = min(batch, args.size - appended)
        with write_transaction(url) as session:
            append_many(session, [draft(appended + k) for k in range(n)])
        appended += n
        if appended % 100_000 < batch:
            sign_tree_head(ws)
            print(f"  {appended:,} entries", file=sys.stderr)
    sign_tree_head(ws)
    bulk = args.size - args.single
    results["append_batched_per_s"] = bulk / (time.perf_counter() - start)

    start = time.perf_counter()
    report = verify_workspace(ws)
    results["verify_s"] = time.perf_counter() - start
    results["verified_entries"] = report.entries

    rng = random.Random(7)
    with read_session(url) as session:
        size = tree_size(session)
        inclusion, consistency = [], []
        for _ in range(200):
            index = rng.randrange(size)
            t = time.perf_counter()
            inclusion_proof(session, index, size)
            inclusion.append(time.perf_counter() - t)
            old = rng.randrange(1, size)
            t = time.perf_counter()
            consistency_proof(session, old, size)
            consistency.append(time.perf_counter() - t)
    results["inclusion_proof_ms"] = statistics.median(inclusion) * 1e3
    results["consistency_proof_ms"] = statistics.median(consistency) * 1e3

    print(f"\naudit log, store={results['store']}, {report.entries:,} entries")
    print(f"  append, one entry per transaction     {results['append_single_per_s']:>10,.0f} entries/s")
    print(f"  append, 1,000 per transaction         {results['append_batched_per_s']:>10,.0f} entries/s")
    print(f"  full verify                           {results['verify_s']:>10.2f} s")
    print(f"  inclusion proof at full size (median) {results['inclusion_proof_ms']:>10.3f} ms")
    print(f"  consistency proof at full size (med.) {results['consistency_proof_ms']:>10.3f} ms")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


def tree_size_now(url: str) -> int:
    with read_session(url) as session:
        return tree_size(session)


if __name__ == "__main__":
    raise SystemExit(main())
