"""Creating a workspace: config, folders, the pinned policy bundle, and the store's schema.

The workspace is assembled in a sibling temporary folder and renamed into place at the end, so a failed `init`
leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from forgegov.audit.log_key import LOG_KEY
from forgegov.audit.recorder import EntryDraft, audited_transaction
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
from forgegov.foundation.errors import AlreadyExists, PolicyBundleError, WorkspaceError
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.store.db import upgrade
from forgegov.foundation.store.models import PolicyActivation
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.policy import bundle_info, copy_bundle, packaged_bundle
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
        copy_bundle(policy_source or packaged_bundle(), workspace.policy_dir)
        write_config(staging, config, create=True)
        workspace = Workspace(staging, config)
        url = workspace.database_url
        upgrade(url)
        _pin_initial_bundle(workspace, url)
    return Workspace(directory, config)


def _pin_initial_bundle(workspace: Workspace, url: str) -> None:
    info = bundle_info(workspace.policy_dir)
    with audited_transaction(workspace) as tx:
        session = tx.session
        active = session.exec(select(PolicyActivation).order_by(PolicyActivation.id.desc())).first()  # type: ignore[union-attr]
        if active is not None:
            # A shared (team) store already pins a bundle: a new workspace joins it only with the same policy.
            if active.digest != info.digest:
                raise PolicyBundleError(
                    f"the store already pins policy {active.revision} ({active.digest[:19]}…), "
                    f"not this bundle ({info.revision}, {info.digest[:19]}…)",
                    hint="initialise with the store's policy bundle (--policy DIR)",
                )
            return
        session.add(PolicyActivation(digest=info.digest, revision=info.revision, activated_by=INIT_ACTOR,
                                     activated_at=now_rfc3339()))
        tx.append(EntryDraft(actor=INIT_ACTOR, action=AuditAction.POLICY_ACTIVATE, policy_revision=info.revision,
                                   payload={"digest": info.digest, "revision": info.revision}))
