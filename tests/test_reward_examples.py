"""The shipped reward examples (examples/rewards/) pass what the reward gate asks of them: every golden example
reproduces in the sandbox, from a copy of the folder, with the declared dependencies installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forgegov.foundation.vocabulary import AssetKind, GateAction
from forgegov.governance import actions
from forgegov.governance.evidence.golden import GOLDEN_LIMITS
from forgegov.governance.registry import register_asset
from forgegov.governance.rewards import golden_evidence, read_declaration

from .conftest import PASSPHRASE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "rewards"

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (scripts/install.sh)")


@pytest.mark.parametrize("name", ["arithmetic", "molecules"])
def test_a_shipped_reward_reproduces_its_golden_examples_in_the_sandbox(tmp_path, name):
    code = shutil.copytree(EXAMPLES / name, tmp_path / name)
    declaration = read_declaration(code)
    evidence = golden_evidence(code, GOLDEN_LIMITS, hidden=[])
    assert evidence["golden"] == {"examples": len(declaration.golden), "reproduced": len(declaration.golden),
                                  "failures": []}
    assert all(version is not None for version in evidence["dependencies"].values())
    if name == "molecules":
        assert set(evidence["dependencies"]) == {"rdkit"}


def test_the_arithmetic_reward_is_approved_at_the_reward_gate(people, tmp_path):
    register_asset(people, AssetKind.REWARD, shutil.copytree(EXAMPLES / "arithmetic", tmp_path / "arithmetic"),
                   "arithmetic", "alice")
    with actions.policy_engine(people) as engine:
        actions.request(people, "arithmetic", "alice", PASSPHRASE, engine=engine)
        done = actions.answer(people, "arithmetic", "carol", PASSPHRASE, GateAction.APPROVE, engine=engine)
    assert done.state == "approved"
