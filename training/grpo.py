"""Reinforcement fine-tuning with TRL's GRPOTrainer against approved reward functions.

The same bookkeeping as CPT and SFT surrounds it (`governance/runs/lifecycle.py`: the plan the run gate approved, the
claim, the candidate's registration, signed provenance). What this backend adds is the reward: each function is
opened through the reward door (re-hashed against the digest the run gate saw approved) and called in the sandbox,
never in this process. Every call is written to `rollouts.jsonl` (prompt, its digest, completion, dataset columns,
the scores or why there are none), whose digest the provenance signs, so a reviewer can re-score the run with the
approved code (`rescore`). A failing call stops the run or scores zero, as the recipe says and the policy allowed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, ForgegovError, StoreTampered
from forgegov.governance.environments import GoldenEpisode, replay_episode
from forgegov.governance.loading.checkpoints import load_checkpoint
from forgegov.governance.loading.datasets import load_dataset
from forgegov.governance.loading.environments import LoadedEnvironment, open_environment
from forgegov.governance.loading.rewards import open_reward
from forgegov.governance.reward_endpoints import EndpointSpec, RewardEndpoint
from forgegov.governance.runs.lifecycle import RunContext, Trained
from forgegov.governance.runs.ranks import Ranks
from forgegov.governance.runs.recipe import DeviceKind, Recipe, RewardFailure, RLSpec
from forgegov.governance.sandbox.isolation import SandboxLimits
from forgegov.governance.sandbox.pool import CallResult
from forgegov.training.backend import (
    METRICS_FILE,
    committer,
    lora_config,
    parallelism_of,
    preflight,
    reporters,
    restored_tokens,
    save_candidate,
    schedule,
    step_of,
    tokens_file,
)
from forgegov.training.environments import environment_class, episode_of, tool_parsing
from forgegov.training.mixture import SourceTokens

ROLLOUTS_FILE = "rollouts.jsonl"
# The rollouts so far, copied into each trainer checkpoint, so that the log commits to them with its files and a
# resume continues from exactly those (not from whatever the run folder holds by then).
ROLLOUTS_IN_CHECKPOINT = "forgegov-rollouts.jsonl"
SOURCE_COLUMN = "forgegov_source"  # which planned source a prompt came from, for realised-token accounting
_NOT_FOR_REWARDS = frozenset({"completion_ids", "trainer_state", SOURCE_COLUMN})


class RewardCallFailed(ForgegovError):
    """A reward call failed and the recipe says to stop (or the failures passed the limit it allows)."""


class ScoresDiffer(ForgegovError):
    """Recorded calls scored differently when re-run with the approved code (non-deterministic code, or another
    version of a dependency): the run's rewards cannot be reproduced."""


def grpo_preflight(recipe: Recipe, ranks: Ranks) -> None:
    if ranks.several:
        # Each process would write its own rollouts and count its own failures; one record per run comes first.
        raise BadInput(f"recipe {recipe.name} is a grpo run, which trains in one process for now",
                       hint="launch it without torchrun/accelerate (devices.count = 1)")
    preflight(recipe, ranks)


def _prompt_digest(prompt: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


class Scorer(Protocol):
    label: str
    digest: str

    def score(self, kwargs: dict[str, list[Any]]) -> CallResult: ...


def _count_tokens(tokens: SourceTokens | None, kwargs: dict[str, Any]) -> None:
    if tokens is not None and "completion_ids" in kwargs and SOURCE_COLUMN in kwargs:
        # The tokens this step trains on are the completions: counted by the source of their prompt.
        for source, ids in zip(kwargs[SOURCE_COLUMN], kwargs["completion_ids"], strict=True):
            tokens.counts[int(source)] += len(ids)


def _failed(label: str, step: int, result: CallResult, rl: RLSpec, failures: list[int]) -> None:
    """Counts a failed call (or episode) and stops the run when the recipe allows no more."""
    failures[0] += 1
    allowed = rl.max_reward_failures if rl.on_reward_failure is RewardFailure.ZERO else 0
    if failures[0] > allowed:
        raise RewardCallFailed(f"{label} failed at step {step} ({result.outcome.value}: "
                               f"{result.detail.splitlines()[0] if result.detail else 'no detail'}); "
                               f"{failures[0]} failed call(s), {allowed} allowed",
                               hint="fix the reward or environment and have the new version approved, or allow "
                                    'failures with [rl] on_reward_failure = "zero" and max_reward_failures')


class RecordedReward:
    """One reward as TRL calls it (prompts, completions, columns -> scores), answered by approved code in the sandbox
    or by an allowed endpoint; every call is written to the rollouts file, and a failure handled as the recipe
    says."""

    def __init__(self, scorer: Scorer, rl: RLSpec, rollouts: Path, tokens: SourceTokens | None,
                 failures: list[int], endpoint: bool = False) -> None:
        self.scorer, self.rl, self.rollouts, self.tokens, self.failures = scorer, rl, rollouts, tokens, failures
        self.endpoint = endpoint
        # TRL names a reward's metrics after the function.
        self.__name__ = "".join(c if c.isalnum() else "_" for c in scorer.label.removeprefix("reward/"))[:64]

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", 0))
        _count_tokens(self.tokens, kwargs)
        columns = {name: list(values) for name, values in kwargs.items()
                   if name not in _NOT_FOR_REWARDS and isinstance(values, list) and len(values) == len(prompts)}
        result = self.scorer.score({"prompts": list(prompts), "completions": list(completions), **columns})
        with self.rollouts.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({
                "step": step, "reward": self.scorer.label, "digest": self.scorer.digest, "endpoint": self.endpoint,
                "outcome": result.outcome.value, "detail": result.detail, "prompts": list(prompts),
                "prompt_digests": [_prompt_digest(p) for p in prompts], "completions": list(completions),
                "columns": columns, "scores": result.scores}, sort_keys=True) + "\n")
        if result.ok and result.scores is not None:
            return result.scores
        _failed(self.scorer.label, step, result, self.rl, self.failures)
        return [0.0] * len(prompts)


class RecordedEnvironment:
    """The environment's reward as TRL calls it, once per batch, with the environment instances of its rollouts:
    each episode's reward asked of the sandbox, and every episode (reset arguments, observation, each call with its
    result, the reward) written to the rollouts file. An episode that failed in the sandbox scores as the recipe
    says, like a failed reward call."""

    def __init__(self, loaded: LoadedEnvironment, rl: RLSpec, rollouts: Path, tokens: SourceTokens | None,
                 failures: list[int]) -> None:
        self.loaded, self.rl, self.rollouts, self.tokens, self.failures = loaded, rl, rollouts, tokens, failures
        self.__name__ = "".join(c if c.isalnum() else "_" for c in loaded.label.removeprefix("environment/"))[:64]

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        step = int(getattr(kwargs.get("trainer_state"), "global_step", 0))
        _count_tokens(self.tokens, kwargs)
        scores: list[float | None] = []
        episodes: list[dict[str, Any]] = []
        failed: list[CallResult] = []
        for instance in kwargs.get("environments") or []:
            episode = episode_of(instance)
            if episode is None:
                raise BadInput("TRL handed the environment's reward an instance that never started an episode")
            reward = episode.finish()
            if episode.failure is not None:
                failed.append(episode.failure)
            scores.append(0.0 if reward is None else reward)
            episodes.append(episode.to_document(reward))
        if len(scores) != len(prompts):
            raise BadInput(f"TRL handed the environment's reward {len(scores)} episodes for {len(prompts)} prompts")
        # Written before any failure is counted, so that the batch that stops a run is on record as well.
        with self.rollouts.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({
                "step": step, "reward": self.loaded.label, "digest": self.loaded.digest, "endpoint": False,
                "environment": True, "outcome": failed[0].outcome.value if failed else "ok",
                "detail": failed[0].detail if failed else "", "prompts": list(prompts),
                "prompt_digests": [_prompt_digest(p) for p in prompts], "completions": list(completions),
                "columns": {}, "episodes": episodes, "scores": scores}, sort_keys=True) + "\n")
        for failure in failed:
            _failed(self.loaded.label, step, failure, self.rl, self.failures)
        return scores


def _prompts(workspace: Workspace, context: RunContext, purpose: str) -> Any:
    """The approved prompt datasets as one, each row tagged with its source, mixed by the planned shares."""
    import datasets

    loaded = []
    for index, source in enumerate(context.plan.sources):
        data = load_dataset(workspace, source.digest, actor=context.actor, purpose=f"{purpose}: prompts")
        if "prompt" not in data.column_names:
            raise BadInput(f"{source.label} has no prompt column; a grpo run reads prompts from rl-prompts datasets")
        loaded.append(data.add_column(SOURCE_COLUMN, [index] * data.num_rows))
    if len({tuple(sorted(d.column_names)) for d in loaded}) > 1:
        raise BadInput("the prompt datasets of a grpo run must have the same columns: the reward reads them by name")
    if len(loaded) == 1:
        return loaded[0]
    return datasets.interleave_datasets(loaded, probabilities=[s.share for s in context.plan.sources],
                                        seed=context.recipe.seed,
                                        stopping_strategy=context.recipe.mixture.stopping.value)


def train(context: RunContext, callbacks: Sequence[Any] = ()) -> Trained:
    import datasets
    import transformers
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from forgegov.training.trainer import CommitCheckpoints, SaveSourceTokens, StepMetrics, no_activation_checkpointing

    workspace, plan, recipe, ranks = context.workspace, context.plan, context.recipe, context.ranks
    output, progress, rl = context.output, context.progress, recipe.rl
    if rl is None or (not plan.rewards and plan.environment is None):
        raise BadInput(f"recipe {recipe.name} names no reward function or environment; a grpo run needs an "
                       "approved one")
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    purpose = f"run {context.run_id} ({plan.run_label})"

    # 1. Inputs, by the digests the gate approved: the base, the prompts, and the reward code, each re-verified.
    loads = len(plan.sources) + len(plan.rewards) + (plan.environment is not None) + 1
    progress("load", 0, loads, plan.base_label)
    model, tokenizer = load_checkpoint(workspace, plan.base_digest, actor=context.actor, purpose=f"{purpose}: base")
    if tokenizer is None:
        raise BadInput(f"{plan.base_label} holds no tokenizer; a base checkpoint must carry the tokenizer it was "
                       "trained with", hint="save the tokenizer into the checkpoint folder and register it again")
    prompts = _prompts(workspace, context, purpose)
    trainer_dir = output / "trainer"
    resumable = context.checkpoints.resumable(trainer_dir)
    last = str(resumable.folder) if resumable is not None else None
    tokens = restored_tokens(resumable, len(plan.sources), ranks)
    rollouts = output / ROLLOUTS_FILE
    if resumable is not None:
        shutil.copyfile(resumable.folder / ROLLOUTS_IN_CHECKPOINT, rollouts)
    else:
        rollouts.unlink(missing_ok=True)  # an attempt that stopped before its first checkpoint: its calls are redone
    failures = [0]
    with ExitStack() as stack:
        functions: list[Any] = []
        for index, planned in enumerate(plan.rewards):
            scorer: Scorer
            if planned.endpoint is not None:
                spec = EndpointSpec(planned.endpoint["url"], planned.endpoint["identity"],
                                    planned.endpoint["version"], timeout_s=rl.reward_timeout_s)
                if spec.digest != planned.digest:
                    raise StoreTampered(f"the plan's endpoint {spec.url} does not hash to the digest it records")
                scorer = stack.enter_context(RewardEndpoint(spec))
            else:
                scorer = stack.enter_context(open_reward(workspace, planned.digest, actor=context.actor,
                                                         purpose=f"{purpose}: reward",
                                                         limits=SandboxLimits(timeout_s=rl.reward_timeout_s)))
            # Only the first function counts the tokens; they are the same completions for every function.
            functions.append(RecordedReward(scorer, rl, rollouts, tokens if index == 0 else None, failures,
                                            endpoint=planned.endpoint is not None))
        factory, max_turns = None, None
        if plan.environment is not None:
            # The environment is stepped in the sandbox; TRL gets a stand-in class whose methods are its tools.
            loaded = stack.enter_context(open_environment(workspace, plan.environment.digest, actor=context.actor,
                                                          purpose=f"{purpose}: environment",
                                                          limits=SandboxLimits(timeout_s=rl.reward_timeout_s)))
            tool_parsing(tokenizer, plan.base_label)
            factory = environment_class(loaded, frozenset({SOURCE_COLUMN}))
            max_turns = loaded.declaration.max_turns
            functions.append(RecordedEnvironment(loaded, rl, rollouts, tokens if not functions else None, failures))
        progress("load", loads, loads, "rewards in the sandbox")

        # 2. TRL's GRPO: groups of completions per prompt, scored by the sandboxed rewards, the policy gradient.
        set_seed(recipe.seed)
        train_spec = recipe.train
        cuda = recipe.devices.kind is DeviceKind.CUDA
        config = GRPOConfig(
            output_dir=str(trainer_dir), max_steps=train_spec.max_steps,
            per_device_train_batch_size=train_spec.batch_size, gradient_accumulation_steps=1,
            num_generations=rl.num_generations, max_completion_length=rl.max_completion_length,
            temperature=rl.temperature, beta=rl.beta,
            reward_weights=[r.weight for r in plan.rewards] + ([plan.environment.weight] if plan.environment else []),
            max_tool_calling_iterations=max_turns,
            learning_rate=train_spec.learning_rate, warmup_steps=train_spec.warmup_steps, **schedule(recipe),
            optim="adamw_torch", weight_decay=train_spec.weight_decay, max_grad_norm=train_spec.grad_clip,
            bf16=cuda, fp16=False, use_cpu=not cuda, seed=recipe.seed, data_seed=recipe.seed,
            report_to=reporters(), run_name=context.run_id, logging_steps=1,
            save_strategy="steps", save_steps=max(1, train_spec.max_steps // 5), save_total_limit=2,
            disable_tqdm=True, dataloader_num_workers=0, **no_activation_checkpointing(GRPOConfig),
        )
        metrics = StepMetrics(output / METRICS_FILE, tokens, [s.label for s in plan.sources], progress)
        trainer = GRPOTrainer(model=model, reward_funcs=functions, args=config, train_dataset=prompts,
                              processing_class=tokenizer, peft_config=lora_config(recipe),
                              environment_factory=factory,
                              callbacks=[metrics, SaveSourceTokens(tokens, tokens_file(ranks)),
                                         _save_rollouts(rollouts),
                                         CommitCheckpoints(committer(context), ranks.wait, ranks.main), *callbacks])
        trainer.remove_callback(PrinterCallback)
        progress("train", 0, train_spec.max_steps, f"resuming from {Path(last).name}" if last else "starting")
        result = trainer.train(resume_from_checkpoint=last)
    staging = save_candidate(trainer, tokenizer, recipe, ranks, output)
    return Trained(staging=staging, tokens=ranks.total(tokens.counts), steps=trainer.state.global_step,
                   resumed_from_step=step_of(last),
                   final_loss=metrics.last_loss if metrics.last_loss is not None else float(result.training_loss),
                   parallelism=parallelism_of(trainer, ranks), rollouts=rollouts_summary(rollouts))


def _save_rollouts(rollouts: Path) -> Any:
    # Made here, where transformers is imported: this module loads without it.
    from transformers import TrainerCallback

    class SaveRollouts(TrainerCallback):
        """Copies the rollouts so far into each checkpoint before it is hashed and committed."""

        def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            target = folder / ROLLOUTS_IN_CHECKPOINT
            if rollouts.exists():
                shutil.copyfile(rollouts, target)
            else:
                target.write_bytes(b"")

    return SaveRollouts()


def rollouts_summary(path: Path) -> dict[str, Any]:
    """What the record and the provenance say about the rollouts file: its digest, and per reward the mean score of
    its first and last calls (the training signal's movement, beside the held-out evaluation that decides)."""
    digest = hashlib.sha256()
    calls = failures = 0
    means: dict[str, list[float]] = {}
    with path.open("rb") as handle:
        for line in handle:
            digest.update(line)
            call = json.loads(line)
            calls += 1
            scores = [s for s in call["scores"] or [] if s is not None]
            if call["outcome"] != "ok":
                failures += 1
            elif scores:
                means.setdefault(call["reward"], []).append(math.fsum(scores) / len(scores))
    return {"file": ROLLOUTS_FILE, "sha256": "sha256:" + digest.hexdigest(), "calls": calls, "failures": failures,
            "mean_reward": {label: {"first_call": round(values[0], 6), "last_call": round(values[-1], 6)}
                            for label, values in sorted(means.items())}}


def rescore_run(workspace: Workspace, ref: str, *, actor: str) -> dict[str, Any]:
    """`forgegov run rescore`: the run's provenance verified (signatures, record, candidate files), its rollouts file
    held to the digest the provenance signed, then every recorded call re-scored with the approved code."""
    from forgegov.foundation.canonical import digest_of
    from forgegov.foundation.errors import DigestMismatch, SignatureInvalid
    from forgegov.governance.runs.provenance import SignedProvenance
    from forgegov.governance.runs.records import run_record, verify_run

    verify_run(workspace, ref)
    found = run_record(workspace, ref)
    output = Path(found["output_dir"])
    envelope = SignedProvenance.read(output / "provenance").statement_envelope
    if digest_of(envelope) != found["provenance_digest"]:
        raise SignatureInvalid(f"the provenance of run {found['run_id']} changed while it was being read")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    signed = [b for b in statement["predicate"]["runDetails"]["byproducts"] if b.get("name") == ROLLOUTS_FILE]
    if not signed:
        raise BadInput(f"run {found['run']} recorded no reward calls: only a grpo run can be re-scored")
    path = output / ROLLOUTS_FILE
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != signed[0]["digest"]["sha256"]:
        raise DigestMismatch(f"{path} is not the rollouts file the run's provenance signed", file=ROLLOUTS_FILE,
                             expected=signed[0]["digest"]["sha256"], actual=actual)
    signed_rewards = {"sha256:" + d["digest"]["sha256"]: d.get("annotations", {}).get("role")
                      for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
                      if d.get("annotations", {}).get("role") in ("reward", "reward-endpoint", "environment")}
    result = {"run": found["run"], "run_id": found["run_id"],
              **rescore(workspace, path, actor=actor, purpose=f"re-scoring run {found['run_id']}",
                        signed=signed_rewards)}
    if result["differing"]:
        raise ScoresDiffer(f"{len(result['differing'])} of {result['calls']} recorded reward calls of {found['run']} "
                           "scored differently with the approved code",
                           hint="the reward is not deterministic, or its dependencies changed version")
    return result


def _calls_in(completion: Any) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls a conversational completion made, as TRL parsed them (None arguments left out, as the stand-in
    leaves them out)."""
    if not isinstance(completion, list):
        return []
    found = []
    for message in completion:
        for call in (message.get("tool_calls") or []) if isinstance(message, dict) else []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            arguments = function.get("arguments") if isinstance(function.get("arguments"), dict) else {}
            found.append((function.get("name"), {k: v for k, v in arguments.items() if v is not None}))
    return found


def _subsequence(wanted: list[tuple[str, dict[str, Any]]], made: list[tuple[str, dict[str, Any]]]) -> bool:
    position = iter(made)
    return all(any(call == other for other in position) for call in wanted)


def _episodes_differing(loaded: LoadedEnvironment, line: dict[str, Any]) -> list[tuple[int, dict[str, Any] | None]]:
    """Each recorded episode of one rollouts line checked against what the line claims and replayed in the
    approved environment: its score is its reward (zero once it failed), its calls are calls the completion made,
    and every call (and the reward, unless it failed) comes out as recorded."""
    episodes, scores, prompts = line.get("episodes"), line.get("scores"), line.get("prompts")
    if not isinstance(episodes, list) or not isinstance(scores, list) or not isinstance(prompts, list) \
            or not len(episodes) == len(scores) == len(prompts) or len(line.get("completions") or []) != len(prompts):
        return [(0, {"at": "record", "outcome": "differs",
                     "detail": "the line does not hold one episode, one score and one completion per prompt"})]
    tools = {tool.name for tool in loaded.tools}
    checked: list[tuple[int, dict[str, Any] | None]] = []
    for number, (episode, score, completion) in enumerate(zip(episodes, scores, line["completions"], strict=True), 1):
        if not isinstance(episode, dict) or not isinstance(episode.get("calls"), list) \
                or any(not isinstance(c, dict) for c in episode["calls"]):
            checked.append((number, {"at": "record", "outcome": "differs", "detail": "not an episode"}))
            continue
        failed = episode.get("failure") is not None
        reward = episode.get("reward")
        calls = [(c.get("tool"), c.get("arguments")) for c in episode["calls"]]
        expected_score = 0.0 if failed else reward
        if not failed and (isinstance(reward, bool) or not isinstance(reward, int | float)):
            checked.append((number, {"at": "record", "outcome": "differs", "detail": "no reward recorded"}))
        elif score != expected_score:
            checked.append((number, {"at": "score", "outcome": "differs", "expected": expected_score, "got": score}))
        elif any(tool not in tools for tool, _ in calls):
            checked.append((number, {"at": "calls", "outcome": "differs",
                                     "detail": "a recorded call names a tool the environment does not offer"}))
        elif not _subsequence(calls, _calls_in(completion)):
            checked.append((number, {"at": "completion", "outcome": "differs",
                                     "detail": "the recorded calls are not calls the completion made"}))
        else:
            replayed = GoldenEpisode(episode.get("reset") or {}, episode.get("observation"), True,
                                     tuple(episode["calls"]), None if failed else float(reward))
            checked.append((number, replay_episode(loaded.sandbox, number - 1, replayed, tolerance=0.0)))
    return checked


def rescore(workspace: Workspace, rollouts: Path, *, actor: str, purpose: str,
            signed: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Every recorded call scored again with the reward code it names, loaded through the door (so only the
    registered bytes run), and every recorded episode replayed in the environment it names: how many reproduced
    their recorded scores (and tool results) exactly, and which did not. With `signed` (digest -> "reward",
    "reward-endpoint" or "environment", from the run's provenance), a line naming anything else, or calling code an
    endpoint (to be skipped), is tampering."""
    from forgegov.foundation.errors import DigestMismatch

    calls: dict[str, list[dict[str, Any]]] = {}
    episodes: dict[str, list[dict[str, Any]]] = {}
    skipped = 0
    with rollouts.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            call = json.loads(line)
            if signed is not None:
                role = "reward-endpoint" if call.get("endpoint") else "environment" if call.get("environment") \
                    else "reward"
                if signed.get(call.get("digest")) != role:
                    raise DigestMismatch(f"line {number} of {rollouts.name} names a {role} {call.get('digest')} the "
                                         "run's provenance does not list as one", file=rollouts.name)
            if call.get("endpoint"):
                skipped += 1  # an external service: not code forgegov holds, so not re-run here
            elif call.get("environment"):
                episodes.setdefault(call["digest"], []).append(call)
            elif call["outcome"] == "ok":
                calls.setdefault(call["digest"], []).append(call)
    differing: list[dict[str, Any]] = []
    checked = 0
    for digest, recorded in calls.items():
        with open_reward(workspace, digest, actor=actor, purpose=purpose) as loaded:
            for call in recorded:
                again = loaded.sandbox.score({"prompts": call["prompts"], "completions": call["completions"],
                                              **call["columns"]})
                checked += 1
                if again.scores != call["scores"]:
                    differing.append({"reward": call["reward"], "step": call["step"], "recorded": call["scores"],
                                      "now": again.scores, "outcome": again.outcome.value})
    for digest, lines in episodes.items():
        with open_environment(workspace, digest, actor=actor, purpose=purpose) as loaded:
            for line in lines:
                for number, problem in _episodes_differing(loaded, line):
                    checked += 1
                    if problem is not None:
                        differing.append({"environment": line["reward"], "step": line["step"], **problem,
                                          "episode": number})
    return {"calls": checked, "reproduced": checked - len(differing), "differing": differing,
            "endpoint_calls_not_rescored": skipped}
