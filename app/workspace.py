"""Creating a workspace: config, folders, the store's schema, and the first policy in force.

The workspace is assembled in a sibling temporary folder and renamed into place at the end, so a failed `init`
leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from forgegov.audit.log_key import LOG_KEY
from forgegov.audit.recorder import audited_transaction
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import (
    CONFIG_FILE,
    OpaConfig,
    OpaMode,
    StoreConfig,
    Workspace,
    WorkspaceConfig,
    write_config,
)
from forgegov.foundation.errors import AlreadyExists, WorkspaceError
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.store.db import upgrade
from forgegov.foundation.store.models import PolicyActivation
from forgegov.governance.policy import packaged_bundle, scan_policy
from forgegov.governance.policy_adoption import put_first_in_force
from forgegov.governance.runs.provenance import PLATFORM_KEY

INIT_ACTOR = "forgegov-init"


def init_workspace(directory: Path, store_url: str | None = None, opa_url: str | None = None,
                   policy_source: Path | None = None) -> Workspace:
    directory = directory.resolve()
    if (directory / CONFIG_FILE).exists():
        raise AlreadyExists(f"{directory} is already a forgegov workspace")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise WorkspaceError(f"{directory} exists and is not an empty folder")
    config = WorkspaceConfig(
        store=StoreConfig(store_url) if store_url else StoreConfig(),
        opa=OpaConfig(mode=OpaMode.URL, url=opa_url) if opa_url else OpaConfig(),
    )
    with staged_folder(directory, "init") as staging:
        workspace = Workspace(staging, config)
        for folder in (workspace.keys_dir, workspace.artifacts_dir, workspace.logs_dir):
            folder.mkdir(parents=True)
        workspace.keys_dir.chmod(0o700)
        for key in (LOG_KEY, PLATFORM_KEY):
            config = key.pinned(config, key.write_new(workspace).public_key())
        write_config(staging, config, create=True)
        workspace = Workspace(staging, config)
        upgrade(workspace.database_url)
        _put_first_policy_in_force(workspace, policy_source or packaged_bundle())
    return Workspace(directory, config)


def _put_first_policy_in_force(workspace: Workspace, source: Path) -> None:
    manifest = scan_policy(workspace, source)
    with audited_transaction(workspace) as tx:
        if tx.session.exec(select(PolicyActivation)).first() is not None:
            # A shared (team) store already has a policy in force: a new workspace joins under it, and changes it
            # only through the policy gate.
            return
        put_first_in_force(tx, workspace, manifest, INIT_ACTOR, now_rfc3339())
