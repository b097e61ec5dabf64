"""Dataset digest throughput: forgegov's manifests beside `sha256sum` on the same ~1 GB JSONL file, same run.

    python bench/dataset_manifest.py [--size-mb 1024] [--repeat 3] [--workdir DIR] [--mean-words 250]
    python bench/dataset_manifest.py --smoke [--out FILE]  # 4 MiB, one run each: checks the script still runs

Measured on one generated JSONL file of `{"text": ...}` records (deterministic seed), page cache warm, best of
--repeat runs each:
  sha256sum FILE              coreutils, as a subprocess (the baseline the target is stated against)
  openssl dgst -sha256 FILE   a second reference, where openssl is installed: OpenSSL's SHA-256 uses the CPU's SHA
                              extensions, which a coreutils build without OpenSSL does not, so it can be several
                              times faster than sha256sum on the same machine (Python's hashlib is OpenSSL's)
  build_manifest(path)        forgegov's plain files manifest: size + SHA-256 of every file
  scan_dataset(path)          the dataset intake that registration runs: SHA-256 + UTF-8 + JSON object per line +
                              record count, in one streamed pass
Each forgegov figure is reported as a ratio of the sha256sum throughput from this run; the target for
scan_dataset (what registration uses) is >= 0.8x.
The file is written to --workdir (kept and reused when its size and seed match) or to a temporary folder that is
removed afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from forgegov.foundation.manifest import build_manifest, hash_file
from forgegov.governance.datasets.intake import scan_dataset

TARGET = 0.8
SEED = 20240611
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "an", "el", "or", "ut", "ry", "sh", "th",
              "qu", "br", "st", "ph", "ion", "ent", "ar", "ex", "ol"]


def _vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    words = {"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "on", "by"}
    while len(words) < size:
        words.add("".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))))
    return sorted(words)


def generate(path: Path, size_bytes: int, mean_words: int) -> int:
    """Write JSONL text records until the file reaches `size_bytes`; returns the record count."""
    rng = random.Random(SEED)
    vocab = _vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf-like, as natural text is
    cumulative = list(itertools.accumulate(weights))
    written, records = 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < size_bytes:
            lines = []
            for _ in range(1000):
                words = rng.choices(vocab, cum_weights=cumulative, k=max(1, int(rng.expovariate(1 / mean_words))))
                for i in range(0, len(words), 17):  # sentences
                    words[i] = words[i].capitalize()
                text = " ".join(words) + "."
                if rng.random() < 0.05:
                    text += " Ünïcödé — naïve café 東京 😀"
                lines.append(json.dumps({"text": text}, ensure_ascii=rng.random() < 0.5) + "\n")
            chunk = "".join(lines)
            handle.write(chunk)
            written += len(chunk.encode("utf-8"))
            records += len(lines)
    return records


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


def openssl_sha256(path: Path) -> str:
    out = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated JSONL file (MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--mean-words", type=int, default=250, help="mean words per record (exponential)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated file here and reuse it (default: a temporary folder, removed)")
    parser.add_argument("--smoke", action="store_true",
                        help="--size-mb 4 --repeat 1, to check the script still runs (overrides both)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/dataset_manifest.json, or .smoke.json with --smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.size_mb, args.repeat = 4, 1
    out = args.out or Path(__file__).parent / "results" / f"dataset_manifest{'.smoke' if args.smoke else ''}.json"
    if shutil.which("sha256sum") is None:
        raise SystemExit("sha256sum (coreutils) is not on PATH; it is the baseline")

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="forgegov-bench-manifest-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        size_bytes = args.size_mb << 20
        data = workdir / f"corpus-{args.size_mb}mb-w{args.mean_words}-s{SEED}.jsonl"
        if not data.exists() or data.stat().st_size < size_bytes:
            print(f"generating {args.size_mb} MiB of JSONL text records in {data} ...", file=sys.stderr)
            start = time.perf_counter()
            generate(data, size_bytes, args.mean_words)
            print(f"  done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        size = data.stat().st_size
        mb = size / 1e6

        # Warm the page cache and check that every reader hashes the same bytes.
        expected = sha256sum(data)
        assert hash_file(data)[1] == expected

        rows: list[dict[str, float | str]] = []
        seconds, digest = best_of(args.repeat, lambda: sha256sum(data))
        assert digest == expected
        rows.append({"name": "sha256sum (coreutils)", "seconds": seconds})
        if shutil.which("openssl"):
            seconds, digest = best_of(args.repeat, lambda: openssl_sha256(data))
            assert digest == expected
            rows.append({"name": "openssl dgst -sha256 (reference)", "seconds": seconds})
        seconds, manifest = best_of(args.repeat, lambda: build_manifest(data))
        assert manifest.files[0].sha256 == expected  # type: ignore[attr-defined]
        rows.append({"name": "build_manifest (files manifest)", "seconds": seconds})
        seconds, scanned = best_of(args.repeat, lambda: scan_dataset(data))
        assert scanned.files[0].sha256 == expected  # type: ignore[attr-defined]
        records = scanned.records  # type: ignore[attr-defined]
        rows.append({"name": "scan_dataset (registration intake)", "seconds": seconds})
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)

    base = mb / rows[0]["seconds"]  # type: ignore[operator]
    print(f"\ndataset digest throughput: {size:,} bytes, {records:,} records "
          f"({size / records:,.0f} bytes/record), best of {args.repeat}, warm page cache")
    print(f"{'':38} {'seconds':>8} {'MB/s':>8} {'× sha256sum':>12}")
    for row in rows:
        row["mb_per_s"] = mb / row["seconds"]  # type: ignore[operator]
        row["ratio"] = row["mb_per_s"] / base  # type: ignore[operator]
        print(f"{row['name']:38} {row['seconds']:8.2f} {row['mb_per_s']:8.0f} {row['ratio']:11.2f}×")
    scan = rows[-1]
    verdict = "PASS" if scan["ratio"] >= TARGET else "MISS"  # type: ignore[operator]
    print(f"scan_dataset vs sha256sum: {scan['ratio']:.2f}× (target >= {TARGET}×): {verdict}")
    if rows[1]["name"].startswith("openssl"):
        print(f"scan_dataset vs openssl dgst: {scan['mb_per_s'] / rows[1]['mb_per_s']:.2f}× "  # type: ignore[operator]
              "(reference only; sha256sum here may lack the SHA extensions)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bytes": size, "records": records, "repeat": args.repeat, "target": TARGET,
                               "verdict": verdict, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
