"""A verified evaluation, written for people: a self-contained HTML drift report with its JSON, and an Inspect eval
log (inspect-ai's own log model) so that `inspect view` opens it.

Everything here is read from a result `governance/evaluations.py` has verified (the signed statement) and from its
per-item lines re-hashed against the digest the statement signs; nothing is recomputed, so the report shows what the
promotion gate reads.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from forgegov.foundation.errors import BadInput
from forgegov.governance.evaluations import EvalRecord

_REQUIRED_HINT = "a metric's verdict is the paired non-inferiority test against the policy's margin"


def report_document(record: EvalRecord, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON beside the HTML: the signed statement, and per metric the items that flipped with both outputs."""
    flipped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        metric = next(m for m in record.predicate["metrics"] if m["metric"] == item["metric"])
        if metric["kind"] == "binary" and item["base"]["score"] != item["candidate"]["score"]:
            flipped.setdefault(item["metric"], []).append(item)
    return {"evaluation": record.id, "audit_entry": record.seq, "recorded_at": record.time, "actor": record.actor,
            "statement": record.statement, "flipped": flipped}


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:+.{digits}f}" if isinstance(value, int | float) else "–"


def _forest(metrics: list[dict[str, Any]]) -> str:
    """One row per metric: the interval of the difference as a bar, the point estimate, zero and the margin line
    (drawn in units of each metric's own margin, so binary and continuous metrics share an axis)."""
    width, row, left = 520, 34, 170
    scale = (width - left - 20) / 4.0  # from −2.5 margins to +1.5 margins
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(metrics) + 30}" '
           'role="img" aria-label="paired differences with their intervals against the margins">']

    def x(units: float) -> float:
        return left + (min(max(units, -2.5), 1.5) + 2.5) * scale

    top, bottom = 10, row * len(metrics) + 10
    svg.append(f'<line x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" y2="{bottom}" stroke="#888"/>')
    svg.append(f'<line x1="{x(-1):.1f}" y1="{top}" x2="{x(-1):.1f}" y2="{bottom}" stroke="#c00" '
               'stroke-dasharray="4 3"/>')
    svg.append(f'<text x="{x(-1):.1f}" y="{bottom + 14}" font-size="11" text-anchor="middle" fill="#c00">'
               '−margin</text><text x="{:.1f}" y="{}" font-size="11" text-anchor="middle">0</text>'
               .format(x(0), bottom + 14))
    for i, m in enumerate(metrics):
        y = top + row * i + row / 2
        low, high = (v / m["margin"] for v in m["interval"])
        colour = {"non-inferior": "#2a7", "inferior": "#c00"}.get(m["verdict"], "#d80")
        svg.append(f'<text x="4" y="{y + 4:.1f}" font-size="12">{html.escape(m["metric"])}</text>')
        svg.append(f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" stroke="{colour}" '
                   'stroke-width="4"/>')
        svg.append(f'<circle cx="{x(m["difference"] / m["margin"]):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
    svg.append("</svg>")
    return "".join(svg)


def render_html(document: dict[str, Any]) -> str:
    predicate = document["statement"]["predicate"]
    metrics = predicate["metrics"]
    e = html.escape
    rows = []
    for m in metrics:
        noise = m["noise_floor"]
        floor = (f"{noise['flips']} of {noise['n']} flipped" if "flips" in noise
                 else f"largest |Δ| {noise['max_abs_difference']:.2g}")
        rows.append(
            f"<tr class=\"{e(m['verdict'])}\"><td>{e(m['metric'])}</td><td>{e(m['task'])}</td><td>{m['n']}</td>"
            f"<td>{m['base_mean']:.4f}</td><td>{m['candidate_mean']:.4f}</td><td>{_number(m['difference'], 4)}</td>"
            f"<td>[{_number(m['interval'][0], 4)}, {_number(m['interval'][1], 4)}]</td><td>−{m['margin']:g}</td>"
            f"<td>{m['power']:.2f} (needs {m['required']})</td><td>{m['adjusted_p']:.3g}</td><td>{e(floor)}</td>"
            f"<td><b>{e(m['verdict'])}</b></td></tr>")
    flips = []
    for name, items in document["flipped"].items():
        lines = "".join(
            f"<tr><td>{e(str(i['item']))}</td><td>{e(str(i.get('input', '')))}</td>"
            f"<td>{'pass → fail' if i['base']['score'] > i['candidate']['score'] else 'fail → pass'}</td>"
            f"<td><pre>{e(str(i['base']['output']))}</pre><small>{e(str(i['base']['label']))}</small></td>"
            f"<td><pre>{e(str(i['candidate']['output']))}</pre><small>{e(str(i['candidate']['label']))}</small></td>"
            "</tr>" for i in items)
        flips.append(f"<h3>{e(name)}: {len(items)} items flipped</h3><table><tr><th>item</th><th>input</th>"
                     f"<th>change</th><th>base output</th><th>candidate output</th></tr>{lines}</table>")
    verdicts = ", ".join(f"{m['metric']} {m['verdict']}" for m in metrics)
    suites = ", ".join(f"{s['name']} ({s['digest']})" for s in predicate["suites"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {e(document['evaluation'])}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }}
tr.inferior td {{ background: #fde8e8; }} tr.insufficient-evidence td {{ background: #fff3dd; }}
pre {{ margin: 0; white-space: pre-wrap; max-width: 32em; }} code {{ font-size: 12px; }}
</style></head><body>
<h1>Drift report: {e(predicate['candidate']['label'])} against {e(predicate['base']['label'])}</h1>
<p>Evaluation <code>{e(document['evaluation'])}</code>, run by {e(predicate['actor'])}, recorded in audit entry
{document['audit_entry']} at {e(document['recorded_at'])}, signed with the platform key.<br>
Candidate <code>{e(predicate['candidate']['digest'])}</code><br>Base <code>{e(predicate['base']['digest'])}</code><br>
Policy {e(predicate['policy']['revision'])} (<code>{e(predicate['policy']['digest'])}</code>): one-sided α
{predicate['design']['alpha']}, power {predicate['design']['power']}, Holm across the {len(metrics)} metrics.<br>
Suites: {e(suites)}.</p>
<h2>Decision per metric</h2>
<p>{e(verdicts)}. {e(_REQUIRED_HINT)}; "insufficient-evidence" means the suite is too small to see its margin at the
declared power. The noise floor is the base against itself, asked again in other batches.</p>
{_forest(metrics)}
<table><tr><th>metric</th><th>task</th><th>n</th><th>base</th><th>candidate</th><th>difference</th>
<th>interval (1 − 2α)</th><th>margin</th><th>power</th><th>Holm p</th><th>noise floor</th><th>verdict</th></tr>
{''.join(rows)}</table>
<h2>Items that flipped</h2>
{''.join(flips) or '<p>None.</p>'}
</body></html>
"""


def write_report(record: EvalRecord, items: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """`out` (HTML) and the JSON beside it (same name, `.json`)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"the report is an HTML page: name it with .html, got {out}")
    document = report_document(record, items)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(document), encoding="utf-8")
    data = out.with_suffix(".json")
    data.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return out, data


def inspect_log(record: EvalRecord, items: list[dict[str, Any]]) -> Any:
    """The evaluation as an Inspect `EvalLog` of the candidate: one sample per item (its output, its score and the
    base's), one `EvalScore` per metric with the paired numbers, the verdict in its metadata."""
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
    )
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    predicate = record.predicate
    candidate = predicate["candidate"]["label"]
    samples = [EvalSample(
        id=f"{i['metric']}/{i['item']}", epoch=1, input=str(i.get("input", i["prompt_digest"])),
        target=str(i["target"]) if i.get("target") is not None else "",
        output=ModelOutput.from_content(candidate, str(i["candidate"]["output"])),
        scores={"candidate": Score(value=i["candidate"]["score"], answer=str(i["candidate"]["output"]),
                                   explanation=i["candidate"]["label"]),
                "base": Score(value=i["base"]["score"], answer=str(i["base"]["output"]),
                              explanation=i["base"]["label"])},
        metadata={"metric": i["metric"], "prompt_digest": i["prompt_digest"], "cluster": i["cluster"],
                  "base_model": predicate["base"]["label"], "seconds": i["candidate"]["seconds"]},
    ) for i in items]
    scores = [EvalScore(
        name=m["metric"], scorer=f"{m['scorer']['name']} ({m['scorer']['version']})", scored_samples=m["n"],
        metrics={name: EvalMetric(name=name, value=float(value)) for name, value in (
            ("base", m["base_mean"]), ("candidate", m["candidate_mean"]), ("difference", m["difference"]),
            ("lower", m["interval"][0]), ("upper", m["interval"][1]), ("margin", m["margin"]),
            ("power", m["power"]), ("holm_p", m["adjusted_p"]))},
        metadata={"verdict": m["verdict"], "method": m["method"], "required": m["required"],
                  "noise_floor": m["noise_floor"], "dataset": m["dataset"]},
    ) for m in predicate["metrics"]]
    spec = EvalSpec(
        created=predicate["finished_at"], task="forgegov-drift", task_id=record.id, run_id=record.id,
        eval_id=record.id, dataset=EvalDataset(name=", ".join(s["name"] for s in predicate["suites"]),
                                               samples=len(samples)),
        model=candidate, config=EvalConfig(),
        metadata={"base": predicate["base"], "candidate": predicate["candidate"], "policy": predicate["policy"],
                  "design": predicate["design"], "audit_entry": record.seq,
                  "suites": [{"name": s["name"], "digest": s["digest"]} for s in predicate["suites"]]},
    )
    return EvalLog(eval=spec, status="success", results=EvalResults(total_samples=len(samples),
                                                                    completed_samples=len(samples), scores=scores),
                   samples=samples)


def write_inspect_log(record: EvalRecord, items: list[dict[str, Any]], out: Path) -> Path:
    from inspect_ai.log import write_eval_log

    out = Path(out)
    if out.suffix not in (".eval", ".json"):
        raise BadInput(f"an Inspect log is named .eval (or .json), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(inspect_log(record, items), str(out))
    return out
