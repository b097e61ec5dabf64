"""Governed training runs: the run gate before any compute, training on exactly the approved bytes, realised tokens,
resume after a crash, candidate lineage, and signed provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from forgegov.app.run_start import start_run
from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, PolicyDenied, StateConflict, StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, Decision, TrainingRun
from forgegov.foundation.vocabulary import (
    AssetKind,
    AssetState,
    AuditAction,
    Gate,
    GateAction,
    ReleaseStage,
    RunStatus,
)
from forgegov.governance import actions
from forgegov.governance.dry_run import dry_run
from forgegov.governance.lineage import lineage_report
from forgegov.governance.registry import find_asset, lineage, list_assets, register_asset
from forgegov.governance.review import review
from forgegov.governance.runs.recipe import RecipeError
from forgegov.governance.runs.records import run_record, verify_run
from tests.conftest import PASSPHRASE, audit_entries, register_checked
from tests.runs_support import PROPRIETARY, build_tiny_base, governed_inputs, recipe_text, sentences, write_jsonl


@pytest.fixture(scope="module")
def base_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("base") / "tiny-base")


def _recipe(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _start(workspace, recipe: Path, actor: str = "alice", **kwargs):  # type: ignore[no-untyped-def]
    return start_run(workspace, recipe, actor, lambda: PASSPHRASE, **kwargs)


def _completed(workspace) -> dict:  # type: ignore[no-untyped-def]
    """The payload of the (single) run.complete audit entry."""
    (entry,) = audit_entries(workspace, "run.complete")
    return json.loads(entry.payload)


def _actions(workspace) -> list[str]:  # type: ignore[no-untyped-def]
    with read_session(workspace.database_url) as session:
        return [entry.action for entry in session.exec(select(AuditEntry).order_by(AuditEntry.seq))]


def test_run_waits_for_its_gate_then_trains_on_the_approved_inputs(people, tmp_path, base_template):
    labels = governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text())
    before = _actions(people)
    with actions.policy_engine(people) as engine:
        preview = dry_run(people, engine, recipe, "alice")
    assert (preview.run, preview.registered, preview.result) == ("run/claims-cpt@1", False, "pending")
    assert _actions(people) == before and list_assets(people, AssetKind.RUN) == [], "a dry run writes nothing"

    waiting = _start(people, recipe)
    assert not waiting.started and waiting.state == "pending"
    shown = review(people, waiting.run)
    assert shown.evidence == preview.evidence, "the dry run showed the evidence the request was decided on"
    checks = shown.context["source_checks"]  # each source's newest data-quality check, beside the evidence
    assert set(checks) == {labels["claims"], labels["general"], labels["replay"]}
    assert all(check["records"] == 120 and check["failed"] == [] for check in checks.values())
    assert any("ml-lead" in item for item in waiting.missing)
    assert "run.start" not in _actions(people) and "checkpoint.load" not in _actions(people)
    again = _start(people, recipe)  # same bytes: the same run asset, still waiting, no second request
    assert again.run == waiting.run and not again.started and again.missing == waiting.missing

    approved = actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN,
                              expect_digest=shown.digest)
    with read_session(people.database_url) as session:
        assert json.loads(session.get(Decision, approved.decision_id).input)["evidence"] == shown.evidence
    with actions.policy_engine(people) as engine:  # decided already: a dry run says what `run start` will do
        assert dry_run(people, engine, recipe, "alice").result == "allow"
    done = _start(people, recipe).trained
    assert done is not None and done.status is RunStatus.COMPLETED and done.attempts == 1

    candidate = find_asset(people, done.candidate, AssetKind.CHECKPOINT)
    assert candidate.stage == "candidate" and candidate.state is AssetState.REGISTERED
    assert [a.digest for a in lineage(people, done.candidate)][1] == find_asset(people, labels["base"]).digest

    realised = done.realised
    by_label = {s["label"]: s for s in realised["sources"]}
    assert set(by_label) == {labels["claims"], labels["general"], labels["replay"]}
    assert all(s["tokens"] > 0 for s in realised["sources"])
    assert sum(s["tokens"] for s in realised["sources"]) == realised["total_tokens"]
    # 12 steps of 4 packed blocks of 32 positions, each position one source's token; the stream's last block is
    # shorter (wrapped packing), and fewer than one epoch is drawn, so at most one block may fall short.
    assert 12 * 4 * 32 - 32 < realised["total_tokens"] <= 12 * 4 * 32
    assert by_label[labels["claims"]]["planned_share"] == 0.6
    assert by_label[labels["claims"]]["realised_share"] > by_label[labels["replay"]]["realised_share"]
    # Shares are token shares: the stream holds a token budget per source and is read in order, so even these
    # twelve steps train on the planned shares (before: examples were sampled, and long documents took more).
    assert {role: round(v["planned_share"], 6) for role, v in realised["roles"].items()} == \
        {"proprietary": 0.6, "general": 0.3, "replay": 0.1}
    assert all(abs(v["realised_share"] - v["planned_share"]) < 0.01 for v in realised["roles"].values())

    record = run_record(people, done.run_id)
    assert record["status"] == "completed" and record["candidate_digest"] == candidate.digest
    assert record["plan"]["base"]["digest"] == find_asset(people, labels["base"]).digest
    assert record["code"]["code_digest"].startswith("sha256:") and record["code"]["trl"]
    metrics = [json.loads(line) for line in (Path(done.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all("loss" in m and set(m["tokens"]) == set(by_label) for m in metrics)

    log = _actions(people)
    assert log.count("dataset.load") == 3 and "checkpoint.load" in log and log[-1] == "run.complete"
    lineage_record = _completed(people)
    assert lineage_record["candidate_digest"] == candidate.digest
    assert lineage_record["recipe_digest"] == record["recipe_digest"]
    assert lineage_record["policy_revision"] and lineage_record["decision_id"] == record["decision_id"]
    assert sorted(lineage_record["datasets"]) == sorted(find_asset(people, labels[n]).digest
                                                        for n in ("claims", "general", "replay"))

    assert verify_run(people, done.run_id)["verified"] is True
    from forgegov.governance.history import subject_history

    assert subject_history(people, done.candidate)["training_run"]["run_id"] == done.run_id
    assert subject_history(people, done.run)["training_run"]["candidate_digest"] == candidate.digest
    assert subject_history(people, labels["base"])["training_run"] is None
    with pytest.raises(StateConflict, match="already completed"):
        _start(people, recipe)

    # One command answers "what went into this model and who approved it".
    tree = lineage_report(people, done.candidate)["checkpoint"]
    made = tree["produced_by"]
    assert made["label"] == done.run and made["recipe_digest"] == record["recipe_digest"]
    assert made["mixture"] == realised and {d["label"] for d in made["datasets"]} == {
        labels["claims"], labels["general"], labels["replay"]}
    assert [(d["gate"], d["decision_id"], [(s["signer"], s["roles"]) for s in d["signatures"]])
            for d in made["decisions"]] == [("run", approved.decision_id, [("dave", ["ml-lead", "policy-owner"])])]
    assert all(d["decisions"][-1]["signatures"][0]["signer"] == "bob" for d in made["datasets"])
    assert tree["base"]["label"] == labels["base"] and tree["base"]["decisions"][0]["gate"] == "base"
    assert tree["base"]["decisions"][0]["policy"]["digest"].startswith("sha256:")

    # The run's candidate has the lineage the promotion gate asks for; what it still lacks is a drift evaluation
    # against its base (tests/test_eval_runs.py evaluates and promotes).
    with pytest.raises(PolicyDenied) as denied:  # "claims-cpt" names the run and its candidate: promote means the latter
        actions.promote(people, "claims-cpt", ReleaseStage.STAGING, "alice", PASSPHRASE)
    assert denied.value.reasons and all("has no drift evaluation of" in r for r in denied.value.reasons)

    # One of its datasets is withdrawn (found to hold what it must not): the candidate goes no further.
    assert actions.withdraw(people, labels["claims"], "bob", PASSPHRASE, comment="customer data of a closed "
                            "contract").state == "withdrawn"
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, done.candidate, ReleaseStage.STAGING, "alice", PASSPHRASE)
    assert any(f"was trained on {labels['claims']}, whose approval was withdrawn" in r for r in denied.value.reasons)


def test_an_approved_run_whose_base_was_withdrawn_does_not_start(people, tmp_path, base_template):
    labels = governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text())
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    actions.withdraw(people, labels["base"], "dave", PASSPHRASE, gate=Gate.BASE, comment="vendor pulled it")
    with pytest.raises(StateConflict, match=f"{labels['base']} was withdrawn after the run gate approved"):
        _start(people, recipe)
    assert not [e for e in audit_entries(people, "run.start")], "nothing was claimed"


def test_gate_refuses_unapproved_data_before_any_compute(people, tmp_path, base_template):
    governed_inputs(people, tmp_path / "inputs", base_template, approve_data=False)
    with pytest.raises(PolicyDenied) as denied:
        _start(people, _recipe(tmp_path, recipe_text()))
    assert any("dataset/claims@1" in reason and "approved" in reason for reason in denied.value.reasons)
    assert "checkpoint.load" not in _actions(people) and "dataset.load" not in _actions(people)


def test_gate_refuses_a_base_not_approved_for_customisation(people, tmp_path, base_template):
    governed_inputs(people, tmp_path / "inputs", base_template, approve_base=False)
    with pytest.raises(PolicyDenied) as denied:
        _start(people, _recipe(tmp_path, recipe_text()))
    assert any("checkpoint/tiny-base@1" in reason and "customisation" in reason for reason in denied.value.reasons)


def test_gate_refuses_a_mixture_below_the_replay_floor(people, tmp_path, base_template):
    governed_inputs(people, tmp_path / "inputs", base_template)
    with pytest.raises(PolicyDenied) as denied:
        _start(people, _recipe(tmp_path, recipe_text(shares=(0.9, 0.1, 0.0))))
    assert any("10%" in reason and "20%" in reason for reason in denied.value.reasons)


def test_invalid_recipe_registers_nothing(people, tmp_path):
    with pytest.raises(RecipeError, match="shares must sum to 1"):
        _start(people, _recipe(tmp_path, recipe_text(shares=(0.6, 0.3, 0.3))))
    with read_session(people.database_url) as session:
        assert session.exec(select(TrainingRun)).first() is None
    assert "run.register" not in _actions(people)


def test_the_run_uses_the_approved_digests_not_a_newer_version(people, tmp_path, base_template):
    labels = governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=3))
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    newer = register_checked(people, write_jsonl(tmp_path / "claims-v2", sentences("claims", 90, 5)), "claims",
                             "alice", PROPRIETARY)
    assert newer.version == 2
    done = _start(people, recipe).trained
    assert done is not None
    used = {s["label"] for s in done.realised["sources"]}
    assert labels["claims"] in used and "dataset/claims@2" not in used


class _Crash(Exception):
    pass


def _crash_at(step: int):  # type: ignore[no-untyped-def]
    from transformers import TrainerCallback

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == step:
                raise _Crash(f"simulated crash after step {step}")

    return CrashAt()


def _crashed_after_step_5(people, tmp_path, base_template):  # type: ignore[no-untyped-def]
    """An approved 10-step run that crashed after step 5: save_steps is max_steps // 5 = 2, so checkpoint-4 is the
    newest left behind. Returns the recipe and the run's label."""
    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=10))
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    with pytest.raises(_Crash):
        _start(people, recipe, callbacks=(_crash_at(5),))
    return recipe, waiting.run


def test_a_crashed_run_resumes_from_its_checkpoint_and_counts_each_token_once(people, tmp_path, base_template):
    recipe, run = _crashed_after_step_5(people, tmp_path, base_template)
    failed = run_record(people, run)
    assert failed["status"] == "failed" and "simulated crash" in failed["error"]
    assert "run.failed" in _actions(people)
    # Each trainer checkpoint was committed to the log as it was saved, with the token counts saved in it.
    committed = [json.loads(e.payload) for e in audit_entries(people, "run.checkpoint")]
    assert [c["step"] for c in committed] == [2, 4] and all(c["run_id"] == failed["run_id"] for c in committed)
    assert sum(committed[-1]["counts"]["forgegov-source-tokens.json"]) > 0

    # The crashed attempt's job is spent: resuming takes a new one, which the policy decides again.
    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.training.methods import BACKENDS

    spent = audit_entries(people, "job.start")[-1].seq
    with pytest.raises(StateConflict, match=f"job {spent} already trained"):
        execute_run(people, run, actor="alice", backends=BACKENDS, job=spent)
    resumed = _start(people, recipe).trained
    assert resumed is not None and resumed.attempts == 2 and resumed.resumed_from_step == 4
    assert 10 * 4 * 32 - 32 < resumed.realised["total_tokens"] <= 10 * 4 * 32
    assert "run.resume" in _actions(people)

    # The same recipe trained without a crash, in a second workspace, sees the same tokens per source.
    from forgegov.app.workspace import init_workspace
    from forgegov.governance.identities import create_identity
    from tests.conftest import PEOPLE

    other = init_workspace(tmp_path / "other-ws")
    for name in PEOPLE:
        create_identity(other, name, PASSPHRASE)
    governed_inputs(other, tmp_path / "other-inputs", base_template)
    straight_recipe = _recipe(tmp_path, recipe_text(max_steps=10), "straight.toml")
    first = _start(other, straight_recipe)
    actions.answer(other, first.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    straight = _start(other, straight_recipe).trained
    assert straight is not None
    assert [s["tokens"] for s in straight.realised["sources"]] == [s["tokens"] for s in resumed.realised["sources"]]


def test_a_trainer_checkpoint_altered_before_resume_is_refused(people, tmp_path, base_template):
    # The attack as written: a killed run's checkpoint gets a planted weight and a fake 91.7 % general share, then the
    # run is resumed; the candidate used to carry both, with valid signed provenance.
    recipe, run = _crashed_after_step_5(people, tmp_path, base_template)
    folder = Path(run_record(people, run)["output_dir"]) / "trainer" / "checkpoint-4"
    counts = folder / "forgegov-source-tokens.json"
    original = counts.read_text()
    saved = json.loads(original)
    total = sum(saved["counts"])
    saved["counts"] = [total * 4 // 100, total * 917 // 1000, total - total * 4 // 100 - total * 917 // 1000]
    counts.write_text(json.dumps(saved))
    with pytest.raises(DigestMismatch, match="checkpoint-4 is not what run .* committed at step 4"):
        _start(people, recipe)
    assert run_record(people, run)["status"] == "failed"

    counts.write_text(original)  # the counts put back; a weight planted instead
    weights = folder / "model.safetensors"
    planted = bytearray(weights.read_bytes())
    planted[-1] ^= 0x01
    weights.write_bytes(bytes(planted))
    with pytest.raises(DigestMismatch, match="checkpoint-4"):
        _start(people, recipe)

    # Holding the log key, the insider commits the planted folder as a newer checkpoint of their own: the entry hashes
    # and chains like any other, but the platform key did not sign it.
    from forgegov.audit.recorder import EntryDraft, record
    from forgegov.foundation.manifest import build_manifest

    planted_folder = folder.parent / "checkpoint-6"
    shutil.copytree(folder, planted_folder)
    [genuine] = [json.loads(e.payload) for e in audit_entries(people, "run.checkpoint") if '"step":4' in e.payload]
    record(people, EntryDraft(actor="alice", action=AuditAction.RUN_CHECKPOINT,
                              subject_digest=genuine["run_digest"],
                              payload={**genuine, "step": 6, "folder": "checkpoint-6",
                                       "manifest_digest": build_manifest(planted_folder).digest}))
    with pytest.raises(StoreTampered, match="commits a trainer checkpoint of run .* that the platform key did not sign"):
        _start(people, recipe)


def test_a_base_changed_after_approval_is_refused_at_load_and_the_run_fails(people, tmp_path, base_template):
    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=3))
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    weights = tmp_path / "inputs" / "base" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="model.safetensors"):
        _start(people, recipe)
    assert run_record(people, waiting.run)["status"] == "failed"
    assert "checkpoint.load.refused" in _actions(people)


def test_a_candidate_file_changed_after_signing_fails_verification(people, tmp_path, base_template):
    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=3))
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    done = _start(people, recipe).trained
    assert done is not None
    config = Path(done.output_dir) / "candidate" / "config.json"
    config.write_text(config.read_text().replace("\"hidden_size\": 32", "\"hidden_size\": 33"))
    with pytest.raises(DigestMismatch, match="config.json"):
        verify_run(people, done.run_id)
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, done.candidate, ReleaseStage.STAGING, "alice", PASSPHRASE)
    # (Three steps are too few to train on the planned shares: the gate names that too.)
    assert any(f"was produced by run {done.run_id}, which is completed, approved by the run gate, with provenance "
               "that does not verify" in reason for reason in denied.value.reasons)


def test_run_asset_registered_by_hand_is_denied_with_the_reason(people, files):
    path = files.folder("spec", {"notes.txt": "not a recipe"})
    register_asset(people, AssetKind.RUN, path, "by-hand", "alice")
    with pytest.raises(PolicyDenied) as denied:
        actions.request(people, "run/by-hand", "alice", PASSPHRASE, gate=Gate.RUN)
    assert any("recipe" in reason for reason in denied.value.reasons)


def test_sft_with_lora_trains_on_replies_and_registers_a_merged_candidate(people, tmp_path, base_template):
    import json as _json

    from forgegov.foundation.vocabulary import Classification, DatasetKind
    from forgegov.governance.asset_kinds import DatasetSpec
    from forgegov.governance.loading.checkpoints import load_checkpoint
    from tests.runs_support import approve

    labels = governed_inputs(people, tmp_path / "inputs", base_template)
    chats = tmp_path / "chats"
    chats.mkdir()
    with open(chats / "chats.jsonl", "w", encoding="utf-8") as handle:
        for i, line in enumerate(sentences("claims", 80, 3)):
            handle.write(_json.dumps({"messages": [{"role": "user", "content": f"Summarise record {i}."},
                                                   {"role": "assistant", "content": line}]}) + "\n")
    chat = register_checked(people, chats, "claims-chat", "alice",
                            DatasetSpec(DatasetKind.SFT_CHAT, Classification.PROPRIETARY))
    approve(people, "dataset/claims-chat@1", Gate.DATASET, "alice", "bob")
    text = (recipe_text(name="claims-sft", method="sft", shares=(0.0, 0.5, 0.0), max_steps=4,
                        extra_train='\n[train.lora]\nr = 4\nalpha = 8\ntarget_modules = ["q_proj", "v_proj"]\n')
            .replace('dataset = "general"\nrole = "general"\nshare = 0.5',
                     'dataset = "general"\nrole = "general"\nshare = 0.5\n\n[[mixture.sources]]\n'
                     'dataset = "claims-chat"\nrole = "proprietary"\nshare = 0.5'))
    recipe = _recipe(tmp_path, text)
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    done = _start(people, recipe).trained
    assert done is not None
    assert {s["label"] for s in done.realised["sources"]} == {labels["general"], "dataset/claims-chat@1"}
    assert all(s["tokens"] > 0 for s in done.realised["sources"])
    files = {entry["path"] for entry in _json.loads(find_asset(people, done.candidate).manifest)["files"]}
    assert "model.safetensors" in files and not any("adapter" in name for name in files)
    model, tokenizer = load_checkpoint(people, done.candidate, actor="alice", purpose="test: merged candidate")
    assert tokenizer is not None and not any("lora" in name for name, _ in model.named_parameters())
    assert chat.version == 1


def test_two_processes_train_one_run_and_record_it_once(people, tmp_path, base_template):
    """`torchrun` with two CPU processes (gloo): both train, the main one claims, registers, signs and records."""

    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=4) + '\n[devices]\nkind = "cpu"\ncount = 2\n')
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    with pytest.raises(BadInput, match="asks for 2 process"):
        _start(people, recipe)  # one process for a two-process recipe: refused before anything loads

    done = _launch(people, recipe, ["torchrun", "--standalone", "--nproc_per_node", "2"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    result = json.loads(done.stdout)["result"]
    assert result["status"] == "completed" and result["attempts"] == 1
    # Two processes, each 4 steps of 4 blocks of 32 tokens; at most one short block each.
    assert 2 * 4 * 4 * 32 - 2 * 32 < result["realised"]["total_tokens"] <= 2 * 4 * 4 * 32
    log = _actions(people)
    assert log.count("run.start") == 1 and log.count("run.complete") == 1
    assert log.count("checkpoint.load") == 2 and log.count("dataset.load") == 6  # each process read verified bytes
    assert _completed(people)["parallelism"] == {"processes": 2, "distributed": "MULTI_CPU", "fsdp2": False,
                                                 "sharded": False}
    assert verify_run(people, result["run_id"])["verified"] is True
    files = {e["path"] for e in json.loads(find_asset(people, result["candidate"]).manifest)["files"]}
    assert "model.safetensors" in files and "training_args.bin" not in files
    # The candidate is the whole trained model: every tensor of the base, in full shape, and trained.
    from safetensors.torch import load_file

    base = load_file(str(base_template / "model.safetensors"))
    trained = load_file(str(Path(result["output_dir"]) / "candidate" / "model.safetensors"))
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in base.items()}
    assert any(not (trained[k] == base[k]).all() for k in base)


def test_fsdp_launch_of_cpu_processes_is_refused_before_anything_loads(people, tmp_path, base_template):
    """accelerate shards with FSDP on accelerators only; launched on CPUs with the FSDP2 options docs/training.md
    gives, the run would silently train unsharded, so it is refused."""
    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=4) + '\n[devices]\nkind = "cpu"\ncount = 2\n')
    actions.answer(people, _start(people, recipe).run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    done = _launch(people, recipe, [
        "accelerate", "launch", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", "0", "--use_fsdp", "--fsdp_version", "2",
        "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP", "--fsdp_transformer_layer_cls_to_wrap",
        "LlamaDecoderLayer", "--fsdp_state_dict_type", "FULL_STATE_DICT"])
    assert done.returncode != 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "which accelerate does not shard with FSDP" in done.stderr
    assert 'with [devices] kind = "cuda" on GPUs' in done.stderr  # printed as written, not as console markup
    assert not {"run.start", "checkpoint.load", "dataset.load"} & set(_actions(people))


def _launch(workspace, recipe: Path, launcher: list[str]):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "FORGEGOV_PASSPHRASE": PASSPHRASE, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(bin_dir / launcher[0]), *launcher[1:], str(bin_dir / "forgegov"), "-w",
                           str(workspace.root), "run", "start", str(recipe), "--as", "alice", "--json"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)


def test_a_second_start_while_the_run_trains_is_refused_before_it_claims(people, tmp_path, base_template):
    import fcntl

    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=3))
    waiting = _start(people, recipe)
    actions.answer(people, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    digest = find_asset(people, waiting.run).digest.removeprefix("sha256:")
    lock = people.artifacts_dir / "runs" / "locks" / f"{digest}.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:  # what a training `run start` holds while it runs
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StateConflict, match="being trained by another process"):
            _start(people, recipe)
    assert "run.start" not in _actions(people) and "run.resume" not in _actions(people)
    with read_session(people.database_url) as session:
        assert session.exec(select(TrainingRun)).first() is None
    assert _start(people, recipe).trained is not None  # lock released: the run starts


def test_mlflow_receives_the_step_metrics_under_the_run_id(people, tmp_path, base_template, monkeypatch):
    from mlflow.tracking import MlflowClient

    from forgegov.training import backend

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert backend.reporters() == ["none"]  # installed but not configured: nothing written anywhere
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)

    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=4))
    actions.answer(people, _start(people, recipe).run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    done = _start(people, recipe).trained
    assert done is not None and done.status is RunStatus.COMPLETED

    client = MlflowClient(tracking_uri=tracking)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"attributes.run_name = '{done.run_id}'")
    assert len(runs) == 1
    logged = {(m.step, round(m.value, 6)) for m in client.get_metric_history(runs[0].info.run_id, "loss")}
    written = [json.loads(line) for line in (Path(done.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert logged == {(m["step"], round(m["loss"], 6)) for m in written} and len(logged) == 4


def test_a_run_trains_only_under_its_own_job_once(people, tmp_path, base_template, monkeypatch):
    """Calling the trainer directly (a script holding the workspace, a second launch) is no way around the policy's
    say over compute: without a job, under another's job, under no job at all, under a cancelled job or a stale one,
    nothing is claimed and nothing trains (a job an earlier attempt used: `test_a_crashed_run_resumes_...`)."""
    from datetime import timedelta

    from forgegov.foundation.clock import now
    from forgegov.governance.jobs import run_job
    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.training.methods import BACKENDS

    governed_inputs(people, tmp_path / "inputs", base_template)
    started = _start(people, _recipe(tmp_path, recipe_text(max_steps=4)))
    actions.answer(people, started.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    daves = actions.start_job(people, run_job(started.run), "mine", "dave", PASSPHRASE).audit_seq
    for job, message in ((None, "trains only as a job the policy allowed"), (daves, "not alice's job"),
                         (daves - 1, "there is no job")):
        with pytest.raises((StateConflict, NotFound), match=message):
            execute_run(people, started.run, actor="alice", backends=BACKENDS, job=job)
    # alice's own job, cancelled, or started more than a day before it is taken up, trains nothing either.
    from forgegov.governance import job_entries
    from forgegov.governance.admin import AdminAct, make_admin_statement, submit_admin
    from forgegov.governance.identities import unlock

    alices = actions.start_job(people, run_job(started.run), "train", "alice", PASSPHRASE).audit_seq
    with actions.policy_engine(people) as engine:
        submit_admin(people, engine, make_admin_statement(unlock(people, "alice", PASSPHRASE), AdminAct.JOB_CANCEL,
                                                          {"job": alices}, "wrong mixture"))
    with pytest.raises(StateConflict, match=f"job {alices} was cancelled"):
        execute_run(people, started.run, actor="alice", backends=BACKENDS, job=alices)
    late = actions.start_job(people, run_job(started.run), "train", "alice", PASSPHRASE).audit_seq
    monkeypatch.setattr(job_entries, "now", lambda: now() + job_entries.CLAIM_WINDOW + timedelta(minutes=1))
    with pytest.raises(StateConflict, match=f"job {late} was started more than 24 hours ago"):
        execute_run(people, started.run, actor="alice", backends=BACKENDS, job=late)
    assert "run.start" not in _actions(people)


def test_a_method_without_a_backend_is_refused_before_anything_is_claimed(people, tmp_path, base_template):
    # The bookkeeping is the same for every method; a method this installation cannot train stops at once.
    from forgegov.governance.runs.lifecycle import execute_run
    from forgegov.governance.runs.recipe import Method
    from forgegov.training.methods import BACKENDS

    governed_inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, recipe_text(max_steps=4))
    started = _start(people, recipe)
    actions.answer(people, started.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    only_sft = {Method.SFT: BACKENDS[Method.SFT]}
    with pytest.raises(BadInput, match="no training backend for method cpt") as refused:
        execute_run(people, started.run, actor="alice", backends=only_sft)
    assert "sft" in (refused.value.hint or "")
    assert not {"run.start", "checkpoint.load", "dataset.load"} & set(_actions(people))
