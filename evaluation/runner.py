"""One drift evaluation, top to bottom: a candidate and its base on the same items, the paired comparison per metric,
and the signed result.

1. Resolve the candidate and its base (the candidate's parent unless named) and the suites (registered, approved at
   the suite gate, their documents re-hashed), and read the design (α, power) and each metric's margin from the
   policy in force: a suite never sets its own bar.
2. Load every suite dataset through the verified door (approved data only, re-hashed) and build the items.
3. Load both checkpoints through the verified door; ask each the same items with the same greedy decoding, batched.
   The base is asked twice, in other batches, and the flips between those two passes are the noise floor.
4. Score (a task that names a judge has its replies classified by that checkpoint, loaded through the same door),
   compare per metric (statistics.py), Holm across the metrics of this evaluation.
5. Sign the statement and commit it to the log (governance/evaluations.py).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from forgegov.evaluation.generate import Output, greedy, log_likelihoods
from forgegov.evaluation.judge import JUDGE_VERSION, RefusalJudge, load_judge
from forgegov.evaluation.scorers import Scorer, refusal_score, scorer_named
from forgegov.evaluation.statistics import Design, MetricKind, MetricPlan, MetricResult, PairedScores, compare, decide
from forgegov.foundation.canonical import canonical_bytes
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, PolicyBundleError, StateConflict
from forgegov.foundation.store.db import read_session
from forgegov.foundation.vocabulary import AssetKind, AssetState
from forgegov.governance.evaluations import EvalRecord, record_evaluation, statement_for, verified_results
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.job_entries import JobKind, started
from forgegov.governance.loading.checkpoints import load_checkpoint
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.policy import data_in_force, policy_in_force
from forgegov.governance.registry import label, resolve
from forgegov.governance.runs.lifecycle import code_identity
from forgegov.governance.suites import TASKS, Suite, TaskSpec, registered_suite

RESULT_VERSION = 3  # 2: each metric names the approved suite (suite_digest) that measured it; 3: the job that ran it

# progress(phase, done, total, note); phases: "data", "base", "candidate", "noise", "decide".
Progress = Callable[[str, int, int, str], None]


def _quiet(_phase: str, _done: int, _total: int, _note: str) -> None:
    return None


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str | None  # None for likelihood items, whose text is `text`
    text: str
    target: Any
    cluster: str | None
    record: dict[str, Any]


@dataclass(frozen=True)
class RegisteredSuite:
    label: str
    digest: str
    suite: Suite


@dataclass(frozen=True)
class PlannedTask:
    suite: RegisteredSuite
    spec: TaskSpec
    scorer: Scorer
    plan: MetricPlan
    dataset: dict[str, str]  # label, digest
    items: tuple[Item, ...]
    judge: dict[str, str] | None = None  # label, digest of the classifier that decides refusal classes


def _design(settings: dict[str, Any]) -> Design:
    try:
        return Design(alpha=float(settings["alpha"]), power=float(settings["power"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyBundleError("the policy in force declares no evaluation design (gates.promotion.evaluation "
                                "alpha and power)", hint="adopt a policy whose data.json declares them") from exc


def _plan(settings: dict[str, Any], spec: TaskSpec, scorer: Scorer) -> MetricPlan:
    declared = (settings.get("metrics") or {}).get(spec.metric)
    if not isinstance(declared, dict):
        raise BadInput(f"the policy in force declares no margin for metric {spec.metric}",
                       hint="a metric is decided only against a margin policy states: add it to "
                            "gates.promotion.evaluation.metrics in policies/data/data.json by a policy change")
    if declared.get("kind") != scorer.kind.value:
        raise BadInput(f"metric {spec.metric} is {declared.get('kind')!r} in policy, but scorer {scorer.name} gives "
                       f"{scorer.kind.value} scores")
    try:
        return MetricPlan(spec.metric, scorer.kind, float(declared["margin"]), float(declared["planning_spread"]),
                          float(declared["cluster_spread"]) if spec.cluster and "cluster_spread" in declared else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"policy's metric {spec.metric} needs a numeric margin and planning_spread") from exc


def _items(spec: TaskSpec, records: Sequence[dict[str, Any]], where: str) -> tuple[Item, ...]:
    items = []
    for index, record in enumerate(records):
        if any(record.get(column) != value for column, value in spec.where.items()):
            continue
        text = record.get(spec.input)
        if not isinstance(text, str) or not text:
            raise BadInput(f"{where}: record {index} has no text in column {spec.input!r}")
        item_id = str(record[spec.id_column]) if spec.id_column and spec.id_column in record else str(index)
        cluster = None
        if spec.cluster is not None:
            if record.get(spec.cluster) is None:
                raise BadInput(f"{where}: record {index} has no value in cluster column {spec.cluster!r}")
            cluster = str(record[spec.cluster])
        if spec.target is not None and spec.target not in record:
            raise BadInput(f"{where}: record {index} has no target column {spec.target!r}")
        generates = TASKS[spec.task].generates
        items.append(Item(item_id, text if generates else None, text,
                          record.get(spec.target) if spec.target else None, cluster, record))
    if not items:
        raise BadInput(f"{where}: no record of the dataset matches the task's filter {spec.where}")
    if len({i.id for i in items}) != len(items):
        raise BadInput(f"{where}: two items share an id in column {spec.id_column!r}")
    return tuple(items)


def _approved_suite(session: Any, ref: str) -> RegisteredSuite:
    asset = resolve(session, ref, AssetKind.SUITE)
    if asset.state is not AssetState.APPROVED:
        raise StateConflict(f"{label(asset)} is {asset.state.value}: only a suite approved at the suite gate decides",
                            hint=f"forgegov request {label(asset)} --as NAME, then an ML lead approves it")
    return RegisteredSuite(label(asset), asset.digest, registered_suite(asset.manifest, asset.digest, label(asset)))


def plan_evaluation(workspace: Workspace, candidate_ref: str, suite_refs: Sequence[str], *, actor: str,
                    base_ref: str | None = None,
                    progress: Progress = _quiet) -> tuple[dict[str, str], dict[str, str], Design, list[PlannedTask],
                                                          dict[str, Any], list[RegisteredSuite]]:
    """Steps 1-2: what will be compared, on which items, against which margins; nothing loaded into a model yet."""
    if not suite_refs:
        raise BadInput("name at least one suite (--suite suite/NAME@VERSION)")
    with read_session(workspace.database_url) as session:
        require_active(get_identity(session, actor))
        candidate = resolve(session, candidate_ref, AssetKind.CHECKPOINT)
        if base_ref is None and candidate.parent_digest is None:
            raise BadInput(f"{label(candidate)} has no parent to compare with", hint="name one with --base")
        base = resolve(session, base_ref or candidate.parent_digest or "", AssetKind.CHECKPOINT)
        if base.digest == candidate.digest:
            raise BadInput("the base and the candidate are the same checkpoint",
                           hint="the noise floor (base against itself) is part of every result already")
        suites = [_approved_suite(session, ref) for ref in suite_refs]
        in_force = policy_in_force(session)
        settings = ((data_in_force(session).get("gates") or {}).get("promotion") or {}).get("evaluation") or {}
        datasets, judges = {}, {}
        for registered in suites:
            for spec in registered.suite.tasks:
                asset = resolve(session, spec.dataset, AssetKind.DATASET)
                datasets[(registered.digest, spec.metric)] = {"label": label(asset), "digest": asset.digest}
                if spec.judge is not None:
                    judge = resolve(session, spec.judge, AssetKind.CHECKPOINT)
                    if judge.state is not AssetState.APPROVED:
                        # Checked before any decoding: a result judged by it would not count.
                        raise StateConflict(f"{registered.label} has {label(judge)} judge {spec.metric}, which is "
                                            f"{judge.state.value}: only an approved judge decides",
                                            hint="approve it at the base gate, or register a suite without it")
                    judges[(registered.digest, spec.metric)] = {"label": label(judge), "digest": judge.digest}
        pair = ({"label": label(candidate), "digest": candidate.digest}, {"label": label(base), "digest": base.digest})
    design = _design(settings)
    metrics = [spec.metric for registered in suites for spec in registered.suite.tasks]
    if len(set(metrics)) != len(metrics):
        raise BadInput(f"two suites report the same metric ({', '.join(sorted(metrics))}): evaluate them separately")
    loaded: dict[str, list[dict[str, Any]]] = {}
    tasks = []
    for registered in suites:
        for spec in registered.suite.tasks:
            where = f"{registered.label}, metric {spec.metric}"
            scorer = scorer_named(spec.scorer, spec.options, has_target=spec.target is not None, where=where)
            dataset = datasets[(registered.digest, spec.metric)]
            if dataset["digest"] not in loaded:
                progress("data", len(loaded), len({d["digest"] for d in datasets.values()}), dataset["label"])
                rows = load_dataset(workspace, dataset["digest"], actor=actor,
                                    purpose=f"drift evaluation of {pair[0]['label']}")
                loaded[dataset["digest"]] = [dict(r) for r in rows]
            tasks.append(PlannedTask(registered, spec, scorer, _plan(settings, spec, scorer), dataset,
                                     _items(spec, loaded[dataset["digest"]], where),
                                     judges.get((registered.digest, spec.metric))))
    progress("data", len(loaded), len(loaded), "loaded")  # the bar completes, so its clock stops here
    policy = {"revision": in_force.revision, "digest": in_force.digest}
    return pair[0], pair[1], design, tasks, policy, suites


def _outputs(model: Any, tokenizer: Any, task: PlannedTask, batch_size: int,
             tick: Callable[[int], None]) -> list[Output]:
    if TASKS[task.spec.task].generates:
        return greedy(model, tokenizer, [i.text for i in task.items], task.spec.decoding, batch_size, tick)
    return log_likelihoods(model, tokenizer, [i.text for i in task.items], task.spec.decoding, batch_size, tick)


def _ask(workspace: Workspace, ref: str, tasks: Sequence[PlannedTask], *, actor: str, purpose: str,
         batch_sizes: Sequence[int], phases: Sequence[str], progress: Progress) -> list[list[list[Output]]]:
    """Per batch size, per task, the model's outputs; the model is loaded (verified) once."""
    model, tokenizer = load_checkpoint(workspace, ref, actor=actor, purpose=purpose)
    if tokenizer is None:
        raise BadInput(f"{ref} carries no tokenizer: a checkpoint is evaluated with its own")
    total = sum(len(t.items) for t in tasks)
    passes = []
    for batch_size, phase in zip(batch_sizes, phases, strict=True):
        done = 0

        def tick(count: int, phase: str = phase) -> None:
            nonlocal done
            done += count
            progress(phase, done, total, "")

        passes.append([_outputs(model, tokenizer, task, batch_size, tick) for task in tasks])
    return passes


def _scored(task: PlannedTask, outputs: Sequence[Output], judge: RefusalJudge | None,
            batch_size: int) -> list[tuple[float, str | None]]:
    if judge is not None:
        classes = judge.classify([i.text for i in task.items], [str(o.value) for o in outputs], batch_size)
        scores = [refusal_score(found, task.spec.options) for found in classes]
    else:
        scores = [task.scorer.score(output.value, item.target, item.record, task.spec.options)
                  for item, output in zip(task.items, outputs, strict=True)]
    return [(score.value, score.label) for score in scores]


def _noise(task: PlannedTask, first: Sequence[tuple[float, str | None]],
           second: Sequence[tuple[float, str | None]]) -> dict[str, Any]:
    """The base against itself, in other batches: flips (binary) or the largest difference (continuous)."""
    diffs = [abs(a[0] - b[0]) for a, b in zip(first, second, strict=True)]
    if task.plan.kind is MetricKind.BINARY:
        return {"n": len(diffs), "flips": sum(d > 0 for d in diffs), "rate": sum(d > 0 for d in diffs) / len(diffs)}
    return {"n": len(diffs), "max_abs_difference": max(diffs), "mean_abs_difference": sum(diffs) / len(diffs)}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def run_evaluation(workspace: Workspace, job: int, *, progress: Progress = _quiet) -> EvalRecord:
    """Run evaluation job JOB: what its `job.start` entry says to evaluate, for whom it says (the act's signer), once,
    and sign the result naming the job, so that a result counts at the promotion gate only when a start the policy
    allowed made it (`governance/jobs.py`)."""
    with read_session(workspace.database_url) as session:
        actor, kind, orders = started(session, job)
        if kind is not JobKind.EVALUATION:
            raise BadInput(f"job {job} is a {kind.value} job, not an evaluation")
    candidate_ref, suites, base_ref, batch_size = (orders["candidate"], orders["suites"], orders["base"],
                                                   orders["batch_size"])
    started_at = now_rfc3339()
    started_clock = time.perf_counter()
    # 1-2.
    candidate, base, design, tasks, policy, registered = plan_evaluation(
        workspace, candidate_ref, suites, actor=actor, base_ref=base_ref, progress=progress)
    with read_session(workspace.database_url) as session:
        done = [r.id for r in verified_results(workspace, session, candidate["digest"]) if r.job == job]
    if done:  # one job, one result: running a job again would add results nobody asked the policy for
        raise StateConflict(f"job {job} already made evaluation {done[0]}", hint="start another job to evaluate again")
    # 3. The base twice (the second pass in other batches: the noise floor), then the candidate.
    noise_batch = max(1, batch_size // 2) if batch_size > 1 else 2
    base_passes = _ask(workspace, base["digest"], tasks, actor=actor,
                       purpose=f"drift evaluation of {candidate['label']} (base)",
                       batch_sizes=(batch_size, noise_batch), phases=("base", "noise"), progress=progress)
    (candidate_outputs,) = _ask(workspace, candidate["digest"], tasks, actor=actor,
                                purpose="drift evaluation (candidate)", batch_sizes=(batch_size,),
                                phases=("candidate",), progress=progress)
    # 4. Judges (verified like the models) classify the replies of the tasks that name one.
    judges = {t.judge["digest"]: load_judge(workspace, t.judge["digest"], actor=actor,
                                            purpose=f"judging the drift evaluation of {candidate['label']}")
              for t in tasks if t.judge is not None}
    progress("decide", 0, 1, "")
    compared: list[MetricResult] = []
    noise: dict[str, Any] = {}
    lines: list[bytes] = []
    for index, task in enumerate(tasks):
        judge = judges[task.judge["digest"]] if task.judge is not None else None
        base_scores = _scored(task, base_passes[0][index], judge, batch_size)
        candidate_scores = _scored(task, candidate_outputs[index], judge, batch_size)
        noise[task.spec.metric] = _noise(task, base_scores, _scored(task, base_passes[1][index], judge, noise_batch))
        scores = PairedScores(
            item_ids=tuple(i.id for i in task.items), base=tuple(s[0] for s in base_scores),
            candidate=tuple(s[0] for s in candidate_scores),
            clusters=tuple(str(i.cluster) for i in task.items) if task.spec.cluster else None)
        compared.append(compare(task.plan, design, scores))
        for item, b_out, c_out, b, c in zip(task.items, base_passes[0][index], candidate_outputs[index],
                                            base_scores, candidate_scores, strict=True):
            lines.append(canonical_bytes({
                "metric": task.spec.metric, "item": item.id, "input": item.text, "prompt_digest": _digest(item.text),
                "cluster": item.cluster, "target": item.target if isinstance(item.target, str | int | float) else None,
                "base": {"output": b_out.value, "score": b[0], "label": b[1], "seconds": round(b_out.seconds, 6)},
                "candidate": {"output": c_out.value, "score": c[0], "label": c[1],
                              "seconds": round(c_out.seconds, 6)}}) + b"\n")
    decided = decide(compared, design)
    items = b"".join(lines)
    metrics = []
    for task, result in zip(tasks, decided, strict=True):
        doc = result.to_dict()
        doc.update({"task": task.spec.task.value, "suite": task.suite.label, "suite_digest": task.suite.digest,
                    "dataset": task.dataset,
                    "scorer": {"name": task.scorer.name, "version": task.scorer.version,
                               **({"judge": {**task.judge, "version": JUDGE_VERSION}} if task.judge else {})},
                    "planning_spread": task.plan.planning_spread, "cluster_spread": task.plan.cluster_spread,
                    "noise_floor": noise[task.spec.metric]})
        metrics.append(doc)
    predicate = {
        "result_version": RESULT_VERSION, "evaluation_id": str(uuid.uuid4()), "actor": actor, "job": job,
        "started_at": started_at, "finished_at": now_rfc3339(), "wall_s": round(time.perf_counter() - started_clock, 3),
        "candidate": candidate, "base": base, "policy": policy,
        "design": {"alpha": design.alpha, "power": design.power},
        "suites": [{"name": r.label, "digest": r.digest, "document": r.suite.to_document()} for r in registered],
        "batch_size": batch_size, "noise_batch_size": noise_batch, "code": code_identity(),
        "metrics": metrics,
        "items": {"digest": "sha256:" + hashlib.sha256(items).hexdigest(), "count": len(lines)},
    }
    # 5.
    record = record_evaluation(workspace, statement_for(candidate, json.loads(canonical_bytes(predicate))), items,
                               actor=actor)
    progress("decide", 1, 1, record.id)
    return record

