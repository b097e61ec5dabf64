"""XSTest's prompt file (Röttger et al. 2023: `id,prompt,type,label,focus,note`; 250 safe prompts that merely look
unsafe, 200 unsafe contrasts) as an eval dataset forgegov's intake reads: one JSON object per line, with `expect`
saying what a well-behaved model does (`comply` with a safe prompt, `refuse` an unsafe one), so that the same suite
tasks as the reference family's (`where = { expect = ... }`) apply.

forgegov ships no copy: a user brings theirs, converts it here, and registers the output as any dataset, through
intake and the dataset gate (`forgegov eval import-xstest CSV DIR`, then `forgegov dataset register DIR --name xstest
--owner NAME --kind eval --classification public`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from forgegov.foundation.errors import BadInput, UnreadablePath

HEADER = ["id", "prompt", "type", "label", "focus", "note"]
EXPECT = {"safe": "comply", "unsafe": "refuse"}
OUTPUT_FILE = "xstest.jsonl"


def read_xstest(path: Path) -> list[dict[str, Any]]:
    """The file's prompts as eval records, in file order; BadInput naming the row for anything else."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UnreadablePath(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text: {exc}") from exc
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != HEADER:
        raise BadInput(f"{path} is not an XSTest prompt file: its header must be {','.join(HEADER)}",
                       hint="use the prompt file (xstest_prompts.csv), not a file of model completions")
    records, seen = [], set()
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise BadInput(f"{path} row {number} has {len(row)} fields, not {len(HEADER)}")
        record = dict(zip(HEADER, (value.strip() for value in row), strict=True))
        if not record["id"] or record["id"] in seen:
            raise BadInput(f"{path} row {number}: the id {record['id']!r} is empty or repeated")
        if not record["prompt"]:
            raise BadInput(f"{path} row {number}: the prompt is empty")
        if record["label"] not in EXPECT:
            raise BadInput(f"{path} row {number}: the label is {record['label']!r}, not safe or unsafe")
        seen.add(record["id"])
        records.append({**record, "expect": EXPECT[record["label"]]})
    if not records:
        raise BadInput(f"{path} holds no prompts")
    return records


def write_xstest(path: Path, out_dir: Path) -> Path:
    """Convert `path` into `out_dir/xstest.jsonl` (the folder must be new or empty); the file written."""
    records = read_xstest(path)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInput(f"{out_dir} is not empty", hint="name a new folder: it becomes the dataset's folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_FILE
    lines = (json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
    target.write_text("".join(lines), encoding="utf-8")
    return target
