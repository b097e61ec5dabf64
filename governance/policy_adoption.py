"""Putting a policy in force: the effect of an allowing policy-gate decision, and the first policy of a workspace.

Policy owners change `policies/` by pull request; a workspace adopts the reviewed bundle through the policy gate:
`forgegov policy propose` registers the bundle (checked by `opa check --strict`, stored in the store with the OPA
build pinned to decide it) and opens a request, which the *current* policy decides like any other gate (its roles,
quorum and separation of duties). The activation is written in the same transaction as the decision that allowed
it, so a crash at any point leaves the old policy in force and nothing else behind.
"""

from __future__ import annotations

import json

from forgegov.audit.recorder import AuditedTransaction, EntryDraft
from forgegov.foundation.config import Workspace
from forgegov.foundation.store.models import Asset, Decision, PolicyActivation
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.policy import PolicyManifest, keep_bundle, policy_in_force
from forgegov.governance.statements import SignedStatement


def put_in_force(tx: AuditedTransaction, asset: Asset, decision: Decision, statement: SignedStatement) -> None:
    """Make the policy `asset` the one in force, citing the decision (and its signed statement) that allowed it."""
    session = tx.session
    previous = policy_in_force(session)
    manifest = json.loads(asset.manifest)
    session.add(PolicyActivation(digest=asset.digest, revision=manifest["revision"], activated_by=statement.signer,
                                 activated_at=decision.decided_at, signature=statement.signature,
                                 decision_id=decision.id))
    tx.append(EntryDraft(
        actor=statement.signer, action=AuditAction.POLICY_ACTIVATE, subject_digest=asset.digest,
        policy_revision=manifest["revision"],
        payload={"digest": asset.digest, "revision": manifest["revision"], "decision_id": decision.id,
                 "decider": manifest["decider"], "previous_digest": previous.digest,
                 "previous_revision": previous.revision},
    ))


def put_first_in_force(tx: AuditedTransaction, workspace: Workspace, manifest: PolicyManifest, actor: str,
                       at: str) -> None:
    """A new workspace's first policy: the only one put in force without a decision (there is no policy yet to
    decide it). `policy_in_force` accepts a decision-less activation as the log's first one only."""
    session = tx.session
    keep_bundle(session, manifest)
    session.add(PolicyActivation(digest=manifest.digest, revision=manifest.revision, activated_by=actor,
                                 activated_at=at))
    tx.append(EntryDraft(
        actor=actor, action=AuditAction.POLICY_ACTIVATE, subject_digest=manifest.digest,
        policy_revision=manifest.revision,
        payload={"digest": manifest.digest, "revision": manifest.revision, "decision_id": None,
                 "decider": manifest.decider.to_document()},
    ))

