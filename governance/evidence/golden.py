"""What the reward and environment gates share: their evidence is the asset's golden cases re-run in the sandbox
against a copy of exactly the registered bytes (re-hashed as copied, so code edited since registration is refused as
tampered, not run), with the installed version of each declared dependency. Whether that is enough is the policy's to
decide.

A gate action gathers evidence more than once (the approver's client computes the digest it signs, the gate
recomputes it), so results are kept in this process by the registered digest: the bytes, and therefore what they
give, are fixed by it (the bytes are still re-hashed each time). Nothing is kept across processes, where it would be
a file to trust.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgegov.foundation.config import Workspace
from forgegov.foundation.store.models import Asset
from forgegov.governance.checkpoints import snapshot_verified
from forgegov.governance.code_assets import installed_versions
from forgegov.governance.sandbox.isolation import SandboxLimits, workspace_paths

# Golden cases are small and quick; a hang is reported after this long rather than holding a gate for minutes.
GOLDEN_LIMITS = SandboxLimits(timeout_s=20.0, memory_mb=2048)
_KEPT: dict[tuple[str, SandboxLimits], dict[str, Any]] = {}
_KEEP_AT_MOST = 256  # a long-running server forgets rather than grows

Replay = Callable[[Path, SandboxLimits, list[Path]], dict[str, Any]]


def golden_evidence_of(workspace: Workspace, asset: Asset, replay: Replay) -> dict[str, Any]:
    """`replay` (the kind's golden procedure) run on a verified copy of `asset`, or what it gave before in this
    process for the same digest; dependency versions read now."""
    key = (asset.digest, GOLDEN_LIMITS)
    with tempfile.TemporaryDirectory(prefix=f"forgegov-{asset.kind.value}-") as scratch:
        # Re-hashed every time, even when the result is kept: bytes changed since registration are reported as
        # tampering at the gate, not only at the next load.
        code = snapshot_verified(asset, Path(scratch) / "code")
        if key not in _KEPT:
            found = replay(code, GOLDEN_LIMITS, workspace_paths(workspace))
            if len(_KEPT) >= _KEEP_AT_MOST:
                _KEPT.clear()
            _KEPT[key] = found
    # What is installed can change under a long-running server: read it now, never from what was kept.
    kept = _KEPT[key]
    return {**kept, "dependencies": installed_versions(tuple(kept["dependencies"]))}
