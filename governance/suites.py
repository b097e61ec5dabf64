"""An evaluation suite: one TOML file saying which approved datasets a drift evaluation asks, how, and how each
answer is scored, typed and validated on load.

A suite pre-registers everything a comparison depends on except the margins: the items (datasets by reference,
resolved to digests when the evaluation runs, and an optional filter on their columns), the decoding (greedy only:
both models must meet the same deterministic procedure), the scorer and its options, the metric each task reports,
and an optional cluster column (items that share a template or a passage count as one piece of evidence). How much
worse a candidate may be, and with which α and power, is policy's (`policies/data`, `evaluation`): a suite that could
set its own margin would let whoever writes it decide the outcome.

Unknown keys are refused everywhere, as in a run recipe. `to_document()` is the canonical form that eval results
carry and `digest` hashes.

A suite decides promotions only once approved at the suite gate, like the data it reads: registering it
(`scan_suite`) resolves every dataset reference to the digest registered now, so the approved suite names exact bytes
and a later version of a dataset cannot slip in under its name. The registered document is the suite's identity; its
digest is what every result records per metric, and what the promotion gate checks is approved.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, NotFound, StoreTampered, UnreadablePath
from forgegov.foundation.manifest import FileEntry
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind, DatasetKind

SUITE_VERSION = 1

_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_EXACT_REF = re.compile(r"^(?:dataset/)?(?P<name>[a-z0-9][a-z0-9._-]{0,127})@(?P<version>[1-9][0-9]{0,8})\Z"
                        r"|^(?P<digest>sha256:[0-9a-f]{64})\Z")
_REF_RE = re.compile(r"^(?:dataset/)?[a-z0-9][a-z0-9._-]{0,127}(?:@[1-9][0-9]{0,8})?\Z|^sha256:[0-9a-f]{12,64}\Z")
_EXACT_CHECKPOINT = re.compile(r"^(?:checkpoint/)?(?P<name>[a-z0-9][a-z0-9._-]{0,127})@(?P<version>[1-9][0-9]{0,8})\Z"
                               r"|^(?P<digest>sha256:[0-9a-f]{64})\Z")


class SuiteError(BadInput):
    """A suite is unreadable or invalid; the message names the field and what it must be."""


class TaskKind(StrEnum):
    SAFETY = "safety"  # harmful requests: pass = fully refused
    OVER_REFUSAL = "over-refusal"  # benign look-alikes: pass = fully answered
    INSTRUCTIONS = "instructions"  # verifiable constraints: pass = the reply keeps its constraint
    DOMAIN = "domain"  # the organisation's own facts: pass = the reply matches the target
    RETENTION = "general-retention"  # held-out general text: per-item mean token log-likelihood
    CUSTOM = "custom"  # any scorer, declared in full


class Template(StrEnum):
    CHAT = "chat"  # the prompt is one user turn, rendered by the checkpoint's own chat template
    RAW = "raw"  # the prompt is the text the model continues


@dataclass(frozen=True)
class TaskRules:
    scorer: str | None  # the scorer a task of this kind uses; None: the suite names one (custom)
    options: dict[str, Any]  # the scorer's options this kind fixes
    generates: bool  # whether the task decodes replies (else it scores the text's likelihood)
    dataset_kinds: tuple[DatasetKind, ...]


# What differs between task kinds, in one table.
TASKS: dict[TaskKind, TaskRules] = {
    TaskKind.SAFETY: TaskRules("refusal", {"pass_when": "full_refusal"}, True, (DatasetKind.EVAL,)),
    TaskKind.OVER_REFUSAL: TaskRules("refusal", {"pass_when": "full_compliance"}, True, (DatasetKind.EVAL,)),
    TaskKind.INSTRUCTIONS: TaskRules("constraint", {}, True, (DatasetKind.EVAL,)),
    TaskKind.DOMAIN: TaskRules("match", {}, True, (DatasetKind.EVAL,)),
    # Held-out general text is often registered as pre-training text; its likelihood is what retention measures.
    TaskKind.RETENTION: TaskRules("loglik", {}, False, (DatasetKind.EVAL, DatasetKind.PRETRAINING_TEXT)),
    TaskKind.CUSTOM: TaskRules(None, {}, True, (DatasetKind.EVAL,)),
}


def _fail(where: str, problem: str, hint: str | None = None) -> SuiteError:
    return SuiteError(f"suite field {where} {problem}", hint=hint)


def _table(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be a table, got {value!r}")
    unknown = sorted(set(value) - required - optional)
    missing = sorted(required - set(value))
    if unknown:
        raise _fail(where, f"has unknown keys: {', '.join(unknown)}",
                    hint=f"allowed: {', '.join(sorted(required | optional))}")
    if missing:
        raise _fail(where, f"is missing: {', '.join(missing)}")
    return value


def _text(value: Any, where: str, pattern: re.Pattern[str] | None = None, what: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.match(value)):
        raise _fail(where, f"must be {what}, got {value!r}")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _choice(enum: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise _fail(where, f"must be one of {' | '.join(m.value for m in enum)}, got {value!r}") from None


def _scalars(value: Any, where: str) -> dict[str, str | int | float | bool]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()):
        raise _fail(where, f"must be a table of strings, numbers or booleans, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class Decoding:
    """Greedy decoding only: sampling would make the base and the candidate meet different procedures."""

    max_new_tokens: int = 32
    template: Template = Template.CHAT
    max_prompt_tokens: int = 512  # longer prompts (or texts, for likelihood) are cut from the left

    @classmethod
    def parse(cls, value: Any, where: str, defaults: Decoding | None = None) -> Decoding:
        base = defaults or cls()
        if value is None:
            return base
        doc = _table(value, where, set(), {"max_new_tokens", "template", "max_prompt_tokens", "strategy"})
        if doc.get("strategy", "greedy") != "greedy":
            raise _fail(f"{where}.strategy", f"must be greedy, got {doc['strategy']!r}",
                        hint="a drift comparison needs identical deterministic decoding for both models")
        return cls(max_new_tokens=_int(doc.get("max_new_tokens", base.max_new_tokens), f"{where}.max_new_tokens",
                                       1, 4096),
                   template=_choice(Template, doc.get("template", base.template.value), f"{where}.template"),
                   max_prompt_tokens=_int(doc.get("max_prompt_tokens", base.max_prompt_tokens),
                                          f"{where}.max_prompt_tokens", 8, 1 << 20))

    def to_document(self) -> dict[str, Any]:
        return {"strategy": "greedy", "max_new_tokens": self.max_new_tokens, "template": self.template.value,
                "max_prompt_tokens": self.max_prompt_tokens}


@dataclass(frozen=True)
class TaskSpec:
    metric: str  # the name policy margins and required metrics refer to
    task: TaskKind
    dataset: str  # a dataset reference, resolved to its digest when the evaluation runs
    input: str  # the column holding the prompt (or, for likelihood, the text)
    scorer: str
    options: dict[str, Any]
    decoding: Decoding
    target: str | None = None  # the column holding the reference answer, for scorers that need one
    where: dict[str, Any] = field(default_factory=dict)  # keep only records whose columns equal these values
    cluster: str | None = None
    id_column: str | None = None  # else an item is named by its position in the dataset
    # A classifier checkpoint that decides refusal classes instead of the rule table (evaluation/judge.py): an exact
    # reference, resolved to its digest at registration like the datasets.
    judge: str | None = None

    def to_document(self) -> dict[str, Any]:
        document = {"metric": self.metric, "task": self.task.value, "dataset": self.dataset, "input": self.input,
                    "target": self.target, "scorer": self.scorer, "options": dict(sorted(self.options.items())),
                    "decoding": self.decoding.to_document(), "where": dict(sorted(self.where.items())),
                    "cluster": self.cluster, "id_column": self.id_column}
        # Only when set: the documents (and digests) of suites registered before judges existed stay what they were.
        return {**document, "judge": self.judge} if self.judge is not None else document


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[TaskSpec, ...]
    version: int = SUITE_VERSION

    def to_document(self) -> dict[str, Any]:
        return {"suite_version": self.version, "name": self.name, "description": self.description,
                "tasks": [t.to_document() for t in self.tasks]}

    @property
    def digest(self) -> str:
        return digest_of(self.to_document())


_TASK_KEYS = {"metric", "task", "dataset", "input"}
_TASK_OPTIONAL = {"target", "scorer", "options", "decoding", "where", "cluster", "id_column", "judge"}
JUDGED_SCORERS = frozenset({"refusal"})


def _task(value: Any, where: str, decoding: Decoding) -> TaskSpec:
    doc = _table(value, where, _TASK_KEYS, _TASK_OPTIONAL)
    kind = _choice(TaskKind, doc["task"], f"{where}.task")
    rules = TASKS[kind]
    scorer = doc.get("scorer", rules.scorer)
    if rules.scorer is not None and scorer != rules.scorer:
        raise _fail(f"{where}.scorer", f"is {scorer!r}, but a {kind.value} task is scored by {rules.scorer!r}",
                    hint="use task = \"custom\" to choose another scorer")
    scorer = _text(scorer, f"{where}.scorer", what="the name of a scorer")
    options = _scalars(doc.get("options", {}), f"{where}.options")
    for key, fixed in rules.options.items():
        if options.setdefault(key, fixed) != fixed:
            raise _fail(f"{where}.options.{key}", f"is fixed to {fixed!r} for a {kind.value} task")
    dataset = _text(doc["dataset"], f"{where}.dataset", _REF_RE,
                    "a dataset reference: dataset/NAME@VERSION or sha256:<at least 12 hex digits>")
    judge = doc.get("judge")
    if judge is not None:
        _text(judge, f"{where}.judge", _EXACT_CHECKPOINT,
              "an exact checkpoint reference: checkpoint/NAME@VERSION or sha256:<64 hex>")
        if scorer not in JUDGED_SCORERS:
            raise _fail(f"{where}.judge", f"is set, but scorer {scorer!r} takes no judge",
                        hint=f"a judge classifies replies for: {', '.join(sorted(JUDGED_SCORERS))}")
    columns = {name: doc.get(name) for name in ("input", "target", "cluster", "id_column")}
    for name, column in columns.items():
        if column is not None:
            _text(column, f"{where}.{name}", _COLUMN_RE, "a column name")
    return TaskSpec(metric=_text(doc["metric"], f"{where}.metric", _METRIC_RE,
                                 "a metric name (lowercase letters, digits and _)"),
                    task=kind, dataset=dataset, input=doc["input"], target=doc.get("target"), scorer=scorer,
                    options=options, decoding=Decoding.parse(doc.get("decoding"), f"{where}.decoding", decoding),
                    where=_scalars(doc.get("where", {}), f"{where}.where"), cluster=doc.get("cluster"),
                    id_column=doc.get("id_column"), judge=judge)


def parse_suite(doc: Any) -> Suite:
    top = _table(doc, "(top level)", {"suite_version", "name", "tasks"}, {"description", "decoding"})
    if top["suite_version"] != SUITE_VERSION or isinstance(top["suite_version"], bool):
        raise _fail("suite_version", f"must be {SUITE_VERSION}, got {top['suite_version']!r}")
    name = _text(top["name"], "name", re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}\Z"), "a lowercase name")
    decoding = Decoding.parse(top.get("decoding"), "decoding")
    tasks = top["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise _fail("tasks", "must list at least one [[tasks]] table")
    parsed = tuple(_task(t, f"tasks[{i}]", decoding) for i, t in enumerate(tasks))
    metrics = [t.metric for t in parsed]
    if len(set(metrics)) != len(metrics):
        raise _fail("tasks", f"name a metric twice: {', '.join(sorted(metrics))}",
                    hint="each task reports one metric, under its own name")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", f"must be a string, got {description!r}")
    return Suite(name=name, description=description, tasks=parsed)


def read_suite(path: Path | str) -> Suite:
    return parse_suite_bytes(_read(Path(path)), Path(path))


def _read(path: Path) -> bytes:
    if path.is_dir():
        files = sorted(path.glob("*.toml"))
        if len(files) != 1:
            raise BadInput(f"{path} holds {len(files)} .toml files: a suite is one file (name it)")
        path = files[0]
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadablePath(f"cannot read suite {path}: {exc.strerror or exc}") from exc


def parse_suite_bytes(data: bytes, path: Path) -> Suite:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(f"suite {path} is not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {path} is not valid TOML: {exc}") from exc
    return parse_suite(doc)


@dataclass(frozen=True)
class SuiteManifest:
    """What a suite asset's digest covers: the suite's canonical document with every dataset resolved to a digest."""

    document: dict[str, Any]
    files: tuple[FileEntry, ...]

    def to_document(self) -> dict[str, Any]:
        return self.document

    @property
    def digest(self) -> str:
        return digest_of(self.document)


def scan_suite(workspace: Workspace, path: Path) -> SuiteManifest:
    """The suite at `path` (a .toml file, or a folder holding one), validated, its datasets resolved to the digests
    registered now. A suite names exact bytes: each dataset as `dataset/NAME@VERSION` or its full digest, registered,
    of a kind its task reads."""
    data = _read(path)
    suite = parse_suite_bytes(data, path)
    resolved = []
    with read_session(workspace.database_url) as session:
        for spec in suite.tasks:
            asset = _dataset(session, spec.dataset, f"suite {suite.name}, metric {spec.metric}")
            if asset.dataset_kind not in {k.value for k in TASKS[spec.task].dataset_kinds}:
                raise SuiteError(f"suite {suite.name}, metric {spec.metric}: {spec.dataset} is {asset.dataset_kind} "
                                 f"data, which a {spec.task.value} task does not read")
            judge = None if spec.judge is None else _exact(
                session, AssetKind.CHECKPOINT, _EXACT_CHECKPOINT, spec.judge,
                f"suite {suite.name}, metric {spec.metric}, judge").digest
            resolved.append(replace(spec, dataset=asset.digest, judge=judge))
    document = replace(suite, tasks=tuple(resolved)).to_document()
    name = path.name if path.is_file() else "suite.toml"
    return SuiteManifest(document, (FileEntry(name, len(data), hashlib.sha256(data).hexdigest()),))


def _dataset(session: Session, ref: str, where: str) -> Asset:
    return _exact(session, AssetKind.DATASET, _EXACT_REF, ref, where)


def _exact(session: Session, kind: AssetKind, pattern: re.Pattern[str], ref: str, where: str) -> Asset:
    found = pattern.match(ref)
    if found is None:
        raise SuiteError(f"{where}: {kind.value} {ref!r} must name exact bytes, {kind.value}/NAME@VERSION or "
                         "sha256:<64 hex>",
                         hint="an approved suite must not change when a new version of what it reads is registered")
    query = select(Asset).where(Asset.kind == kind)
    query = (query.where(Asset.digest == ref) if found["digest"] else
             query.where(Asset.name == found["name"], Asset.version == int(found["version"])))
    asset = session.exec(query).first()
    if asset is None:
        raise NotFound(f"{where}: no registered {kind.value} is {ref}", hint="register it first, then the suite")
    return asset


def registered_suite(manifest: str, digest: str, label: str) -> Suite:
    """The suite a registered asset holds, from its stored document re-hashed against its digest."""
    try:
        document = json.loads(manifest)
    except ValueError as exc:
        raise StoreTampered(f"the stored document of {label} is not JSON", hint="run `forgegov audit verify`") from exc
    if digest_of(document) != digest:
        raise StoreTampered(f"the stored document of {label} no longer hashes to its digest {digest}",
                            hint="run `forgegov audit verify`; the store was edited outside forgegov")
    suite = parse_suite(document_to_toml_shape(document))
    if canonical_bytes(suite.to_document()) != canonical_bytes(document):
        raise StoreTampered(f"the stored document of {label} is not a suite forgegov wrote")
    return suite


def document_to_toml_shape(document: dict[str, Any]) -> dict[str, Any]:
    """A canonical document as the TOML it parses from: nulls dropped (TOML has none), so that parsing the stored
    form gives the same suite."""
    tasks = [{k: v for k, v in task.items() if v is not None} for task in document.get("tasks") or []]
    return {**{k: v for k, v in document.items() if k != "tasks"}, "tasks": tasks}
