"""Adopting a new policy bundle into a workspace: checked by OPA, signed by the adopter, logged.

Policy owners change `policies/` by pull request; a workspace adopts a reviewed bundle here. The new bundle must pass
`opa check --strict` before it replaces the old one, and the activation record carries the adopter's signature over
the bundle's digest and revision.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from forgegov.audit.recorder import EntryDraft, audited_transaction
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.signing import Purpose, sign
from forgegov.foundation.errors import StateConflict
from forgegov.foundation.store.models import PolicyActivation
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.identities import get_identity, require_active
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.policy import active_activation, bundle_info, check_bundle, copy_bundle


def adopt_bundle(workspace: Workspace, source: Path, signer: Signer) -> PolicyActivation:
    staging = Path(tempfile.mkdtemp(prefix=".policy-new-", dir=workspace.root))
    retired = workspace.root / ".policy-old"
    try:
        copy_bundle(source, staging)
        check_bundle(find_opa(workspace.opa.binary), staging)
        info = bundle_info(staging)
        statement = {"v": 1, "digest": info.digest, "revision": info.revision, "signer": signer.name,
                     "key_id": signer.key_id, "signed_at": now_rfc3339()}
        with audited_transaction(workspace) as tx:
            session = tx.session
            require_active(get_identity(session, signer.name))
            current = active_activation(session)
            if current.digest == info.digest:
                raise StateConflict(f"bundle {info.revision} ({info.digest[:19]}…) is already the adopted policy")
            activation = PolicyActivation(digest=info.digest, revision=info.revision, activated_by=signer.name,
                                          activated_at=statement["signed_at"],
                                          signature=sign(signer.private_key, Purpose.POLICY_ACTIVATION, statement))
            session.add(activation)
            tx.append(EntryDraft(
                actor=signer.name, action=AuditAction.POLICY_ACTIVATE, policy_revision=info.revision,
                payload={**statement, "previous_digest": current.digest, "previous_revision": current.revision,
                         "signature": activation.signature},
            ))
            session.flush()
            session.refresh(activation)
            session.expunge(activation)
            # Swap the folders last, inside the transaction: if the swap fails, the activation rolls back.
            shutil.rmtree(retired, ignore_errors=True)
            workspace.policy_dir.rename(retired)
            try:
                staging.rename(workspace.policy_dir)
            except OSError:
                retired.rename(workspace.policy_dir)
                raise
        shutil.rmtree(retired, ignore_errors=True)
        return activation
    finally:
        shutil.rmtree(staging, ignore_errors=True)
