"""The team server under load: N members, each on their own workspace and key, send M gate decisions at once.

    python bench/team_server.py [--clients 50] [--decisions 10] [--store URL] [--blob-mib 64]
    python bench/team_server.py --smoke [--out FILE]    # 4 clients × 3 decisions, a 2 MiB blob (seconds)

  in-process gate (baseline)      `submit` in the server's own process, one request after another: the gate's own cost
  member → server, one at a time  the same request as a member makes it (prepare, sign here, send), one client
  member → server, N at once      N threads, each its own member workspace and key, all starting together
Every request is a dataset-gate request by an ML engineer on a dataset with its data-quality check, which the policy
leaves pending (a data steward must approve): a full gate decision (evidence, OPA, signatures, audit append, signed
tree head). Afterwards the log must hold exactly one decision per request sent: none lost, none twice.

  artifact upload / download      a blob through the server (`forgegov artifact put/get`: chunked, signed, verified
                                  on receipt and on fetch) beside boto3 against the Versity S3 gateway on the same
                                  machine (the object store's own client, no verification of ours), when it is built
Each figure comes from this run, on this machine, against a server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from forgegov.app import member
from forgegov.app.workspace import init_workspace
from forgegov.foundation.crypto.keys import key_path
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, Decision
from forgegov.foundation.vocabulary import AssetKind, Classification, DatasetKind, Gate, GateAction
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.evidence.data_quality import check_dataset
from forgegov.governance.gate import submit
from forgegov.governance.identities import create_identity, unlock, unlock_key_file
from forgegov.governance.policy import packaged_bundle
from forgegov.governance.registry import label, register_asset
from forgegov.governance.statements import make_statement

PASSPHRASE = "benchmark passphrase"
DATA = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)
VERSITYGW = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "forgegov" / "versitygw-v1.8.0" / \
    "versitygw"


def summary(name: str, samples_ns: list[int], seconds: float | None = None) -> dict:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
    row = {"name": name, "n": len(ordered), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
           "mean_ms": statistics.fmean(ordered) / 1e6, "max_ms": ordered[-1] / 1e6}
    if seconds is not None:
        row["decisions_per_s"] = len(ordered) / seconds
    return row


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, what: str) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited ({process.returncode})")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start within 60 s") from None
            time.sleep(0.1)


def policy_with_engineers(root: Path, names: list[str]) -> Path:
    """The shipped policy, with the benchmark's members as ML engineers (what a policy owner's change would do)."""
    bundle = root / "policy"
    shutil.copytree(packaged_bundle(), bundle, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    data_file = bundle / "data" / "data.json"
    data = json.loads(data_file.read_text())
    data["roles"].update({name: ["ml-engineer"] for name in names})
    data_file.write_text(json.dumps(data, indent=2))
    return bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--decisions", type=int, default=10, help="gate decisions each client sends")
    parser.add_argument("--baseline", type=int, default=50, help="in-process decisions for the baseline")
    parser.add_argument("--blob-mib", type=int, default=64)
    parser.add_argument("--store", default=None, help="store URL of an empty database (default: SQLite)")
    parser.add_argument("--smoke", action="store_true", help="4 clients × 3 decisions, baseline 5, a 2 MiB blob")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/team_server.json, or .smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.decisions, args.baseline, args.blob_mib = 4, 3, 5, 2
    out = args.out or Path(__file__).parent / "results" / f"team_server{'.smoke' if args.smoke else ''}.json"
    os.environ.setdefault("FORGEGOV_SERVICE_PASSPHRASE", "benchmark service passphrase")

    root = Path(tempfile.mkdtemp(prefix="forgegov-bench-team-"))
    names = [f"eng-{i:02d}" for i in range(args.clients)]
    ws = init_workspace(root / "server", store_url=args.store, policy_source=policy_with_engineers(root, names))
    for name in ["bob", *names]:
        create_identity(ws, name, PASSPHRASE)
    count = args.clients * args.decisions + args.decisions + args.baseline + 2
    print(f"registering and checking {count} datasets ...", file=sys.stderr)
    signer = unlock(ws, "bob", PASSPHRASE)
    assets = []
    for i in range(count):
        folder = root / "data" / f"d{i}"
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text(json.dumps({"text": f"record {i}"}) + "\n")
        asset = register_asset(ws, AssetKind.DATASET, folder, f"d{i}", "bob", dataset=DATA)
        check_dataset(ws, label(asset), signer=signer)
        assets.append(asset)

    # Baseline: the gate in-process, as a workspace of one runs it.
    engineer = unlock(ws, names[0], PASSPHRASE)
    with actions.policy_engine(ws) as engine:
        submit(ws, engine, make_statement(engineer, Gate.DATASET, GateAction.REQUEST, assets[0]))
        baseline_ns = []
        for asset in assets[1:args.baseline + 1]:
            t = time.perf_counter_ns()
            submit(ws, engine, make_statement(engineer, Gate.DATASET, GateAction.REQUEST, asset))
            baseline_ns.append(time.perf_counter_ns() - t)
    remaining = [f"d{i}" for i in range(args.baseline + 1, count)]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "ab")
    server = subprocess.Popen([sys.executable, "-c", "from forgegov.app.cli.main import main; main()", "-w",
                               str(ws.root), "server", "--port", str(port), "--rate", "100000"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(url + "/v1/trust", server, "the server")
        laptops = {}
        for name in names:
            laptop = member.join(root / "laptops" / name, url, name)
            laptop.keys_dir.mkdir(exist_ok=True)
            shutil.copyfile(key_path(ws.keys_dir, name), key_path(laptop.keys_dir, name))
            laptops[name] = (laptop, unlock_key_file(laptop, name, PASSPHRASE))

        def decide(name: str, subject: str) -> tuple[int, str]:
            laptop, key = laptops[name]
            connection = member.Connection(laptop)
            t = time.perf_counter_ns()
            prepared = member.prepare_remote(connection, key, subject, GateAction.REQUEST, None, None)
            outcome = member.send_statement(connection, key, actions.sign_prepared(key, prepared,
                                                                                   GateAction.REQUEST))
            elapsed = time.perf_counter_ns() - t
            if outcome.result.value != "pending":
                raise SystemExit(f"unexpected decision {outcome.result.value} for {subject}")
            return elapsed, outcome.decision_id

        decide(names[0], remaining[0])  # the server's first decision starts its OPA: not a figure
        serial_ns = [decide(names[0], subject)[0] for subject in remaining[1:args.decisions + 1]]
        concurrent_subjects = remaining[args.decisions + 1:]
        per_client = {name: concurrent_subjects[i::args.clients] for i, name in enumerate(names)}
        results: dict[str, list[tuple[int, str]]] = {name: [] for name in names}
        errors: list[str] = []
        start = threading.Barrier(len(names) + 1)

        def client(name: str) -> None:
            start.wait()
            try:
                for subject in per_client[name]:
                    results[name].append(decide(name, subject))
            except Exception as exc:  # noqa: BLE001 - a benchmark thread reports any failure instead of dying silently
                errors.append(f"{name}: {exc!r}")

        threads = [threading.Thread(target=client, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        start.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
        if errors:
            raise SystemExit("clients failed: " + "; ".join(errors[:5]))
        concurrent_ns = [elapsed for rows in results.values() for elapsed, _ in rows]
        decided_ids = [decision for rows in results.values() for _, decision in rows]

        # None lost, none twice: one recorded decision per request sent, each reported to exactly one client.
        with read_session(ws.database_url) as session:
            logged = session.exec(_count_requests()).one()
            stored = set(session.exec(_decision_ids()).all())
        sent = 2 + args.baseline + len(serial_ns) + len(concurrent_ns)
        lost = sent - logged
        duplicated = len(decided_ids) - len(set(decided_ids))
        missing = len(set(decided_ids) - stored)

        blob = root / "blob.bin"
        blob.write_bytes(os.urandom(args.blob_mib << 20))
        laptop, _key = laptops[names[0]]
        t = time.perf_counter()
        put = member.put_artifact(laptop, blob, names[0], PASSPHRASE)
        upload_s = time.perf_counter() - t
        t = time.perf_counter()
        member.get_artifact(laptop, put["digest"], root / "fetched.bin", names[0], PASSPHRASE)
        download_s = time.perf_counter() - t
        assert hashlib.sha256((root / "fetched.bin").read_bytes()).hexdigest() == put["digest"][7:]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    s3 = s3_baseline(root, blob) if VERSITYGW.is_file() else None

    rows = [summary("in-process gate (baseline)", baseline_ns),
            summary("member → server, one at a time", serial_ns),
            summary(f"member → server, {args.clients} at once", concurrent_ns, wall)]
    mib = args.blob_mib
    transfer = {"mib": mib, "upload_mib_s": mib / upload_s, "download_mib_s": mib / download_s}
    if s3 is not None:
        transfer |= {"s3_upload_mib_s": mib / s3[0], "s3_download_mib_s": mib / s3[1]}
    target = rows[2]["p99_ms"] < 100 and args.clients >= 50
    store = "postgresql" if args.store else "sqlite"
    print(f"\nteam server, store={store}, {args.clients} clients × {args.decisions} decisions")
    print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for row in rows:
        print(f"{row['name']:36} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f} {row['max_ms']:8.2f}")
    base = rows[0]["p50_ms"]
    print(f"one member's decision p50 = {rows[1]['p50_ms'] / base:.1f}× the in-process gate; {args.clients} at once: "
          f"{rows[2]['decisions_per_s']:.1f} decisions/s over {wall:.1f} s")
    print(f"lost {lost}, duplicated {duplicated}, reported but not stored {missing}")
    print(f"artifact {mib} MiB through the server: upload {transfer['upload_mib_s']:.1f} MiB/s, download "
          f"{transfer['download_mib_s']:.1f} MiB/s"
          + (f"; boto3 → S3 gateway: upload {transfer['s3_upload_mib_s']:.1f} MiB/s, download "
             f"{transfer['s3_download_mib_s']:.1f} MiB/s" if s3 is not None else "; (S3 gateway not built)"))
    print(f"target (50 clients, p99 < 100 ms): {'PASS' if target else 'MISS'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"store": store, "clients": args.clients, "decisions": args.decisions, "rows": rows,
                               "lost": lost, "duplicated": duplicated, "missing": missing, "transfer": transfer,
                               "target_met": target}, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    return 0 if lost == duplicated == missing == 0 else 1


def s3_baseline(root: Path, blob: Path) -> tuple[float, float]:
    """boto3's own upload_file/download_file against the Versity S3 gateway on this machine."""
    import boto3

    port = free_port()
    (root / "s3").mkdir()
    gateway = subprocess.Popen([str(VERSITYGW), "--access", "bench", "--secret", "bench-secret", "--port",
                                f"127.0.0.1:{port}", "posix", str(root / "s3")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(endpoint, gateway, "the S3 gateway")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                              aws_secret_access_key="bench-secret")
        client.create_bucket(Bucket="bench")
        t = time.perf_counter()
        client.upload_file(str(blob), "bench", "blob")
        upload = time.perf_counter() - t
        t = time.perf_counter()
        client.download_file("bench", "blob", str(root / "s3-fetched.bin"))
        return upload, time.perf_counter() - t
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


def _count_requests():  # type: ignore[no-untyped-def]
    from sqlmodel import func, select

    return select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "gate.dataset.request")


def _decision_ids():  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return select(Decision.id)


if __name__ == "__main__":
    raise SystemExit(main())
