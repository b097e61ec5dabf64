"""Concurrent approvals from separate processes: the gate transaction is serialised, so a quorum is never missed."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from forgegov.foundation.config import load_workspace
from forgegov.foundation.vocabulary import AssetKind, CheckpointStage, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.registry import find_asset, register_asset

from .conftest import PASSPHRASE, tiny_checkpoint_files


def _approve(root: str, approver: str, start, results) -> None:  # type: ignore[no-untyped-def]
    workspace = load_workspace(Path(root))
    start.wait(30)
    results.put(actions.answer(workspace, "m", approver, PASSPHRASE, GateAction.APPROVE).result.value)


def test_two_release_managers_approving_at_once_meet_the_quorum(people, files):
    path = files.folder("ckpt", tiny_checkpoint_files())
    register_asset(people, AssetKind.CHECKPOINT, path, "m", "alice", stage=CheckpointStage.CANDIDATE)
    # No run produced it: promotable once an ML lead approves it at the base gate.
    actions.request(people, "m", "alice", PASSPHRASE, gate=Gate.BASE)
    actions.answer(people, "m", "dave", PASSPHRASE, GateAction.APPROVE, gate=Gate.BASE)
    actions.promote(people, "m", ReleaseStage.STAGING, "alice", PASSPHRASE)
    actions.answer(people, "m", "dave", PASSPHRASE, GateAction.APPROVE)
    actions.promote(people, "m", ReleaseStage.PRODUCTION, "alice", PASSPHRASE)

    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_approve, args=(str(people.root), name, start, results))
               for name in ("erin", "frank")]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(30)
    assert outcomes == ["allow", "pending"]
    assert find_asset(people, "m").release == "production"
