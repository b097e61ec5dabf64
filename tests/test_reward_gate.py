"""Reward code as a governed asset: registered with its declaration and golden examples, decided at the reward gate on
forgegov's own sandboxed re-run of those examples against the registered bytes, and loaded only through a door that
re-hashes them and runs them contained."""

from __future__ import annotations

import shutil

import pytest

from forgegov.foundation.errors import DigestMismatch, PolicyDenied
from forgegov.foundation.vocabulary import AssetKind, GateAction
from forgegov.governance import actions
from forgegov.governance.evidence import golden as golden_evidence_module
from forgegov.governance.loading.rewards import open_reward
from forgegov.governance.registry import find_asset, register_asset
from forgegov.governance.review import review
from forgegov.governance.rewards import RewardError
from forgegov.governance.sandbox.isolation import SandboxLimits
from forgegov.governance.sandbox.pool import Outcome

from .conftest import PASSPHRASE, audit_entries
from .reward_support import GOLDEN, write_reward

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (scripts/install.sh)")


@pytest.fixture
def engine(people):
    with actions.policy_engine(people) as running:
        yield running


def _request(ws, name, engine):
    return actions.request(ws, name, "alice", PASSPHRASE, engine=engine)


def test_a_reward_whose_golden_examples_reproduce_in_the_sandbox_is_approved(people, files, engine):
    register_asset(people, AssetKind.REWARD, write_reward(files.root / "exact"), "exact", "alice")
    assert _request(people, "exact", engine).state == "pending"
    evidence = review(people, "reward/exact").evidence["reward"]
    assert evidence["golden"] == {"examples": 3, "reproduced": 3, "failures": []}
    assert evidence["entry"] == "reward:score" and evidence["procedure"] == 1
    with pytest.raises(PolicyDenied) as denied:
        actions.answer(people, "exact", "alice", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert "alice requested this approval and cannot approve it" in " ".join(denied.value.reasons)
    approved = actions.answer(people, "exact", "carol", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert approved.state == "approved"


def test_golden_examples_that_score_otherwise_deny_the_request(people, files, engine):
    lenient = "def score(prompts, completions, **_):\n    return [1.0] * len(prompts)\n"
    register_asset(people, AssetKind.REWARD, write_reward(files.root / "lenient", lenient), "lenient", "alice")
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "lenient", engine)
    assert denied.value.reasons == ["golden example 2 of reward lenient v1 scored 1 in the sandbox, not the expected 0: "
                                    "fix the reward or the example and register a new version"]


def test_a_hanging_reward_is_denied_after_its_time_not_waited_on(people, files, engine, monkeypatch):
    monkeypatch.setattr(golden_evidence_module, "GOLDEN_LIMITS", SandboxLimits(timeout_s=1.0))
    hangs = ("def score(prompts, completions, answer, **_):\n    if answer[0] == '6':\n        while True:\n"
             "            pass\n    return [1.0]\n")
    register_asset(people, AssetKind.REWARD, write_reward(files.root / "hangs", hangs), "hangs", "alice")
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "hangs", engine)
    assert denied.value.reasons == [
        "golden example 2 of reward hangs v1 did not run to a score in the sandbox (timeout: no answer within 1 s; "
        "the worker and its processes were killed): fix the reward and register a new version"]


def test_a_missing_dependency_and_a_loose_tolerance_deny(people, files, engine):
    folder = write_reward(files.root / "deps", dependencies=["forgegov-no-such-distribution"], tolerance=0.5)
    register_asset(people, AssetKind.REWARD, folder, "deps", "alice")
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "deps", engine)
    assert sorted(denied.value.reasons) == [
        "reward deps v1 declares dependency forgegov-no-such-distribution, which is not installed where rewards run: "
        "install it there, or drop it from reward.toml",
        "reward deps v1 lets a golden score differ by 0.5 from its expected value; the policy allows at most 0.001: "
        "lower tolerance in reward.toml and register a new version"]


def test_too_few_golden_examples_deny(people, files, engine):
    register_asset(people, AssetKind.REWARD, write_reward(files.root / "few", golden=GOLDEN[:2]), "few", "alice")
    with pytest.raises(PolicyDenied) as denied:
        _request(people, "few", engine)
    assert "reward few v1 has 2 golden examples; the policy needs at least 3" in denied.value.reasons[0]


def test_code_swapped_after_registration_is_refused_as_tampered_and_never_run(people, files, engine):
    """The attack: register code that passes its examples, then change the file the gate would run."""
    folder = write_reward(files.root / "swapped")
    register_asset(people, AssetKind.REWARD, folder, "swapped", "alice")
    (folder / "reward.py").write_text("def score(prompts, completions, **_):\n    return [1.0] * len(prompts)\n")
    with pytest.raises(DigestMismatch, match="reward.py has changed since it was registered"):
        _request(people, "swapped", engine)
    assert find_asset(people, "reward/swapped").state.value == "registered"


@pytest.mark.parametrize(("files_in", "message"), [
    ({"reward.py": "x = 1"}, "has no reward.toml"),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "other:score"\n'}, "not in the folder"),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "reward"\n'}, 'entry must be "module:function"'),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "reward:score"\nseed = 3\n'}, "unknown key"),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "reward:score"\n', "golden.jsonl": "{]\n"},
     "golden.jsonl:1 is not JSON"),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "reward:score"\n', "golden.jsonl": "\n"},
     "holds no golden example"),
    ({"reward.py": "x = 1", "reward.toml": 'version = 1\nentry = "reward:score"\n',
      "golden.jsonl": '{"prompt": "a", "completion": "b", "expected": 1, "columns": {"prompts": 1}}\n'},
     "none of completion_ids, completions, prompts, trainer_state"),
])
def test_registration_refuses_a_reward_without_a_valid_declaration(workspace, files, files_in, message):
    with pytest.raises(RewardError, match=message):
        register_asset(workspace, AssetKind.REWARD, files.folder("bad", files_in), "bad", "alice")


def test_the_door_re_verifies_every_load_and_runs_the_code_contained(people, files):
    folder = write_reward(files.root / "door")
    register_asset(people, AssetKind.REWARD, folder, "door", "alice")
    with open_reward(people, "reward/door", actor="alice", purpose="score a test batch") as loaded:
        result = loaded.sandbox.score({"prompts": ["a", "b"], "completions": ["1", "2"], "answer": ["1", "3"]})
    assert result.outcome is Outcome.OK and result.scores == [1.0, 0.0]
    [entry] = audit_entries(people, "reward.load")
    assert entry.subject_digest == loaded.digest
    (folder / "reward.py").write_text("def score(prompts, completions, **_):\n    return [1.0] * len(prompts)\n")
    with pytest.raises(DigestMismatch):
        with open_reward(people, "reward/door", actor="alice", purpose="score a test batch"):
            pytest.fail("tampered code was handed out")
    [refused] = audit_entries(people, "reward.load.refused")
    assert refused.subject_digest == loaded.digest
