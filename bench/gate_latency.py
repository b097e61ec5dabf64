"""Gate decision latency: the full gate transaction beside a bare opa-python-client query, same policy, same run.

    python bench/gate_latency.py [--n 1000] [--store URL]
    python bench/gate_latency.py --smoke [--out FILE]     # n=20: checks the script still runs (seconds)

Setup, not timed: n one-record datasets registered, each with a data-quality check on record (the dataset gate
denies a request for a dataset without one).

Measured per decision:
  bare OPA query      opa-python-client `query_rule` on data.forgegov.gates.dataset.decision with a gate input
  gate: request       signature + replay checks, every data-quality check of the bytes read from the log's entries
                      and its digests and signature re-verified, OPA query, decision record, state change, audit
                      append (carrying the signed request and approvals), commit
  gate: approve       as above, plus re-verifying the stored request and the approver's signature; quorum met,
                      so the dataset's state changes to approved
Statements are signed before the clock starts (signing is the client's step, reported separately).

Then every decision the run made (2n) is replayed as `forgegov audit verify --replay` does (walking the log's gate
entries; each stored input's commitment re-checked, its signed parts held against the statements the entry carries,
and re-evaluated by OPA under the policy recorded with it), reported per 1,000.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from forgegov.app.workspace import init_workspace
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import GateRequest
from forgegov.foundation.vocabulary import AssetKind, Classification, DatasetKind, DecisionResult, Gate, GateAction
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.evidence.data_quality import check_dataset
from forgegov.governance.gate import submit
from forgegov.governance.identities import create_identity, unlock
from forgegov.governance.registry import find_asset, label, register_asset
from forgegov.governance.replay import replay_decisions
from forgegov.governance.statements import make_statement

PASSPHRASE = "benchmark passphrase"
DATA = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)


def summary(name: str, samples_ns: list[int]) -> dict:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
    return {"name": name, "n": len(ordered), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "mean_ms": statistics.fmean(ordered) / 1e6, "max_ms": ordered[-1] / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--store", default=None,
                        help="store URL of an empty database (default: SQLite in a temporary workspace)")
    parser.add_argument("--smoke", action="store_true", help="n=20, to check the script still runs (overrides --n)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/gate_latency.json, or .smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.n = 20
    out = args.out or Path(__file__).parent / "results" / f"gate_latency{'.smoke' if args.smoke else ''}.json"

    root = Path(tempfile.mkdtemp(prefix="forgegov-bench-"))
    ws = init_workspace(root / "ws", store_url=args.store)
    for name in ("alice", "bob"):
        create_identity(ws, name, PASSPHRASE)
    alice, bob = unlock(ws, "alice", PASSPHRASE), unlock(ws, "bob", PASSPHRASE)
    print(f"registering and checking {args.n} datasets ...", file=sys.stderr)
    assets = []
    for i in range(args.n):
        folder = root / "data" / f"d{i}"
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text(json.dumps({"text": f"record {i}"}) + "\n")
        asset = register_asset(ws, AssetKind.DATASET, folder, f"d{i}", "alice", dataset=DATA)
        check_dataset(ws, label(asset), signer=alice)
        assets.append(asset)

    with actions.policy_engine(ws) as engine:
        from urllib.parse import urlparse

        from opa_client.opa import OpaClient

        url = urlparse(engine.url)
        bare = OpaClient(host=url.hostname, port=url.port, timeout=2.0, retries=0)
        sign_ns, requests = [], []
        for asset in assets:
            t = time.perf_counter_ns()
            requests.append(make_statement(alice, Gate.DATASET, GateAction.REQUEST, asset))
            sign_ns.append(time.perf_counter_ns() - t)

        warm = submit(ws, engine, requests[0])
        with read_session(ws.database_url) as session:
            sample_input = json.loads(session.exec(select_decision_input(warm.decision_id)).one())
        for _ in range(50):
            bare.query_rule(sample_input, "forgegov.gates.dataset", "decision", {"provenance": "true"})
        bare_ns = []
        for _ in range(args.n):
            t = time.perf_counter_ns()
            bare.query_rule(sample_input, "forgegov.gates.dataset", "decision", {"provenance": "true"})
            bare_ns.append(time.perf_counter_ns() - t)

        request_ns = []
        for statement in requests[1:]:
            t = time.perf_counter_ns()
            outcome = submit(ws, engine, statement)
            request_ns.append(time.perf_counter_ns() - t)
            if outcome.result is not DecisionResult.PENDING:
                raise SystemExit(f"unexpected decision {outcome.result} for a fresh request")

        with read_session(ws.database_url) as session:
            open_ids = {r.asset_id: r.id for r in session.exec(select_open_requests())}
        approvals = [make_statement(bob, Gate.DATASET, GateAction.APPROVE, a, request_id=open_ids[a.id])
                     for a in assets]
        approve_ns = []
        for statement in approvals:
            t = time.perf_counter_ns()
            outcome = submit(ws, engine, statement)
            approve_ns.append(time.perf_counter_ns() - t)
            if outcome.result is not DecisionResult.ALLOW:
                raise SystemExit(f"unexpected decision {outcome.result} for a steward's approval")
        bare.close_connection()
    assert find_asset(ws, "d0").state.value == "approved"
    replay = replay_decisions(ws)
    if replay.agreed != replay.decisions or replay.differing:
        raise SystemExit(f"replay disagrees with the recorded decisions: {replay.to_dict()}")

    rows = [summary("bare OPA query (opa-python-client)", bare_ns), summary("gate: request → pending", request_ns),
            summary("gate: approve → approved", approve_ns), summary("client: sign a statement", sign_ns)]
    store = "postgresql" if args.store else "sqlite"
    print(f"\ngate decision latency, store={store}, n={args.n}")
    print(f"{'':38} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for row in rows:
        print(f"{row['name']:38} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {row['mean_ms']:8.3f} {row['max_ms']:8.3f}")
    base = rows[0]["p50_ms"]
    for row in rows[1:3]:
        print(f"{row['name']:38} p50 = {row['p50_ms'] / base:.1f}× the bare query")
    per_1000 = replay.seconds / replay.decisions * 1000
    print(f"replay of {replay.decisions} decisions: {replay.seconds:.2f} s, {per_1000:.2f} s per 1,000 decisions")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"store": store, "n": args.n, "rows": rows,
                               "replay": {"decisions": replay.decisions, "seconds": replay.seconds,
                                          "seconds_per_1000": per_1000}}, indent=2))
    return 0


def select_decision_input(decision_id: str):  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from forgegov.foundation.store.models import Decision

    return select(Decision.input).where(Decision.id == decision_id)


def select_open_requests():  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return select(GateRequest).where(GateRequest.status == "open")


if __name__ == "__main__":
    raise SystemExit(main())
