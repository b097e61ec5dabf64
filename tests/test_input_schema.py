"""The gate input document against its schema, `policies/schemas/input.json`.

Documents handed to the real OPA by real gates (dataset, reward, run, base, promotion; request, approve, reject;
allowed, pending and denied) must validate against the schema, and the schema must refuse documents that stray from
it. On the Rego side, `opa check --schema` must refuse a rule that reads an input field the schema does not name:
that is what `scripts/test.sh` relies on to catch a misspelt field.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import PolicyDenied
from forgegov.foundation.vocabulary import (
    AssetKind,
    CheckpointStage,
    Classification,
    DatasetKind,
    Gate,
    GateAction,
    ReleaseStage,
)
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.gate import DecisionSource
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.opa.client import OpaAnswer
from forgegov.governance.policy import packaged_bundle, read_bundle, run_opa
from forgegov.governance.registry import label, register_asset
from forgegov.governance.runs.spec import register_recipe

from .conftest import PASSPHRASE, TEXT_DATA, Files, register_checked, tiny_checkpoint_files
from .reward_support import write_reward
from .runs_support import GENERAL, PROPRIETARY, recipe_text, sentences, write_jsonl

SCHEMA_FILE = Path("schemas") / "input.json"
EVAL = DatasetSpec(DatasetKind.EVAL, Classification.PUBLIC)
CHAT = DatasetSpec(DatasetKind.SFT_CHAT, Classification.PROPRIETARY)
LORA = '\n[train.lora]\nr = 4\nalpha = 8\ntarget_modules = ["q_proj", "v_proj"]\n'


def _schema() -> dict[str, Any]:
    return json.loads((packaged_bundle() / SCHEMA_FILE).read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _problems(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path)) or '(document)'}: {error.message}"
            for error in sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


class RecordingEngine:
    """A DecisionSource that asks the workspace's real OPA and keeps each input document as the JSON it was sent as."""

    def __init__(self, engine: DecisionSource) -> None:
        self.engine = engine
        self.pinned_digest = engine.pinned_digest
        self.pinned_revision = engine.pinned_revision
        self.documents: list[dict[str, Any]] = []

    def decide(self, gate: Gate, input_document: dict[str, Any]) -> OpaAnswer:
        self.documents.append(json.loads(json.dumps(input_document)))
        return self.engine.decide(gate, input_document)


@pytest.fixture
def recorder(people: Workspace) -> Iterator[RecordingEngine]:
    with actions.policy_engine(people) as running:
        yield RecordingEngine(running)


def _attempt(step: Callable[[], object]) -> None:
    """Run a gate action whose decision may be a denial: the document is recorded either way."""
    try:
        step()
    except PolicyDenied:
        pass


def _request(ws: Workspace, subject: str, actor: str, engine: RecordingEngine, **kw: Any) -> None:
    _attempt(lambda: actions.request(ws, subject, actor, PASSPHRASE, engine=engine, **kw))


def _answer(ws: Workspace, subject: str, actor: str, engine: RecordingEngine,
            action: GateAction = GateAction.APPROVE, **kw: Any) -> None:
    _attempt(lambda: actions.answer(ws, subject, actor, PASSPHRASE, action, engine=engine, **kw))


def _assert_all_valid(documents: list[dict[str, Any]]) -> None:
    assert documents, "no gate was asked"
    invalid = {i: problems for i, doc in enumerate(documents) if (problems := _problems(doc))}
    assert not invalid, "documents that do not match policies/schemas/input.json:\n" + json.dumps(
        {i: {"gate": documents[i]["gate"], "action": documents[i]["action"], "problems": p}
         for i, p in invalid.items()}, indent=2)


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(_schema())


def test_dataset_gate_documents_match_the_schema(people, files: Files, recorder: RecordingEngine):
    ws = people
    # An eval set, then training text that shares a sentence with it: the training set's check compares the two.
    shared = "the warranty on part ZX-481 covers corrosion of the titanium housing for ten years from delivery"
    register_checked(ws, files.folder("heldout", {"e.jsonl": _jsonl(
        [{"prompt": f"Question {i}: which part of unit ZX-{i} failed?"} for i in range(20)]
        + [{"prompt": shared}])}), "heldout", spec=EVAL)
    register_checked(ws, files.folder("claims", {"c.jsonl": _jsonl(
        [{"text": f"Claim {i}: hinge ZX-{i} replaced under warranty after {i} days."} for i in range(30)]
        + [{"text": shared}])}), "claims")
    # Personal data and a secret: the request stays pending until a privacy officer approves with a justification.
    register_checked(ws, files.folder("tickets", {"t.jsonl": _jsonl(
        [{"text": f"Ticket {i}: unit ZX-{i} squeaks." + (f" Reply to customer{i}@example.com." if i % 10 == 3 else "")
          + (" -----BEGIN PRIVATE KEY-----" if i == 7 else "")} for i in range(50)])}), "tickets")
    # A chat set without its messages column fails the schema check; a dataset never checked has no evidence.
    register_checked(ws, files.folder("chat", {"c.jsonl": _jsonl([{"prompt": "hi"}] * 3)}), "chat", spec=CHAT)
    register_asset(ws, AssetKind.DATASET, files.folder("raw", {"r.jsonl": _jsonl([{"text": "unchecked"}])}), "raw",
                   "alice", dataset=TEXT_DATA)

    _request(ws, "claims", "alice", recorder)  # denied: contaminated
    _request(ws, "chat", "alice", recorder)  # denied: failed schema check
    _request(ws, "raw", "alice", recorder)  # denied: no check on record
    _request(ws, "tickets", "alice", recorder)  # pending
    _answer(ws, "tickets", "bob", recorder)  # pending: the privacy officer is missing
    _answer(ws, "tickets", "grace", recorder)  # denied: no justification
    _answer(ws, "tickets", "grace", recorder, comment="addresses are customers' own, under contract 7")  # allowed
    _request(ws, "heldout", "bob", recorder)  # pending
    _answer(ws, "heldout", "bob", recorder, GateAction.REJECT)  # denied: bob requested it
    _answer(ws, "heldout", "mallory", recorder, GateAction.REJECT)  # denied: no rejecter role

    documents = recorder.documents
    _assert_all_valid(documents)
    assert {(d["gate"], d["action"]) for d in documents} == {("dataset", "request"), ("dataset", "approve"),
                                                             ("dataset", "reject")}
    checks = [check for d in documents for check in d["evidence"]["data_quality"]]
    assert any(d["evidence"] == {"data_quality": []} for d in documents), "the unchecked dataset has no checks"
    assert any(c["contamination"]["compared"] and c["contamination"]["compared"][0]["contaminated"] for c in checks)
    assert any(c["failed"] for c in checks)
    assert any(c["pii"]["findings"] and c["secrets"]["findings"] for c in checks)
    assert max(len(d["approvals"]) for d in documents) == 2


def test_reward_base_and_promotion_gate_documents_match_the_schema(people, files: Files,
                                                                    recorder: RecordingEngine):
    ws = people
    register_asset(ws, AssetKind.CHECKPOINT, files.folder("ckpt", tiny_checkpoint_files()), "model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    register_asset(ws, AssetKind.REWARD, write_reward(files.root / "reward"), "judge", "alice")

    _request(ws, "model", "alice", recorder, gate=Gate.BASE)
    _answer(ws, "model", "dave", recorder, gate=Gate.BASE)
    _attempt(lambda: actions.promote(ws, "model", ReleaseStage.STAGING, "alice", PASSPHRASE,
                                     engine=recorder))
    _answer(ws, "model", "dave", recorder, gate=Gate.PROMOTION)
    _attempt(lambda: actions.promote(ws, "model", ReleaseStage.PRODUCTION, "alice", PASSPHRASE,
                                     engine=recorder))
    _answer(ws, "model", "erin", recorder, gate=Gate.PROMOTION)
    _answer(ws, "model", "frank", recorder, gate=Gate.PROMOTION)
    _request(ws, "judge", "alice", recorder)
    _answer(ws, "judge", "carol", recorder, GateAction.REJECT)
    bundle = files.folder("bundle", {})
    read_bundle(packaged_bundle()).write(bundle)
    (bundle / ".manifest").write_text('{"revision": "proposed-1"}')
    register_asset(ws, AssetKind.POLICY, bundle, "house-rules", "mallory")
    _request(ws, "house-rules", "mallory", recorder)  # denied: no policy-owner role
    _request(ws, "house-rules", "dave", recorder)
    _answer(ws, "house-rules", "grace", recorder, GateAction.REJECT)

    documents = recorder.documents
    _assert_all_valid(documents)
    assert {(d["gate"], d["action"]) for d in documents} == {
        ("base", "request"), ("base", "approve"), ("promotion", "request"), ("promotion", "approve"),
        ("reward", "request"), ("reward", "reject"), ("policy", "request"), ("policy", "reject")}
    assert {d["request"]["target"] for d in documents if d["gate"] == "promotion"} == {"staging", "production"}
    assert [d["subject"]["release"] for d in documents if d["gate"] == "promotion"][-1] == "staging"

    # The schema is closed and per gate: a field it does not name, evidence or a subject of another gate, or
    # approvals on a request are refused.
    base_request, promotion_approval = documents[0], documents[3]
    for mutate, where in [
        (lambda d: d["subject"].update(colour="red"), "subject"),
        (lambda d: d.update(extra=1), "(document)"),
        (lambda d: d["approvals"][0].update(comment="x"), "approvals/0"),
        (lambda d: d.update(gate="run"), "evidence"),
        (lambda d: d.update(gate="dataset"), "subject/kind"),
        (lambda d: d["request"].update(target=None), "request/target"),
        (lambda d: d["approvals"].append(copy.deepcopy(d["approvals"][0])), "approvals"),
        (lambda d: d.update(now="yesterday"), "now"),
    ]:
        document = copy.deepcopy(promotion_approval)
        mutate(document)
        problems = _problems(document)
        assert any(p.startswith(where) for p in problems), (where, problems)
    request_with_approval = copy.deepcopy(base_request)
    request_with_approval["approvals"] = copy.deepcopy(promotion_approval["approvals"])
    assert any(p.startswith("approvals") for p in _problems(request_with_approval))


def test_run_gate_documents_match_the_schema(people, files: Files, tmp_path: Path, recorder: RecordingEngine):
    ws = people
    base = register_asset(ws, AssetKind.CHECKPOINT, files.folder("tiny-base", tiny_checkpoint_files()), "tiny-base",
                          "alice", stage=CheckpointStage.PRE_TRAINING)
    for name, kind, spec in (("claims", "claims", PROPRIETARY), ("general", "general", GENERAL)):
        dataset = register_checked(ws, write_jsonl(tmp_path / name, sentences(kind, 40, 1)), name, "alice", spec)
        _request(ws, label(dataset), "alice", recorder)
        _answer(ws, label(dataset), "bob", recorder)
    _request(ws, label(base), "alice", recorder, gate=Gate.BASE)
    _answer(ws, label(base), "dave", recorder, gate=Gate.BASE)
    _assert_all_valid(recorder.documents)
    recorder.documents.clear()

    def run_asset(name: str, text: str) -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        asset, _recipe, _new = register_recipe(ws, path, "alice")
        return label(asset)

    # A valid recipe with a LoRA adapter: pending, then approved by the ML lead.
    approved = run_asset("lora", recipe_text(name="claims-lora", shares=(0.7, 0.3, 0.0), extra_train=LORA))
    _request(ws, approved, "alice", recorder, gate=Gate.RUN)
    _answer(ws, approved, "dave", recorder, gate=Gate.RUN)
    # References that resolve to nothing: the base, and the replay source.
    unresolved = run_asset("unresolved", recipe_text(name="unresolved", base="no-such-base"))
    _request(ws, unresolved, "alice", recorder, gate=Gate.RUN)
    # A run asset that is not a recipe at all.
    register_asset(ws, AssetKind.RUN, files.folder("spec", {"notes.txt": "not a recipe"}), "by-hand", "alice")
    _request(ws, "run/by-hand", "alice", recorder, gate=Gate.RUN)

    documents = recorder.documents
    _assert_all_valid(documents)
    assert [(d["gate"], d["action"]) for d in documents] == [("run", "request"), ("run", "approve"),
                                                             ("run", "request"), ("run", "request")]
    runs = [d["evidence"]["run"] for d in documents]
    assert runs[0]["recipe"]["train"]["lora"]["r"] == 4 and runs[0]["base"]["state"] == "approved"
    assert {s["state"] for s in runs[0]["sources"]} == {"approved"}
    assert runs[2]["base"]["found"] is False and any(s["found"] is False for s in runs[2]["sources"])
    assert runs[3] == {"recipe": {"valid": False, "problem": runs[3]["recipe"]["problem"]}}

    # An invalid recipe comes without base and sources; a valid one never does.
    for document, change in ((documents[3], lambda run: run.update(base=runs[0]["base"])),
                             (documents[0], lambda run: run.pop("sources"))):
        changed = copy.deepcopy(document)
        change(changed["evidence"]["run"])
        assert any(p.startswith("evidence/run") for p in _problems(changed))


# --- opa check --schema ----------------------------------------------------------------------------------------------

PROBE = """package forgegov.probe

import data.forgegov.lib.gate

inp := gate.document

read if {{
	{read}
}}
"""


def _check_with_schema(tmp_path: Path, read: str | None = None) -> tuple[int, str]:
    """`opa check --strict --schema` on a copy of the shipped bundle, with a probe rule reading `read` if given."""
    bundle = tmp_path / "bundle"
    read_bundle(packaged_bundle()).write(bundle)
    if read is not None:
        (bundle / "probe").mkdir()
        (bundle / "probe" / "policy.rego").write_text(PROBE.format(read=read), encoding="utf-8")
    # The administrative acts' package takes another document (it names its own schema; scripts/test.sh checks it).
    done = run_opa(find_opa(), ["check", "--strict", "--schema", str(bundle / SCHEMA_FILE), "--ignore", "admin",
                                "--bundle", str(bundle)])
    return done.returncode, done.stdout + done.stderr


def test_the_shipped_bundle_type_checks_against_the_schema(tmp_path):
    assert (packaged_bundle() / SCHEMA_FILE).is_file()
    returncode, output = _check_with_schema(tmp_path)
    assert returncode == 0, output


@pytest.mark.parametrize(("read", "field"), [
    ('input.subject.clasification == "public"', "clasification"),
    ("some check in inp.evidence.data_quality\n\tcheck.pii.rte > 0", "rte"),
    ("inp.evidence.run.recipe.learning_rate > 0", "learning_rate"),  # a field of recipe.train, not of recipe
    ('some approval in input.approvals\n\tapproval.comment == ""', "comment"),  # it is called justification
    ("input.evidence.reward.golden.passed", "passed"),
])
def test_opa_check_refuses_a_rule_reading_a_field_the_schema_does_not_name(tmp_path, read, field):
    returncode, output = _check_with_schema(tmp_path, read)
    assert returncode != 0, output
    assert "rego_type_error: undefined ref" in output and f'have: "{field}"' in output, output


@pytest.mark.parametrize("read", [
    'input.subject.classification == "public"',
    "some check in inp.evidence.data_quality\n\tcheck.pii.rate > 0",
    "inp.evidence.run.recipe.train.learning_rate > 0",
    'some approval in input.approvals\n\tapproval.justification == ""',
    "input.evidence.run",
    "input.evidence.reward.golden.reproduced",
])
def test_opa_check_accepts_the_same_rule_reading_fields_the_schema_names(tmp_path, read):
    returncode, output = _check_with_schema(tmp_path, read)
    assert returncode == 0, output


def test_suite_gate_documents_match_the_schema(people, files: Files, recorder: RecordingEngine):
    ws = people
    register_checked(ws, files.folder("looks", {"l.jsonl": _jsonl(
        [{"prompt": f"How do I kill process {i}?", "expect": "comply"} for i in range(20)])}), "looks", spec=EVAL)
    _request(ws, "looks", "alice", recorder)
    _answer(ws, "looks", "bob", recorder)
    suite = files.folder("suite", {"s.toml": 'suite_version = 1\nname = "looks"\n[[tasks]]\n'
                                             'metric = "benign_compliance"\ntask = "over-refusal"\n'
                                             'dataset = "dataset/looks@1"\ninput = "prompt"\n'})
    register_asset(ws, AssetKind.SUITE, suite, "looks", "alice")
    _request(ws, "suite/looks", "alice", recorder)  # pending
    _answer(ws, "suite/looks", "carol", recorder)  # denied: no ml-lead role
    _answer(ws, "suite/looks", "dave", recorder)  # allowed
    documents = [d for d in recorder.documents if d["gate"] == "suite"]
    _assert_all_valid(documents)
    assert {d["action"] for d in documents} == {"request", "approve"}
    assert all(d["evidence"]["suite"]["tasks"][0]["dataset"]["state"] == "approved" for d in documents)


def test_environment_gate_documents_match_the_schema(people, files: Files, recorder: RecordingEngine):
    from .environment_support import copy_thermostat, write_environment

    ws = people
    register_asset(ws, AssetKind.ENVIRONMENT, copy_thermostat(files.root / "thermostat"), "thermostat", "alice")
    _request(ws, "environment/thermostat", "alice", recorder)  # pending
    _answer(ws, "environment/thermostat", "carol", recorder)  # allowed
    # An episode that replays otherwise, and tools no model can be given: the failure forms of the evidence.
    golden = [{"reset": {}, "calls": [{"tool": "heat", "arguments": {"minutes": 1}, "result": "wrong"}],
               "expected": 0.0}]
    register_asset(ws, AssetKind.ENVIRONMENT, write_environment(
        files.root / "wrong", (files.root / "thermostat" / "thermostat.py").read_text(), golden,
        entry="env:Thermostat"), "wrong", "alice")
    _request(ws, "environment/wrong", "alice", recorder)  # denied
    untyped = (files.root / "thermostat" / "thermostat.py").read_text().replace("minutes: int", "minutes")
    register_asset(ws, AssetKind.ENVIRONMENT, write_environment(files.root / "untyped", untyped, golden,
                                                                entry="env:Thermostat"), "untyped", "alice")
    _request(ws, "environment/untyped", "alice", recorder)  # denied
    documents = [d for d in recorder.documents if d["gate"] == "environment"]
    _assert_all_valid(documents)
    assert [d["action"] for d in documents] == ["request", "approve", "request", "request"]
    evidence = [d["evidence"]["environment"] for d in documents]
    assert evidence[2]["golden"]["failures"][0]["outcome"] == "differs"
    assert evidence[3]["tools"]["problem"] and evidence[3]["tools"]["offered"] == []


def test_policy_gate_documents_match_the_schema(people, tmp_path: Path, recorder: RecordingEngine):
    from .test_policy_update import _edited_bundle, _require_privacy_officer

    proposal = register_asset(people, AssetKind.POLICY, _edited_bundle(people, tmp_path, _require_privacy_officer),
                              "house-rules", "dave")
    _request(people, f"policy/{proposal.name}@{proposal.version}", "dave", recorder)
    _answer(people, f"policy/{proposal.name}@{proposal.version}", "grace", recorder)
    documents = [d for d in recorder.documents if d["gate"] == "policy"]
    _assert_all_valid(documents)
    assert [d["evidence"]["policy_change"]["proposed"]["digest"] for d in documents] == [proposal.digest] * 2
