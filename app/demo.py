"""`forgegov demo`: the governed flow end to end, in a fresh workspace, with real OPA, keys, signatures and training.

It shows identities, registration, data-quality checks as gate evidence (a clean dataset, and ones with personal
data that need the privacy officer's justified approval), digest-verified loading (an edited file refused and
logged), a reference model family built here, the base gate, a run refused for its mixture and two approved and
trained on exactly the approved bytes with realised tokens per source (continued pre-training, and LoRA fine-tuning
on replayed replies), each candidate's signed provenance verified, drift evaluation of each against the base (paired
non-inferiority against the margins in policy data), promotion decided on that evaluation with separation of duties
and quorum, revocation, a policy change and the audit log. What the promotion gate answers follows from the
measured numbers: the demo prints them and the gate's reasons, and takes the release steps only as far as the gate
allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgegov.app.evaluate import evaluate
from forgegov.app.run_start import start_run
from forgegov.app.workspace import init_workspace
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import DigestMismatch, ForgegovError, PolicyDenied
from forgegov.foundation.vocabulary import AssetKind, Classification, DatasetKind, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.evidence.data_quality import check_dataset
from forgegov.governance.gate import GateOutcome
from forgegov.governance.identities import create_identity, unlock
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.registry import label, register_asset
from forgegov.governance.runs.records import verify_run
from forgegov.training.reference.build import build_reference
from forgegov.training.reference.model import preset as reference_preset
from forgegov.training.reference.register import register_reference

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "mallory")
# The reference family's held-out splits the shipped drift suite reads.
EVAL_DATASETS = ("ref-safety-eval", "ref-instructions-eval", "ref-domain-eval", "ref-general-heldout")
SUITE = Path(__file__).resolve().parents[1] / "evaluation" / "suites" / "reference.toml"
# Holds no role in policy data: a witness only cosigns checkpoints it has checked.
WITNESS = "audit-witness"


Progress = Callable[[str, int, int, str], None]


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
        "def score(prompts, completions, **_):\n"
        "    return [1.0 if 'warranty' in completion.lower() else 0.0 for completion in completions]\n",
        encoding="utf-8")
    (reward / "reward.toml").write_text('version = 1\nentry = "reward:score"\ngolden = "golden.jsonl"\n',
                                        encoding="utf-8")
    golden = [("Is ZX-101 covered?", "Yes, under warranty.", 1.0), ("Is ZX-102 covered?", "No.", 0.0),
              ("What covers hinges?", "The Warranty covers hinges.", 1.0)]
    (reward / "golden.jsonl").write_text(
        "".join(json.dumps({"prompt": p, "completion": c, "expected": e}) + "\n" for p, c, e in golden),
        encoding="utf-8")
    return {"dataset": dataset, "tickets": tickets, "reward": reward}


@dataclass(frozen=True)
class Candidate:
    """One customisation of the family's post-training checkpoint on the parts catalogue: which method, with which
    shares of proprietary, general and replayed data, how hard. What becomes of it is the gates' answer."""

    name: str
    method: str
    shares: tuple[float, float, float]  # proprietary, general, replay
    learning_rate: float
    steps: int
    why: str
    lora_rank: int | None = None  # low-rank adapters on every projection, merged into the candidate


# Two recipes the run gate approves (both keep the replay floor). Measured on the small family (seed 1): continued
# pre-training at a high learning rate raises harmful-request refusal but teaches the model to refuse benign
# look-alikes and to ignore instructions; rank-4 adapters trained on the replayed conversations' replies only (SFT)
# are the recipe found, among those tried (docs/evaluation.md), to keep the base's behaviour. The demo prints what
# each one measured; the promotion gate decides.
CANDIDATES = (
    Candidate("claims-cpt", "cpt", (0.7, 0.25, 0.05), 2e-3, 100,
              "continued pre-training, 70 % catalogue / 25 % general / 5 % replay, learning rate 2e-3"),
    Candidate("claims-sft", "sft", (0.3, 0.2, 0.5), 3e-4, 60,
              "rank-4 LoRA, loss on replies of the replayed conversations, 30 % catalogue / 20 % general / 50 % "
              "replay, learning rate 3e-4", lora_rank=4),
)


def _write_recipe(path: Path, candidate: Candidate, seq_len: int, batch_size: int) -> Path:
    """A run from the reference post-training checkpoint on the parts catalogue, general text and replayed
    instruction/safety conversations in the candidate's shares (zero shares left out)."""
    sources = (("ref-domain-train", "proprietary"), ("ref-general-train", "general"), ("ref-sft-chat", "replay"))
    blocks = "".join(f'\n[[mixture.sources]]\ndataset = "{dataset}"\nrole = "{role}"\nshare = {share}\n'
                     for (dataset, role), share in zip(sources, candidate.shares, strict=True) if share > 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'version = 1\nname = "{candidate.name}"\nmethod = "{candidate.method}"\nseed = 1\n\n[base]\n'
                    f'checkpoint = "ref-post-training@1"\n\n[mixture]\nstopping = "all_exhausted"\n{blocks}\n'
                    f"[train]\nmax_steps = {candidate.steps}\nbatch_size = {batch_size}\nseq_len = {seq_len}\n"
                    f"learning_rate = {candidate.learning_rate}\nwarmup_steps = {max(1, candidate.steps // 10)}\n"
                    'decay = "cosine"\nmin_lr_ratio = 0.1\n'
                    + ("" if candidate.lora_rank is None else
                       f"\n[train.lora]\nr = {candidate.lora_rank}\nalpha = {2 * candidate.lora_rank}\n"
                       'target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", '
                       '"down_proj"]\n'), encoding="utf-8")
    return path


def _building(say: Callable[[str], None]) -> Progress:
    """Build progress as lines: each stage when it finishes, with its last note (the loss)."""
    def progress(phase: str, done: int, total: int, note: str) -> None:
        if total and done == total and phase in ("pre-training", "mid-training", "post-training"):
            say(f"  {phase}: {total} steps, {note}")
    return progress


def _stricter_policy(workspace: Workspace, folder: Path) -> Path:
    """The policy in force, written out as policy owners would edit it: every dataset also needs a privacy officer."""
    from forgegov.foundation.store.db import read_session
    from forgegov.governance.policy import policy_in_force, stored_policy

    with read_session(workspace.database_url) as session:
        bundle, _decider = stored_policy(session, policy_in_force(session).digest)
    bundle.write(folder)
    data_file = folder / "data" / "data.json"
    data = json.loads(data_file.read_text(encoding="utf-8"))
    data["gates"]["dataset"]["quorum"]["privacy-officer"] = 1
    data_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (folder / ".manifest").write_text(json.dumps({"revision": "demo-2-privacy-on-every-dataset"}) + "\n",
                                      encoding="utf-8")
    return folder


Step = Callable[..., bool]
Act = Callable[[str, str, GateAction], Callable[[], GateOutcome]]


def _customise(workspace: Workspace, engine: Any, candidate: Candidate, directory: Path, seq_len: int,
               batch_size: int, passphrase: str, report: DemoReport, say: Callable[[str], None], step: Step,
               act: Act, suite: str, *, first: bool, progress: Progress | None) -> None:
    """One candidate from recipe to release: the run gate, training on the approved bytes, provenance, the drift
    evaluation against its base, and promotion as far as the gate allows on what was measured."""
    recipe = _write_recipe(directory / "recipes" / f"{candidate.name}.toml", candidate, seq_len, batch_size)
    waiting = start_run(workspace, recipe, "alice", lambda: passphrase, engine=engine)
    report.steps.append({"step": f"alice starts run {candidate.name}", "result": waiting.state,
                         "missing": list(waiting.missing)})
    say(f"  alice starts {waiting.run}: {waiting.state}, not started")
    for item in waiting.missing:
        say(f"      still required: {item}")
    step(f"dave (ML lead) approves run {candidate.name}", act(waiting.run, "dave", GateAction.APPROVE))
    trained = start_run(workspace, recipe, "alice", lambda: passphrase, engine=engine,
                        **({"progress": progress} if progress else {})).trained
    if trained is None:
        raise ForgegovError(f"demo expected the approved run {candidate.name} to train")
    report.steps.append({"step": f"alice starts the approved run {candidate.name}", "result": "trained",
                         **trained.to_dict()})
    say(f"  alice starts the approved run: trained {trained.realised['total_tokens']:,} tokens → "
        f"candidate {trained.candidate}")
    for source in trained.realised["sources"]:
        say(f"      {source['label']:<32} {source['role']:<11} planned {source['planned_share']:6.1%}  "
            f"realised {source['realised_share']:6.1%}  ({source['tokens']:,} tokens)")
    verified = verify_run(workspace, trained.run_id)
    report.steps.append({"step": f"provenance of {trained.candidate} verifies", "result": "verified", **verified})
    say(f"  signed provenance (in-toto SLSA v1, DSSE) verifies for {verified['files']} files of {trained.candidate}")
    candidate_ref = trained.candidate

    say(f"  drift evaluation of {candidate_ref} against its base on the same items, greedy, paired")
    evaluated = evaluate(workspace, candidate_ref, [suite], "alice", passphrase, progress=progress, engine=engine)
    report.steps.append({"step": f"alice evaluates {candidate_ref} against its base", "result": "evaluated",
                         "candidate": candidate_ref, "evaluation": evaluated.id, "metrics": {
                             m["metric"]: {k: m[k] for k in ("n", "base_mean", "candidate_mean", "difference",
                                                             "interval", "margin", "power", "required", "verdict",
                                                             "noise_floor")}
                             for m in evaluated.predicate["metrics"]}})
    say(f"  evaluation {evaluated.id} (signed, audit entry {evaluated.seq}) against "
        f"{evaluated.predicate['base']['label']}:")
    say(f"      {'metric':<22} {'n':>5} {'base':>7} {'cand.':>7} {'diff':>7} {'margin':>7} {'power':>6}  verdict")
    for m in evaluated.predicate["metrics"]:
        say(f"      {m['metric']:<22} {m['n']:>5} {m['base_mean']:>7.3f} {m['candidate_mean']:>7.3f} "
            f"{m['difference']:>+7.3f} {-m['margin']:>7.3f} {m['power']:>6.2f}  {m['verdict']}")

    def promote(target: ReleaseStage) -> Callable[[], GateOutcome]:
        return lambda: actions.promote(workspace, candidate_ref, target, "alice", passphrase, engine=engine)

    say("  promotion gate: it reads the signed evaluation")
    if first:
        step("alice asks to promote straight to production", promote(ReleaseStage.PRODUCTION), expect_denied=True)
    # Whether the candidate may go on is the gate's answer to the numbers above, not the demo's.
    if step(f"alice asks to promote {candidate_ref} to staging", promote(ReleaseStage.STAGING), measured=True):
        step("dave (ML lead) approves staging", act(candidate_ref, "dave", GateAction.APPROVE))
        step(f"alice asks to promote {candidate_ref} to production", promote(ReleaseStage.PRODUCTION))
        step("erin (release manager) approves", act(candidate_ref, "erin", GateAction.APPROVE))
        step("erin approves a second time", act(candidate_ref, "erin", GateAction.APPROVE), expect_denied=True)
        step("frank (release manager) approves: quorum of two met", act(candidate_ref, "frank", GateAction.APPROVE))
    else:
        verdicts = {m["metric"]: m["verdict"] for m in evaluated.predicate["metrics"]}
        say(f"  {candidate_ref} stays where it is: the drift gate read the evaluation above ("
            + ", ".join(f"{name} {verdict}" for name, verdict in verdicts.items()) + ")")


def run_demo(directory: Path, passphrase: str, say: Callable[[str], None], preset: str = "small",
             progress: Progress | None = None) -> DemoReport:
    """The demo in `directory`; `progress(phase, done, total, note)` shows the long work (the family's build,
    training, evaluation), else the build's stages are said as they finish."""
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
    say("registered: dataset/claims@1, dataset/support-tickets@1, reward/warranty-reward@1")
    settings = reference_preset(preset)
    say(f"reference model family: three staged checkpoints of a small Llama trained here ({settings.name} preset)")
    family_dir = directory / "reference"
    build_reference(family_dir, settings, seed=1, progress=progress or _building(say))
    seq_len, batch_size = settings.seq_len, 16
    registered = register_reference(workspace, family_dir, owner="alice")
    family = {"post": registered.checkpoints[-1]}
    say(f"registered: {' → '.join(registered.checkpoints)} and {len(registered.datasets)} corpora")
    checker = unlock(workspace, "alice", passphrase)
    for name in ("claims", "support-tickets", "ref-domain-train", "ref-general-train", "ref-sft-chat",
                 *EVAL_DATASETS):
        checked = check_dataset(workspace, f"dataset/{name}", signer=checker)
        pii = checked.summary["pii"]
        say(f"data-quality check of {checked.dataset}: {checked.summary['records']} records, PII in "
            f"{pii['records']} ({', '.join(pii['sample_locations']) or 'none'}), result {checked.result_digest[:19]}…")

    def step(title: str, call: Callable[[], GateOutcome], expect_denied: bool = False, measured: bool = False) -> bool:
        """One gate action; whether it was allowed. A denial is expected where the demo shows one, and accepted
        where it depends on what was `measured`."""
        try:
            outcome = call()
        except PolicyDenied as denied:
            if not (expect_denied or measured):
                raise
            report.steps.append({"step": title, "result": "deny", "reasons": denied.reasons})
            say(f"  {title}: DENIED")
            for reason in denied.reasons:
                say(f"      {reason}")
            return False
        if expect_denied:
            raise ForgegovError(f"demo expected a denial at: {title}")
        report.steps.append({"step": title, **outcome.to_dict()})
        say(f"  {title}: {outcome.result.value} → state {outcome.state}"
            + (f", release {outcome.release}" if outcome.release else ""))
        for item in outcome.missing:
            say(f"      still required: {item}")
        return True

    with actions.policy_engine(workspace) as engine:
        def act(subject: str, actor: str, action: GateAction) -> Callable[[], GateOutcome]:
            if action is GateAction.REQUEST:
                return lambda: actions.request(workspace, subject, actor, passphrase, engine=engine)
            return lambda: actions.answer(workspace, subject, actor, passphrase, action, engine=engine)

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
        step("alice requests review of reward/warranty-reward@1 (its golden examples re-run in the sandbox)",
             act("warranty-reward", "alice", GateAction.REQUEST))
        step("carol (reward reviewer) approves", act("warranty-reward", "carol", GateAction.APPROVE))
        say("base gate: the reference family's post-training checkpoint as the starting point")
        step("alice asks to customise checkpoint/ref-post-training@1",
             lambda: actions.request(workspace, family["post"], "alice", passphrase, gate=Gate.BASE, engine=engine))
        step("dave (ML lead) approves it for customisation",
             lambda: actions.answer(workspace, family["post"], "dave", passphrase, GateAction.APPROVE,
                                    gate=Gate.BASE, engine=engine))
        say("dataset gate for the run's sources")
        for name in ("ref-domain-train", "ref-general-train", "ref-sft-chat"):
            step(f"alice requests approval of dataset/{name}@1", act(name, "alice", GateAction.REQUEST))
            step("bob (data steward) approves", act(name, "bob", GateAction.APPROVE))
        step("grace (privacy officer) approves the general corpus with a justification",
             lambda: actions.answer(workspace, "ref-general-train", "grace", passphrase, GateAction.APPROVE,
                                    comment="maintainer addresses published in Python's own documentation",
                                    engine=engine))
        say("run-start gate")
        greedy = Candidate("claims-cpt-greedy", "cpt", (0.9, 0.1, 0.0), 2e-3, 10, "no replay")
        try:
            start_run(workspace, _write_recipe(directory / "recipes" / "greedy.toml", greedy, seq_len, batch_size),
                      "alice", lambda: passphrase, engine=engine)
        except PolicyDenied as denied:
            report.steps.append({"step": "alice starts a run with 90 % proprietary data", "result": "deny",
                                 "reasons": denied.reasons})
            say("  alice starts a run with 90 % proprietary data and no replay: DENIED")
            for reason in denied.reasons:
                say(f"      {reason}")
        else:
            raise ForgegovError("demo expected the greedy mixture to be denied")

        say("dataset gate for the drift suite's held-out splits")
        for name in EVAL_DATASETS:
            step(f"alice requests approval of dataset/{name}@1", act(name, "alice", GateAction.REQUEST))
            step("bob (data steward) approves", act(name, "bob", GateAction.APPROVE))
        step("grace (privacy officer) approves the held-out general text with a justification",
             lambda: actions.answer(workspace, "ref-general-heldout", "grace", passphrase, GateAction.APPROVE,
                                    comment="maintainer addresses published in Python's own documentation",
                                    engine=engine))
        say("suite gate: the drift suite, its datasets resolved to exact digests, approved like the data it reads")
        suite = label(register_asset(workspace, AssetKind.SUITE, SUITE, "reference-drift", "alice"))
        step(f"alice requests approval of {suite}", act(suite, "alice", GateAction.REQUEST))
        step("dave (ML lead) approves the suite", act(suite, "dave", GateAction.APPROVE))

        for number, candidate in enumerate(CANDIDATES):
            say(f"candidate {number + 1}: {candidate.why}")
            _customise(workspace, engine, candidate, directory, seq_len, batch_size, passphrase, report, say, step,
                       act, suite, first=number == 0, progress=progress)

        say("revocation")
        actions.revoke(workspace, "mallory", "laptop lost", "dave", passphrase, engine=engine)
        try:
            actions.request(workspace, "dataset/claims", "mallory", passphrase, engine=engine)
        except ForgegovError as refused:
            report.steps.append({"step": "mallory (revoked) tries to act", "result": "refused",
                                 "reasons": [refused.message]})
            say(f"  mallory (revoked) tries to act: REFUSED ({refused.message})")

        say("policy change, through the policy gate the policy in force decides")
        proposal = _stricter_policy(workspace, directory / "policy-proposal")

        def propose() -> GateOutcome:
            asset = register_asset(workspace, AssetKind.POLICY, proposal, "house-rules", "alice")
            return actions.request(workspace, label(asset), "alice", passphrase, engine=engine)

        step("alice (no policy-owner role) proposes a policy", propose, expect_denied=True)
        step("dave (policy owner) requests it: every dataset also needs a privacy officer",
             act("policy/house-rules", "dave", GateAction.REQUEST))
        step("dave approves his own proposal", act("policy/house-rules", "dave", GateAction.APPROVE),
             expect_denied=True)
        step("grace (policy owner) approves: the new policy is in force",
             act("policy/house-rules", "grace", GateAction.APPROVE))

    from forgegov.governance.replay import replay_decisions

    replayed = replay_decisions(workspace)
    report.steps.append({"step": "every decision replayed with the pinned OPA", "result": "agree"
                         if replayed.agreed == replayed.replayed and not replayed.differing else "differ",
                         **replayed.to_dict()})
    say(f"replay: {replayed.replayed} recorded decisions re-evaluated with the pinned OPA under the policy recorded "
        f"with each; {replayed.agreed} agree, {len(replayed.differing)} differ ({replayed.seconds:.1f} s)")

    from forgegov.audit.operations import verify_workspace
    from forgegov.audit.tree_heads import hand_to_witness, sign_tree_head

    signed = sign_tree_head(workspace)
    witness = directory / "witness"
    hand_to_witness(workspace, signed, witness, cosigner=unlock(workspace, WITNESS, passphrase))
    verified = verify_workspace(workspace, [witness])
    report.audit_entries = verified.entries
    say(f"audit log: {verified.entries} entries, root {verified.root[:16]}…, checkpoint at size "
        f"{signed.head.size} signed by the log and cosigned by the witness; every leaf, node, checkpoint "
        f"and signed statement verified")
    return report
