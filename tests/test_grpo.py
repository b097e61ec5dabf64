"""Governed GRPO: reinforcement fine-tuning through TRL against approved reward functions that run only in the
sandbox, under the same run gate, verified loading, realised-token accounting, lineage and signed provenance as
CPT and SFT; every reward call recorded, and the record re-scored with the approved code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forgegov.app.run_start import start_run
from forgegov.foundation.errors import DigestMismatch, PolicyDenied
from forgegov.foundation.vocabulary import (
    AssetKind,
    CheckpointStage,
    Classification,
    DatasetKind,
    Gate,
    GateAction,
    ReleaseStage,
    RunStatus,
)
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.registry import label, register_asset
from forgegov.governance.runs.records import verify_run
from forgegov.training.grpo import ROLLOUTS_FILE, RewardCallFailed, rescore

from .conftest import PASSPHRASE, audit_entries, register_checked
from .reward_support import write_reward
from .runs_support import approve, build_tiny_base, recipe_text

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (scripts/install.sh)")

PROMPTS = DatasetSpec(DatasetKind.RL_PROMPTS, Classification.PROPRIETARY)

# The share of a completion's characters that are digits: a verifiable score a tiny model can move in a few steps.
DIGITS = '''
def score(prompts, completions, **_):
    return [sum(c.isdigit() for c in text) / max(1, len(text)) for text in completions]
'''
DIGITS_GOLDEN = [{"prompt": "Claim 1:", "completion": completion, "expected": expected}
                 for completion, expected in (("12ab", 0.5), ("none", 0.0), ("7", 1.0))]
# Passes its golden examples (one item each), fails on every training batch.
BATCH_FAILS = '''
def score(prompts, completions, **_):
    if len(prompts) > 1:
        raise RuntimeError("cannot score a batch")
    return [sum(c.isdigit() for c in text) / max(1, len(text)) for text in completions]
'''


@pytest.fixture(scope="module")
def base_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("base") / "tiny-base")


def _inputs(ws, root: Path, base_template: Path, reward_code: str = DIGITS, approve_reward: bool = True) -> dict:
    base_dir = root / "base"
    shutil.copytree(base_template, base_dir)
    base = register_asset(ws, AssetKind.CHECKPOINT, base_dir, "tiny-base", "alice", stage=CheckpointStage.PRE_TRAINING)
    approve(ws, label(base), Gate.BASE, "alice", "dave")
    folder = root / "prompts"
    folder.mkdir()
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Claim {i:05d}: the"}) + "\n"
                                                  for i in range(64)), encoding="utf-8")
    prompts = register_checked(ws, folder, "claims", "alice", PROMPTS)
    approve(ws, label(prompts), Gate.DATASET, "alice", "bob")
    reward_dir = write_reward(root / "digits", reward_code, DIGITS_GOLDEN)
    reward = register_asset(ws, AssetKind.REWARD, reward_dir, "digits", "alice")
    if approve_reward:
        approve(ws, label(reward), Gate.REWARD, "alice", "carol")
    return {"reward_dir": reward_dir, "reward": label(reward)}


def _recipe(tmp_path: Path, *, steps: int = 40, rl_extra: str = "") -> Path:
    path = tmp_path / "grpo.toml"
    rl = ('decay = "constant"\n\n[[rewards]]\nreward = "digits"\n\n[rl]\nnum_generations = 4\n'
          f"max_completion_length = 12\n{rl_extra}")
    path.write_text(recipe_text(name="digits-grpo", method="grpo", seed=0, shares=(1.0, 0, 0), max_steps=steps,
                                batch_size=8, learning_rate=0.03, warmup_steps=0, extra_train=rl), encoding="utf-8")
    return path


def _start(ws, recipe: Path):  # type: ignore[no-untyped-def]
    return start_run(ws, recipe, "alice", lambda: PASSPHRASE)


def _approved_run(ws, recipe: Path) -> str:
    waiting = _start(ws, recipe)
    assert not waiting.started and waiting.state == "pending"
    actions.answer(ws, waiting.run, "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.RUN)
    return waiting.run


def _mean(calls: list[dict]) -> float:
    scores = [s for call in calls for s in call["scores"]]
    return sum(scores) / len(scores)


def test_grpo_raises_the_approved_reward_records_every_call_and_re_scores_identically(people, tmp_path, base_template,
                                                                                    monkeypatch):
    inputs = _inputs(people, tmp_path / "inputs", base_template)
    run = _approved_run(people, _recipe(tmp_path))
    done = _start(people, _recipe(tmp_path)).trained
    assert done is not None and done.status is RunStatus.COMPLETED
    output = Path(done.output_dir)
    calls = [json.loads(line) for line in (output / ROLLOUTS_FILE).read_text().splitlines()]
    assert len(calls) == 40 and all(c["outcome"] == "ok" and len(c["completions"]) == 8 for c in calls)
    assert all(c["prompt_digests"][0].startswith("sha256:") and c["reward"] == inputs["reward"] for c in calls)
    # Measured (seed 0): the mean score of the first ten calls is about 0.1, of the last ten near 1.
    first, last = _mean(calls[:10]), _mean(calls[-10:])
    assert last > first + 0.3, (first, last)
    # The record: the reward's digest beside the inputs, the rollouts by digest, tokens counted per source.
    [complete] = audit_entries(people, "run.complete")
    lineage = json.loads(complete.payload)
    [reward_digest] = lineage["rewards"]
    assert lineage["rollouts"]["calls"] == 40 and lineage["rollouts"]["failures"] == 0
    assert 0 < lineage["mixture"]["total_tokens"] <= 40 * 8 * 12  # completion tokens, at most 12 per completion
    assert [e.subject_digest for e in audit_entries(people, "reward.load")] == [reward_digest]
    verify_run(people, done.run_id)
    from forgegov.governance.lineage import lineage_report

    produced_by = lineage_report(people, done.candidate)["checkpoint"]["produced_by"]
    assert [r["label"] for r in produced_by["rewards"]] == [inputs["reward"]] and produced_by["environment"] is None
    signed = json.loads((output / "provenance" / "provenance.intoto.dsse.json").read_text())
    import base64
    statement = json.loads(base64.b64decode(signed["payload"]))
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"name": inputs["reward"], "digest": {"sha256": reward_digest.removeprefix("sha256:")},
            "annotations": {"role": "reward", "weight": 1.0}} in dependencies
    [rollouts] = [b for b in statement["predicate"]["runDetails"]["byproducts"] if b["name"] == ROLLOUTS_FILE]
    assert "sha256:" + rollouts["digest"]["sha256"] == lineage["rollouts"]["sha256"]
    # Promotion asks for the held-out objective besides the target's metrics: a rising reward is not evidence.
    with pytest.raises(PolicyDenied) as denied:
        actions.promote(people, done.candidate, ReleaseStage.STAGING, "alice", PASSPHRASE)
    assert any("was trained by grpo against a reward, which can rise while the objective it stands for falls: it "
               "needs a drift evaluation of the held-out objective domain_accuracy" in r for r in denied.value.reasons)
    # A reviewer re-scores every recorded call with the approved code, through the door: all reproduce.
    from typer.testing import CliRunner

    from forgegov.app.cli.main import app

    monkeypatch.setenv("FORGEGOV_PASSPHRASE", PASSPHRASE)
    result = CliRunner().invoke(app, ["-w", str(people.root), "run", "rescore", done.run_id, "--as", "carol",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run": run, "run_id": done.run_id, "calls": 40, "reproduced": 40,
                                         "differing": [], "endpoint_calls_not_rescored": 0}
    # A record whose scores were edited no longer matches what the approved code gives ...
    forged = output / "forged.jsonl"
    forged.write_text("".join(json.dumps({**c, "scores": [-1.0] * 8}) + "\n" for c in calls[:2]))
    assert rescore(people, forged, actor="carol", purpose="review")["reproduced"] == 0
    # ... and the run's own file, once edited, is not the one its provenance signed (tampering: exit 4).
    shutil.copy(forged, output / ROLLOUTS_FILE)
    refused = CliRunner().invoke(app, ["-w", str(people.root), "run", "rescore", done.run_id, "--as", "carol"])
    assert isinstance(refused.exception, DigestMismatch) and refused.exception.exit_code == 4
    assert "not the rollouts file the run's provenance signed" in refused.exception.message


def test_an_unapproved_reward_is_denied_at_the_run_gate_before_any_compute(people, tmp_path, base_template):
    _inputs(people, tmp_path / "inputs", base_template, approve_reward=False)
    with pytest.raises(PolicyDenied) as denied:
        _start(people, _recipe(tmp_path))
    assert any("reward/digits@1, a reward function of run digits-grpo v1, is not approved" in r
               for r in denied.value.reasons)
    assert not audit_entries(people, "run.start") and not audit_entries(people, "reward.load")


def test_reward_code_edited_after_approval_is_refused_before_training(people, tmp_path, base_template):
    inputs = _inputs(people, tmp_path / "inputs", base_template)
    _approved_run(people, _recipe(tmp_path))
    (inputs["reward_dir"] / "reward.py").write_text("def score(prompts, completions, **_):\n"
                                                    "    return [1.0] * len(prompts)\n")
    with pytest.raises(DigestMismatch, match="reward.py has changed since it was registered"):
        _start(people, _recipe(tmp_path))
    assert audit_entries(people, "reward.load.refused") and not audit_entries(people, "run.complete")


def test_a_failing_reward_stops_the_run_or_scores_zero_as_the_recipe_says(people, tmp_path, base_template):
    _inputs(people, tmp_path / "inputs", base_template, reward_code=BATCH_FAILS)
    _approved_run(people, _recipe(tmp_path, steps=3))
    with pytest.raises(RewardCallFailed, match="failed at step 0 \\(error: RuntimeError: cannot score a batch"):
        _start(people, _recipe(tmp_path, steps=3))
    tolerant = _recipe(tmp_path, steps=3, rl_extra='on_reward_failure = "zero"\nmax_reward_failures = 5\n')
    tolerant.rename(tmp_path / "tolerant.toml")
    text = (tmp_path / "tolerant.toml").read_text().replace('name = "digits-grpo"', 'name = "digits-grpo-tolerant"')
    (tmp_path / "tolerant.toml").write_text(text)
    _approved_run(people, tmp_path / "tolerant.toml")
    done = _start(people, tmp_path / "tolerant.toml").trained
    assert done is not None and done.status is RunStatus.COMPLETED
    calls = [json.loads(line) for line in (Path(done.output_dir) / ROLLOUTS_FILE).read_text().splitlines()]
    assert [c["outcome"] for c in calls] == ["error"] * 3 and all(c["scores"] is None for c in calls)


def test_a_resume_continues_the_committed_rollouts_not_an_edited_file(people, tmp_path, base_template, monkeypatch):
    """Found by a review: the rollouts file was appended to across a crash and signed whole at the end, so a line
    forged between the crash and the resume was signed and passed `run rescore`."""
    from forgegov.training import grpo
    from forgegov.training.grpo import rescore_run

    _inputs(people, tmp_path / "inputs", base_template)
    recipe = _recipe(tmp_path, steps=10)
    _approved_run(people, recipe)
    real = grpo.RecordedReward.__call__

    def crash_at_step_7(self, prompts, completions, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs["trainer_state"].global_step == 7:
            raise RuntimeError("power cut")
        return real(self, prompts, completions, **kwargs)

    monkeypatch.setattr(grpo.RecordedReward, "__call__", crash_at_step_7)
    with pytest.raises(RuntimeError, match="power cut"):
        _start(people, recipe)
    monkeypatch.setattr(grpo.RecordedReward, "__call__", real)
    [output] = [p for p in (people.artifacts_dir / "runs").iterdir() if (p / ROLLOUTS_FILE).exists()]
    calls = [json.loads(line) for line in (output / ROLLOUTS_FILE).read_text().splitlines()]
    forged = {**calls[0], "completions": ["FORGED"] * 8, "scores": [1.0] * 8, "endpoint": True}
    (output / ROLLOUTS_FILE).write_text(json.dumps(forged) + "\n")
    done = _start(people, recipe).trained
    assert done is not None and done.status is RunStatus.COMPLETED and done.attempts == 2
    final = [json.loads(line) for line in (output / ROLLOUTS_FILE).read_text().splitlines()]
    assert len(final) == 10 and "FORGED" not in json.dumps(final)  # steps 0-5 as committed at step 6, then 6-9
    assert rescore_run(people, done.run_id, actor="carol")["reproduced"] == 10
    # A line naming a reward the provenance does not list, or code dressed as an endpoint, is tampering.
    (tmp_path / "forged.jsonl").write_text(json.dumps(forged) + "\n")
    with pytest.raises(DigestMismatch, match="names a reward-endpoint"):
        rescore(people, tmp_path / "forged.jsonl", actor="carol", purpose="review", signed={forged["digest"]: "reward"})
