"""Creating a workspace: config, folders, the store's schema, and the first policy in force.

The workspace is assembled in a sibling temporary folder and renamed into place at the end, so a failed `init`
leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, make_url
from sqlmodel import func, select

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
from forgegov.foundation.store.db import engine_for, read_session, upgrade
from forgegov.foundation.store.models import AuditEntry, PolicyActivation
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
        _refuse_a_store_holding_a_log(workspace.database_url)
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


def _refuse_a_store_holding_a_log(url: str) -> None:
    """A second workspace initialised on a store that already holds an audit log would sign that log with a log key
    of its own: the log forks, and every member's `audit verify` fails from the next checkpoint on. Until the team
    server owns the one log and its key (issue 15: `forgegov init --join URL`), such a store is refused."""
    engine = engine_for(url, write=False)
    if "audit_entry" not in inspect(engine).get_table_names():
        return
    with read_session(url) as session:
        entries = session.exec(select(func.count()).select_from(AuditEntry)).one()
    if entries:
        raise AlreadyExists(f"the store at {make_url(url).render_as_string(hide_password=True)} already holds the audit log of another workspace "
                            f"({entries} entries): a second workspace writing to it would sign that log with a key "
                            "of its own and fork it",
                            hint="use a new database (or PostgreSQL schema) for this workspace, or work in the "
                                 "workspace that created the store")


def _put_first_policy_in_force(workspace: Workspace, source: Path) -> None:
    manifest = scan_policy(workspace, source)
    with audited_transaction(workspace) as tx:
        if tx.session.exec(select(PolicyActivation)).first() is not None:
            raise AlreadyExists("the store already has a policy in force: it belongs to another workspace")
        put_first_in_force(tx, workspace, manifest, INIT_ACTOR, now_rfc3339())
