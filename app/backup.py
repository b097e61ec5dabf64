"""Backing up a server's workspace and restoring it, so that the log verifies after a restore.

A backup is a folder: `forgegov.toml`, `keys/` (the service keys and any identity keys, encrypted at rest as they
are in the workspace), the artifact store's blobs (a folder backend's; an S3 bucket is backed up with the object
store's own versioning or replication), and a consistent copy of the store made by the store's own tool (SQLite's
online backup, `pg_dump`). `backup.json` lists every file with its SHA-256 and the log's signed tree head at the time,
signed with the log key, so a restore given that key (the one members pinned) refuses a backup changed since, or
another server's, and proves the restored log is the one backed up.

A restore loses what was appended after the backup. Members who saw more will be told so on their next call (their
tree head is larger than the restored log's): the operator announces the restore, and each member decides whether to
trust the server again (`forgegov init --join` anew).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import inspect, make_url

from forgegov.audit.log_key import load_log_key, origin_of
from forgegov.audit.note import open_checkpoint
from forgegov.audit.operations import verify_workspace
from forgegov.audit.tree_heads import sign_tree_head
from forgegov.audit.verify import VerifyReport
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import (
    CONFIG_FILE,
    ArtifactBackend,
    StoreConfig,
    Workspace,
    WorkspaceConfig,
    read_config,
    write_config,
)
from forgegov.foundation.crypto.signing import Purpose, public_key_from_b64, sign, verify
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    DigestMismatch,
    SignatureInvalid,
    StoreError,
    WorkspaceError,
)
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.store.db import dispose_engines, engine_for

BACKUP_VERSION = 1
MANIFEST = "backup.json"
SQLITE_COPY = "store.sqlite"
PG_DUMP = "store.pgdump"


def _postgres_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise StoreError(f"{name} is not installed: PostgreSQL's own tool makes and restores the store's copy",
                         hint="apt-get install postgresql-client")
    return str(candidates[-1])


def _libpq(url: str) -> tuple[str, list[str]]:
    """A libpq connection string for pg_dump/pg_restore, and the schema it is confined to when the URL sets one
    (`options=-csearch_path=S`)."""
    parsed = make_url(url).set(drivername="postgresql")
    options = parse_qs(urlparse(url).query).get("options", [""])[0]
    schemas = [value for flag, _, value in [options.partition("=")] if flag == "-csearch_path" and value]
    return parsed.render_as_string(hide_password=False), [f"--schema={s}" for s in schemas]


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def backup(workspace: Workspace, destination: Path) -> dict[str, Any]:
    """Write a backup of WORKSPACE to DESTINATION (a new folder, written whole or not at all)."""
    if destination.exists():
        raise AlreadyExists(f"{destination} already exists", hint="back up into a new folder")
    url = workspace.database_url
    head = sign_tree_head(workspace)  # the log as backed up, signed: the restore must prove it holds exactly this
    with staged_folder(destination, "backup") as staging:
        shutil.copy2(workspace.root / CONFIG_FILE, staging / CONFIG_FILE)
        shutil.copytree(workspace.keys_dir, staging / "keys")
        blobs = workspace.artifacts_dir / "store" / "blobs"
        if workspace.config.artifacts.backend is ArtifactBackend.FOLDER and blobs.is_dir():
            shutil.copytree(blobs, staging / "blobs")
        if url.startswith("sqlite"):
            source = sqlite3.connect(make_url(url).database or "")
            copy = sqlite3.connect(staging / SQLITE_COPY)
            try:
                source.backup(copy)
            finally:
                source.close()
                copy.close()
            store = "sqlite"
        else:
            connection, schema = _libpq(url)
            _run([_postgres_tool("pg_dump"), "--format=custom", "--no-owner", *schema, "--file",
                  str(staging / PG_DUMP), connection], "pg_dump")
            store = "postgresql"
        files = {str(path.relative_to(staging)): _sha256(path) for path in sorted(staging.rglob("*"))
                 if path.is_file()}
        manifest = {"version": BACKUP_VERSION, "created_at": now_rfc3339(), "store": store,
                    "origin": workspace.config.audit.origin,
                    "log": {"size": head.head.size, "root": head.head.root.hex(), "note": head.note}, "files": files}
        signature = sign(load_log_key(workspace).private_key, Purpose.BACKUP, manifest)
        (staging / MANIFEST).write_text(json.dumps({"manifest": manifest, "signature": signature}, indent=2) + "\n",
                                        encoding="utf-8")
    return {"backup": str(destination), "store": store, "entries": head.head.size, "files": len(files)}


def restore(source: Path, directory: Path, log_key: str, store_url: str | None = None) -> tuple[Workspace, VerifyReport]:
    """A workspace at DIRECTORY from the backup at SOURCE, its store restored (into STORE_URL, an empty database,
    for PostgreSQL). LOG_KEY is the log's public key as the restorer knows it from outside the backup (a member's
    forgegov.toml, the operators' records): the backup must be signed with it, be of that log, and every file must be
    the one backed up; the restored log must verify and hold exactly the tree head the backup signed."""
    try:
        document = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
        manifest, signature = document["manifest"], document["signature"]
        public = public_key_from_b64(log_key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{source} is not a forgegov backup ({MANIFEST} is missing or unreadable), or the log key "
                       "given is not a base64 Ed25519 key") from exc
    # 1. The backup is this log's, as its key signed it: not another server's, and not edited since.
    try:
        verify(public, Purpose.BACKUP, manifest, str(signature))
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"{source} is not signed by the log key {log_key}: another server's backup, or one "
                               "changed since it was made", hint="check the key, and use an intact copy") from exc
    config = read_config(source)
    if (config.audit.log_public_key, config.audit.origin, manifest.get("origin")) \
            != (log_key, origin_of(public), origin_of(public)):
        raise SignatureInvalid("the backup's configuration names another log than the key given")
    head = open_checkpoint(str(manifest["log"]["note"]), origin_of(public), public)
    if (head.size, head.root.hex()) != (manifest["log"]["size"], manifest["log"]["root"]):
        raise SignatureInvalid("the backup's tree head is not the one its manifest names")
    if manifest.get("version") != BACKUP_VERSION:
        raise BadInput(f"{source} is a backup of version {manifest.get('version')}, not {BACKUP_VERSION}")
    listed = manifest.get("files", {})
    present = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()} - {MANIFEST}
    if present != set(listed):
        raise DigestMismatch(f"the backup's files are not the ones it lists ({len(present ^ set(listed))} differ)",
                             hint="use an intact copy of the backup")
    for name, expected in listed.items():
        actual = _sha256(source / name)
        if actual != expected:
            raise DigestMismatch(f"{name} in the backup changed since it was made", file=name,
                                 expected=expected, actual=actual, hint="use an intact copy of the backup")
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise WorkspaceError(f"{directory} exists and is not empty", hint="restore into a new folder")
    with staged_folder(directory, "restore") as staging:
        shutil.copy2(source / CONFIG_FILE, staging / CONFIG_FILE)
        shutil.copytree(source / "keys", staging / "keys")
        os.chmod(staging / "keys", 0o700)
        (staging / config.paths.logs).mkdir(parents=True, exist_ok=True)
        if (source / "blobs").is_dir():
            shutil.copytree(source / "blobs", staging / config.paths.artifacts / "store" / "blobs")
        if manifest["store"] == "sqlite":
            if store_url is not None:
                raise BadInput("a SQLite backup is restored into the workspace's own file; --store is for PostgreSQL")
            config = _with_store(config, StoreConfig())
            shutil.copyfile(source / SQLITE_COPY, staging / "forgegov.db")
        else:
            target = store_url or config.store.url
            if inspect(engine_for(target, write=False)).get_table_names():
                raise AlreadyExists("the target database is not empty: a restore writes into an empty one",
                                    hint="create a new database (or schema) and pass --store URL")
            dispose_engines()
            config = _with_store(config, StoreConfig(target))
            connection, _schema = _libpq(target)
            _run([_postgres_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", connection,
                  str(source / PG_DUMP)], "pg_restore")
        write_config(staging, config)
        restored = Workspace(staging, config)
        report = verify_workspace(restored)
        log = manifest["log"]
        if (report.entries, base64.b64decode(report.root).hex()) != (log["size"], log["root"]):
            raise DigestMismatch(f"the restored log holds {report.entries} entries with another root than the "
                                 f"{log['size']} the backup signed", hint="use an intact copy of the backup")
        dispose_engines()
    return Workspace(directory, config), report


def _with_store(config: WorkspaceConfig, store: StoreConfig) -> WorkspaceConfig:
    return replace(config, store=store)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise StoreError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
