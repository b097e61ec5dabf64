"""`forgegov demo`: the governed flow end to end, in a fresh workspace, with real OPA, keys and signatures.

Later issues extend it (training, drift evaluation); at this stage it shows the spine: identities, registration,
data-quality checks as gate evidence (a clean dataset, and one with personal data that needs the privacy officer's
justified approval), digest-verified loading (an edited file refused and logged), the four gates, separation of
duties, quorum, revocation and the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from forgegov.governance import actions
from forgegov.governance.config import Workspace
from forgegov.governance.datasets.check import check_dataset
from forgegov.governance.datasets.loader import load_dataset
from forgegov.governance.errors import DigestMismatch, ForgegovError, PolicyDenied
from forgegov.governance.gate import GateOutcome
from forgegov.governance.identities import create_identity, revoke_identity
from forgegov.governance.states import Classification, DatasetKind
from forgegov.governance.registry import DatasetSpec, register_asset
from forgegov.governance.states import AssetKind, CheckpointStage, GateAction, ReleaseStage
from forgegov.governance.workspace import init_workspace

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "mallory")
# Holds no role in policy data: a witness only cosigns checkpoints it has checked.
WITNESS = "audit-witness"


@dataclass
class DemoReport:
    workspace: str
    steps: list[dict] = field(default_factory=list)
    audit_entries: int = 0


def _write_demo_assets(root: Path) -> dict[str, Path]:
    dataset = root / "claims-dataset"
    dataset.mkdir(parents=True)
    with open(dataset / "train.jsonl", "w", encoding="utf-8") as handle:
        for i in range(200):
            handle.write(json.dumps({"text": f"Claim {i:04d}: part ZX-{100 + i} was replaced under warranty."}) + "\n")
    tickets = root / "support-tickets"
    tickets.mkdir()
    with open(tickets / "tickets.jsonl", "w", encoding="utf-8") as handle:
        for i in range(100):
            # Every tenth ticket quotes the customer's address, as real support exports do.
            contact = f" Reply to customer{i}@example.com." if i % 10 == 3 else ""
            handle.write(json.dumps({"text": f"Ticket {i:03d}: hinge on unit ZX-{300 + i} squeaks.{contact}"}) + "\n")
    reward = root / "reward"
    reward.mkdir()
    (reward / "reward.py").write_text(
        "def reward(completion: str) -> float:\n    return 1.0 if 'warranty' in completion else 0.0\n",
        encoding="utf-8")
    run = root / "run-spec"
    run.mkdir()
    (run / "recipe.toml").write_text('method = "cpt"\nbase = "base@post-training"\nsteps = 300\n', encoding="utf-8")
    import numpy as np
    from safetensors.numpy import save_file

    checkpoint = root / "checkpoint"
    checkpoint.mkdir()
    # Only the registry's checks apply to it here (a config naming its model type, real safetensors weights); the
    # demo never loads it.
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 256}), encoding="utf-8")
    save_file({"model.embed_tokens.weight": np.arange(256 * 16, dtype=np.float32).reshape(16, 256)},
              str(checkpoint / "model.safetensors"))
    return {"dataset": dataset, "tickets": tickets, "reward": reward, "run": run, "checkpoint": checkpoint}


def run_demo(directory: Path, passphrase: str, say: Callable[[str], None]) -> DemoReport:
    workspace: Workspace = init_workspace(directory / "workspace")
    report = DemoReport(workspace=str(workspace.root))
    say(f"workspace: {workspace.root}")
    for person in (*PEOPLE, WITNESS):
        create_identity(workspace, person, passphrase)
    say(f"identities: {', '.join(PEOPLE)} (roles come from the policy bundle's data)")
    paths = _write_demo_assets(directory / "inputs")
    proprietary_text = DatasetSpec(DatasetKind.PRETRAINING_TEXT, Classification.PROPRIETARY)
    register_asset(workspace, AssetKind.DATASET, paths["dataset"], "claims", "alice", dataset=proprietary_text)
    register_asset(workspace, AssetKind.DATASET, paths["tickets"], "support-tickets", "alice",
                   dataset=proprietary_text)
    register_asset(workspace, AssetKind.REWARD, paths["reward"], "warranty-reward", "alice")
    register_asset(workspace, AssetKind.RUN, paths["run"], "claims-cpt", "alice")
    register_asset(workspace, AssetKind.CHECKPOINT, paths["checkpoint"], "claims-model", "alice",
                   stage=CheckpointStage.CANDIDATE)
    say("registered: dataset/claims@1, dataset/support-tickets@1, reward/warranty-reward@1, run/claims-cpt@1, "
        "checkpoint/claims-model@1")
    for name in ("claims", "support-tickets"):
        checked = check_dataset(workspace, f"dataset/{name}", actor="alice")
        pii = checked.summary["pii"]
        say(f"data-quality check of {checked.dataset}: {checked.summary['records']} records, PII in "
            f"{pii['records']} ({', '.join(pii['sample_locations']) or 'none'}), result {checked.result_digest[:19]}…")

    def step(title: str, call: Callable[[], GateOutcome], expect_denied: bool = False) -> None:
        try:
            outcome = call()
        except PolicyDenied as denied:
            if not expect_denied:
                raise
            report.steps.append({"step": title, "result": "deny", "reasons": denied.reasons})
            say(f"  {title}: DENIED")
            for reason in denied.reasons:
                say(f"      {reason}")
            return
        if expect_denied:
            raise ForgegovError(f"demo expected a denial at: {title}")
        report.steps.append({"step": title, **outcome.to_dict()})
        say(f"  {title}: {outcome.result.value} → state {outcome.state}"
            + (f", release {outcome.release}" if outcome.release else ""))
        for item in outcome.missing:
            say(f"      still required: {item}")

    with actions.policy_engine(workspace) as engine:
        def act(subject: str, actor: str, action: GateAction) -> Callable[[], GateOutcome]:
            if action is GateAction.REQUEST:
                return lambda: actions.request(workspace, subject, actor, passphrase, engine=engine)
            return lambda: actions.answer(workspace, subject, actor, passphrase, action, engine=engine)

        def promote(target: ReleaseStage) -> Callable[[], GateOutcome]:
            return lambda: actions.promote(workspace, "claims-model", target, "alice", passphrase, engine=engine)

        say("dataset gate")
        step("alice requests approval of dataset/claims@1", act("claims", "alice", GateAction.REQUEST))
        step("alice approves her own request", act("claims", "alice", GateAction.APPROVE), expect_denied=True)
        step("carol (reward reviewer) approves the dataset", act("claims", "carol", GateAction.APPROVE),
             expect_denied=True)
        step("bob (data steward) approves", act("claims", "bob", GateAction.APPROVE))
        say("dataset gate, personal data found")
        step("alice requests approval of dataset/support-tickets@1",
             act("support-tickets", "alice", GateAction.REQUEST))
        step("bob (data steward) approves", act("support-tickets", "bob", GateAction.APPROVE))
        step("grace (privacy officer) approves without a justification",
             act("support-tickets", "grace", GateAction.APPROVE), expect_denied=True)
        step("grace approves with a justification",
             lambda: actions.answer(workspace, "support-tickets", "grace", passphrase, GateAction.APPROVE,
                                    comment="addresses are the customers' own, processed under the support contract",
                                    engine=engine))
        say("digest-verified loading")
        loaded = load_dataset(workspace, "dataset/claims", actor="alice", purpose="demo: continued pre-training")
        report.steps.append({"step": "alice loads dataset/claims@1", "result": "loaded", "rows": loaded.num_rows})
        say(f"  alice loads dataset/claims@1 for training: {loaded.num_rows} rows, every byte re-verified")
        tickets = paths["tickets"] / "tickets.jsonl"
        tickets.write_bytes(tickets.read_bytes().replace(b"squeaks", b"squeals", 1))
        try:
            load_dataset(workspace, "dataset/support-tickets", actor="alice", purpose="demo: continued pre-training")
        except DigestMismatch as refused:
            report.steps.append({"step": "alice loads support-tickets after a word was edited", "result": "refused",
                                 "reasons": [refused.message]})
            say(f"  alice loads dataset/support-tickets@1 after one word in it was edited: REFUSED, and logged "
                f"({refused.message})")
        else:
            raise ForgegovError("demo expected the edited dataset to be refused")
        say("reward-function gate")
        step("alice requests review of reward/warranty-reward@1", act("warranty-reward", "alice", GateAction.REQUEST))
        step("carol (reward reviewer) approves", act("warranty-reward", "carol", GateAction.APPROVE))
        say("run-start gate")
        step("alice requests to start run/claims-cpt@1", act("claims-cpt", "alice", GateAction.REQUEST))
        step("dave (ML lead) approves", act("claims-cpt", "dave", GateAction.APPROVE))
        say("promotion gate")
        step("alice asks to promote straight to production", promote(ReleaseStage.PRODUCTION), expect_denied=True)
        step("alice asks to promote claims-model@1 to staging", promote(ReleaseStage.STAGING))
        step("dave (ML lead) approves staging", act("claims-model", "dave", GateAction.APPROVE))
        step("alice asks to promote to production", promote(ReleaseStage.PRODUCTION))
        step("erin (release manager) approves", act("claims-model", "erin", GateAction.APPROVE))
        step("erin approves a second time", act("claims-model", "erin", GateAction.APPROVE), expect_denied=True)
        step("frank (release manager) approves: quorum of two met", act("claims-model", "frank", GateAction.APPROVE))
        say("revocation")
        revoke_identity(workspace, "mallory", "laptop lost", "security-team")
        try:
            actions.request(workspace, "claims-cpt", "mallory", passphrase, engine=engine)
        except ForgegovError as refused:
            report.steps.append({"step": "mallory (revoked) tries to act", "result": "refused",
                                 "reasons": [refused.message]})
            say(f"  mallory (revoked) tries to act: REFUSED ({refused.message})")

    from forgegov.audit.checkpoints import hand_to_witness, make_checkpoint
    from forgegov.audit.operations import verify_workspace
    from forgegov.governance.identities import unlock

    signed = make_checkpoint(workspace)
    witness = directory / "witness"
    hand_to_witness(workspace, signed, witness, cosigner=unlock(workspace, WITNESS, passphrase))
    verified = verify_workspace(workspace, [witness])
    report.audit_entries = verified.entries
    say(f"audit log: {verified.entries} entries, root {verified.root[:16]}…, checkpoint at size "
        f"{signed.checkpoint.size} signed by the log and cosigned by the witness; every leaf, node, checkpoint "
        f"and signed statement verified")
    return report
