"""States, stages and kinds: the vocabulary of the registry and the gates."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class AssetKind(StrEnum):
    DATASET = "dataset"
    REWARD = "reward"
    CHECKPOINT = "checkpoint"
    RUN = "run"
    POLICY = "policy"  # a policy bundle, with the OPA build pinned to decide it
    SUITE = "suite"  # an evaluation suite, its dataset references resolved to digests at registration
    ENVIRONMENT = "environment"  # a multi-turn simulator a grpo run's model acts in, run in the sandbox


class DatasetKind(StrEnum):
    PRETRAINING_TEXT = "pretraining-text"
    SFT_CHAT = "sft-chat"
    PREFERENCE = "preference"
    RL_PROMPTS = "rl-prompts"
    EVAL = "eval"


class Classification(StrEnum):
    PROPRIETARY = "proprietary"
    GENERAL_CURATED = "general-curated"
    PUBLIC = "public"


class AssetState(StrEnum):
    REGISTERED = "registered"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # was approved; a later decision took the approval back


class CheckpointStage(StrEnum):
    """Where in training a checkpoint comes from; fixed at registration."""

    PRE_TRAINING = "pre-training"
    MID_TRAINING = "mid-training"
    POST_TRAINING = "post-training"
    CANDIDATE = "candidate"


class ReleaseStage(StrEnum):
    """Where a checkpoint is served from; moved only by the promotion gate."""

    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"


class Gate(StrEnum):
    DATASET = "dataset"
    REWARD = "reward"
    RUN = "run"
    PROMOTION = "promotion"
    BASE = "base"  # approves a checkpoint as the starting point of training runs
    POLICY = "policy"  # adopts a policy bundle: decided by the policy in force
    SUITE = "suite"  # approves an evaluation suite to decide promotions
    ENVIRONMENT = "environment"  # approves a multi-turn environment for grpo runs


class GateAction(StrEnum):
    REQUEST = "request"
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"  # one signed statement, decided at once: takes an approval back


class RequestStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class DecisionResult(StrEnum):
    ALLOW = "allow"
    PENDING = "pending"
    DENY = "deny"


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class RunStatus(StrEnum):
    """A training run's life after its gate approved it: running (or crashed while running), then one of the ends."""

    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"


class AuditAction(StrEnum):
    """Every action the audit log records. A leaf's `action` is one of these; a new kind of entry is a new member."""

    IDENTITY_CREATE = "identity.create"
    IDENTITY_REVOKE = "identity.revoke"
    IDENTITY_ROTATE = "identity.rotate"
    IDENTITY_ENROL = "identity.enrol"
    POLICY_ACTIVATE = "policy.activate"
    AUDIT_REDACT = "audit.redact"
    ADMIN_DENIED = "admin.denied"
    ADMIN_PENDING = "admin.pending"
    JOB_START = "job.start"
    JOB_CANCEL = "job.cancel"
    ASSET_FETCH = "asset.fetch"
    DATASET_REGISTER = "dataset.register"
    REWARD_REGISTER = "reward.register"
    CHECKPOINT_REGISTER = "checkpoint.register"
    RUN_REGISTER = "run.register"
    POLICY_REGISTER = "policy.register"
    SUITE_REGISTER = "suite.register"
    ENVIRONMENT_REGISTER = "environment.register"
    DATASET_CHECK = "dataset.check"
    DATASET_LOAD = "dataset.load"
    DATASET_LOAD_REFUSED = "dataset.load.refused"
    CHECKPOINT_LOAD = "checkpoint.load"
    CHECKPOINT_LOAD_REFUSED = "checkpoint.load.refused"
    REWARD_LOAD = "reward.load"
    REWARD_LOAD_REFUSED = "reward.load.refused"
    ENVIRONMENT_LOAD = "environment.load"
    ENVIRONMENT_LOAD_REFUSED = "environment.load.refused"
    GATE_REFUSED = "gate.refused"
    GATE_DATASET_REQUEST = "gate.dataset.request"
    GATE_DATASET_APPROVE = "gate.dataset.approve"
    GATE_DATASET_REJECT = "gate.dataset.reject"
    GATE_DATASET_WITHDRAW = "gate.dataset.withdraw"
    GATE_REWARD_REQUEST = "gate.reward.request"
    GATE_REWARD_APPROVE = "gate.reward.approve"
    GATE_REWARD_REJECT = "gate.reward.reject"
    GATE_REWARD_WITHDRAW = "gate.reward.withdraw"
    GATE_RUN_REQUEST = "gate.run.request"
    GATE_RUN_APPROVE = "gate.run.approve"
    GATE_RUN_REJECT = "gate.run.reject"
    GATE_RUN_WITHDRAW = "gate.run.withdraw"
    GATE_PROMOTION_REQUEST = "gate.promotion.request"
    GATE_PROMOTION_APPROVE = "gate.promotion.approve"
    GATE_PROMOTION_REJECT = "gate.promotion.reject"
    GATE_PROMOTION_WITHDRAW = "gate.promotion.withdraw"
    GATE_BASE_REQUEST = "gate.base.request"
    GATE_BASE_APPROVE = "gate.base.approve"
    GATE_BASE_REJECT = "gate.base.reject"
    GATE_BASE_WITHDRAW = "gate.base.withdraw"
    GATE_POLICY_REQUEST = "gate.policy.request"
    GATE_POLICY_APPROVE = "gate.policy.approve"
    GATE_POLICY_REJECT = "gate.policy.reject"
    GATE_POLICY_WITHDRAW = "gate.policy.withdraw"
    GATE_SUITE_REQUEST = "gate.suite.request"
    GATE_SUITE_APPROVE = "gate.suite.approve"
    GATE_SUITE_REJECT = "gate.suite.reject"
    GATE_SUITE_WITHDRAW = "gate.suite.withdraw"
    GATE_ENVIRONMENT_REQUEST = "gate.environment.request"
    GATE_ENVIRONMENT_APPROVE = "gate.environment.approve"
    GATE_ENVIRONMENT_REJECT = "gate.environment.reject"
    GATE_ENVIRONMENT_WITHDRAW = "gate.environment.withdraw"
    RUN_START = "run.start"
    RUN_RESUME = "run.resume"
    RUN_CHECKPOINT = "run.checkpoint"
    RUN_COMPLETE = "run.complete"
    RUN_FAILED = "run.failed"
    EVAL_RECORD = "eval.record"

    @classmethod
    def of_gate(cls, gate: Gate, action: GateAction) -> AuditAction:
        return cls(f"gate.{gate.value}.{action.value}")

    @classmethod
    def registered(cls, kind: AssetKind) -> AuditAction:
        return cls(f"{kind.value}.register")


def reference_names(reference: str, label: str, digest: str) -> bool:
    """Whether REFERENCE, as someone typed it (`sha256:<prefix>`, `[kind/]name[@version]`), can name the asset
    LABEL (`kind/name@version`) of DIGEST: what a signer's reference is held to when another party resolved it."""
    if reference.startswith("sha256:"):
        return digest.startswith(reference)
    kind, _, named = label.partition("/")
    typed = reference.removeprefix(f"{kind}/")
    return typed == named if "@" in typed else typed == named.rsplit("@", 1)[0]


# The entries of signed acts the admin policy decides (`governance/admin.py`): each carries its statement, signature
# and decision, and `audit verify --replay` asks the policy each question again.
ADMIN_ACTIONS = (AuditAction.IDENTITY_REVOKE, AuditAction.IDENTITY_ROTATE, AuditAction.IDENTITY_ENROL,
                 AuditAction.AUDIT_REDACT, AuditAction.JOB_START, AuditAction.JOB_CANCEL, AuditAction.ASSET_FETCH,
                 AuditAction.ADMIN_DENIED, AuditAction.ADMIN_PENDING)


# How far back a `job.start` decision is shown its member's earlier starts: the longest window a quota may count
# (`governance/jobs.py`), and what `audit verify` counts again.
RECENT_STARTS = timedelta(days=7)

# How long an administrative act signed by fewer people than its quorum waits for the others (`admin.pending`
# entries): signatures older than this are not counted, so a quorum is of people acting together, not of one
# signature found months later.
QUORUM_WINDOW = timedelta(days=7)


# Entries whose payload is never erased, whatever any policy says: they hold the keys, names, digests and signed acts
# the rest of the log and the state derived from it are checked against. `audit verify` treats a missing payload of
# one of these as tampering, even when an `audit.redact` entry claims it.
NOT_REDACTABLE = frozenset({
    AuditAction.AUDIT_REDACT, AuditAction.IDENTITY_CREATE, AuditAction.IDENTITY_REVOKE, AuditAction.IDENTITY_ROTATE,
    AuditAction.IDENTITY_ENROL, AuditAction.ADMIN_DENIED, AuditAction.ADMIN_PENDING, AuditAction.JOB_START, AuditAction.JOB_CANCEL,
    AuditAction.ASSET_FETCH, AuditAction.RUN_START, AuditAction.RUN_RESUME,
    AuditAction.EVAL_RECORD, AuditAction.SUITE_REGISTER,
    AuditAction.POLICY_ACTIVATE, AuditAction.POLICY_REGISTER, AuditAction.GATE_POLICY_REQUEST,
    AuditAction.GATE_POLICY_APPROVE, AuditAction.GATE_POLICY_REJECT, AuditAction.GATE_POLICY_WITHDRAW,
})
