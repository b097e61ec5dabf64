"""What differs between the kinds of asset, in one table: how their bytes are read at registration, which options
registration takes, which gates may change their state. A new kind (an evaluation suite, say) is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput
from forgegov.foundation.manifest import FilesManifest, build_manifest
from forgegov.foundation.vocabulary import AssetKind, Classification, DatasetKind, Gate
from forgegov.governance.checkpoints import scan_checkpoint
from forgegov.governance.datasets.intake import DatasetManifest, IntakeLimits, scan_dataset
from forgegov.governance.environments import read_declaration as read_environment
from forgegov.governance.policy import PolicyManifest, keep_bundle, scan_policy
from forgegov.governance.rewards import read_declaration
from forgegov.governance.suites import SuiteManifest, scan_suite

Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is declared to be at registration; its bytes are read once, through intake, under `limits`."""

    kind: DatasetKind
    classification: Classification
    limits: IntakeLimits = IntakeLimits()


Manifest = FilesManifest | DatasetManifest | PolicyManifest | SuiteManifest
Scan = Callable[[Workspace, Path, "DatasetSpec | None", Progress], Manifest]
Keep = Callable[[Session, Manifest], None]


def _files(_workspace: Workspace, path: Path, _dataset: DatasetSpec | None, progress: Progress) -> FilesManifest:
    return build_manifest(path, progress=progress)


def _reward(_workspace: Workspace, path: Path, _dataset: DatasetSpec | None, progress: Progress) -> FilesManifest:
    read_declaration(path)  # refused now rather than at its gate; the gate re-reads it from the verified bytes
    return build_manifest(path, progress=progress)


def _environment(_workspace: Workspace, path: Path, _dataset: DatasetSpec | None, progress: Progress) -> FilesManifest:
    read_environment(path)  # as a reward: refused now rather than at its gate
    return build_manifest(path, progress=progress)


def _checkpoint(_workspace: Workspace, path: Path, _dataset: DatasetSpec | None, progress: Progress) -> FilesManifest:
    return scan_checkpoint(path, progress=progress)


def _dataset(_workspace: Workspace, path: Path, dataset: DatasetSpec | None, progress: Progress) -> DatasetManifest:
    if dataset is None:
        raise BadInput("a dataset needs --kind and --classification")
    return scan_dataset(path, dataset.limits, progress=progress)


def _policy(workspace: Workspace, path: Path, _dataset: DatasetSpec | None, _progress: Progress) -> PolicyManifest:
    return scan_policy(workspace, path)


def _suite(workspace: Workspace, path: Path, _dataset: DatasetSpec | None, _progress: Progress) -> SuiteManifest:
    return scan_suite(workspace, path)


def _keep_policy(session: Session, manifest: Manifest) -> None:
    if not isinstance(manifest, PolicyManifest):
        raise BadInput("a policy is registered from a policy bundle")
    keep_bundle(session, manifest)


@dataclass(frozen=True)
class KindRules:
    gates: tuple[Gate, ...]  # the gates that may change this kind's state; the first is the default
    scan: Scan  # reads the bytes at registration into a manifest, refusing (BadInput) what this kind may not hold
    has_stage: bool = False  # a checkpoint's stage in training (pre, mid, post, candidate), fixed at registration
    has_parent: bool = False  # the checkpoint it was trained from, for lineage
    has_release: bool = False  # where it is served from, moved by the promotion gate
    is_dataset: bool = False  # declared kind and classification, and read through intake
    keep: Keep | None = None  # stores the bytes themselves in the registration's transaction (policies)


KINDS: dict[AssetKind, KindRules] = {
    AssetKind.DATASET: KindRules(gates=(Gate.DATASET,), scan=_dataset, is_dataset=True),
    AssetKind.REWARD: KindRules(gates=(Gate.REWARD,), scan=_reward),
    AssetKind.ENVIRONMENT: KindRules(gates=(Gate.ENVIRONMENT,), scan=_environment),
    # Promotion moves a checkpoint towards serving; the base gate approves it as a starting point for training.
    AssetKind.CHECKPOINT: KindRules(gates=(Gate.PROMOTION, Gate.BASE), scan=_checkpoint, has_stage=True,
                                    has_parent=True, has_release=True),
    AssetKind.RUN: KindRules(gates=(Gate.RUN,), scan=_files),
    # A policy is adopted through the gate the policy in force decides; its bundle lives in the store.
    AssetKind.POLICY: KindRules(gates=(Gate.POLICY,), scan=_policy, keep=_keep_policy),
    # An evaluation suite decides promotions once approved; its datasets are resolved to digests when registered.
    AssetKind.SUITE: KindRules(gates=(Gate.SUITE,), scan=_suite),
}

# The kind each gate acts on.
KIND_OF_GATE: dict[Gate, AssetKind] = {gate: kind for kind, rules in KINDS.items() for gate in rules.gates}
