"""States, stages and kinds: the vocabulary of the registry and the gates."""

from __future__ import annotations

from enum import StrEnum


class AssetKind(StrEnum):
    DATASET = "dataset"
    REWARD = "reward"
    CHECKPOINT = "checkpoint"
    RUN = "run"


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


class GateAction(StrEnum):
    REQUEST = "request"
    APPROVE = "approve"
    REJECT = "reject"


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


# The one gate that may change each kind's state; promotion acts on approved-for-release checkpoints.
GATE_FOR_KIND: dict[AssetKind, Gate] = {
    AssetKind.DATASET: Gate.DATASET,
    AssetKind.REWARD: Gate.REWARD,
    AssetKind.RUN: Gate.RUN,
}
KIND_FOR_GATE: dict[Gate, AssetKind] = {
    Gate.DATASET: AssetKind.DATASET,
    Gate.REWARD: AssetKind.REWARD,
    Gate.RUN: AssetKind.RUN,
    Gate.PROMOTION: AssetKind.CHECKPOINT,
    Gate.BASE: AssetKind.CHECKPOINT,
}


class RunStatus(StrEnum):
    """A training run's life after its gate approved it: running (or crashed while running), then one of the ends."""

    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"
