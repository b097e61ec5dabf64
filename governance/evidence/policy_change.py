"""What the policy gate reads about a proposed policy: how it differs from the policy in force, file by file.

Facts only, from the two stored, re-hashed bundles (`policy.stored_policy`): the revisions, the OPA builds pinned to
decide each, and which files were added, removed or changed (with both digests). A policy owner reviewing a proposal
sees this through `forgegov review`, and the text itself through `forgegov policy diff`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlmodel import Session

from forgegov.foundation.store.models import Asset
from forgegov.governance.policy import policy_in_force, stored_policy


def policy_change_evidence(session: Session, asset: Asset) -> dict[str, Any]:
    proposed, proposed_decider = stored_policy(session, asset.digest)
    in_force = policy_in_force(session)
    current, current_decider = stored_policy(session, in_force.digest)

    def digests(files: dict[str, bytes]) -> dict[str, str]:
        return {path: "sha256:" + hashlib.sha256(data).hexdigest() for path, data in files.items()}

    before, after = digests(current.files), digests(proposed.files)
    return {
        "in_force": {"revision": in_force.revision, "digest": in_force.digest,
                     "opa": current_decider.opa_version},
        "proposed": {"revision": proposed.revision, "digest": asset.digest, "opa": proposed_decider.opa_version},
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": [{"path": path, "before": before[path], "after": after[path]}
                    for path in sorted(set(before) & set(after)) if before[path] != after[path]],
    }
