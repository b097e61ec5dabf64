"""The policy bundle a workspace pins, and the engine that asks OPA about it.

A workspace holds a copy of the bundle (`policy/`) and records each adopted bundle's digest in the store. Before
OPA is consulted the bundle on disk is re-hashed: a bundle edited by hand, outside `forgegov policy update`, stops
every gate (fail closed) instead of silently changing decisions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from forgegov.foundation.config import OpaMode, Workspace
from forgegov.foundation.errors import BadInput, PolicyBundleError
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.models import PolicyActivation
from forgegov.foundation.vocabulary import Gate
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.opa.client import OpaAnswer, PolicyClient
from forgegov.governance.opa.supervisor import LocalOpa

MANIFEST_FILE = ".manifest"


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    digest: str
    revision: str


def packaged_bundle() -> Path:
    return Path(str(resources.files("forgegov.policies")))


def bundle_info(path: Path) -> BundleInfo:
    manifest_path = path / MANIFEST_FILE
    try:
        revision = json.loads(manifest_path.read_text(encoding="utf-8"))["revision"]
    except FileNotFoundError as exc:
        raise PolicyBundleError(f"{manifest_path} is missing; a bundle names its revision there") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PolicyBundleError(f"{manifest_path} does not name a revision: {exc}") from exc
    if not isinstance(revision, str) or not revision:
        raise PolicyBundleError(f"{manifest_path}: revision must be a non-empty string")
    return BundleInfo(path, build_manifest(path).digest, revision)


def copy_bundle(source: Path, destination: Path) -> None:
    """Copy the policy files only (Rego, JSON data, the manifest); never Python caches or editor files."""
    if not (source / MANIFEST_FILE).is_file():
        raise BadInput(f"{source} is not a policy bundle (no {MANIFEST_FILE})")
    destination.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.rglob("*")):
        if file.is_symlink():
            raise BadInput(f"{file} is a symbolic link; a policy bundle holds real files only")
        if file.is_file() and (file.suffix in (".rego", ".json") or file.name == MANIFEST_FILE):
            target = destination / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)


def run_opa(binary: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, check=False)


def check_bundle(binary: Path, path: Path) -> None:
    done = run_opa(binary, ["check", "--strict", "--bundle", str(path)])
    if done.returncode != 0:
        raise PolicyBundleError(f"policy bundle at {path} fails `opa check --strict`:\n"
                                f"{(done.stdout + done.stderr).strip()}")


def active_activation(session: Session) -> PolicyActivation:
    activation = session.exec(select(PolicyActivation).order_by(PolicyActivation.id.desc())).first()  # type: ignore[union-attr]
    if activation is None:
        raise PolicyBundleError("this workspace has no adopted policy bundle",
                                hint="run `forgegov policy update --from DIR --as NAME`")
    return activation


class PolicyEngine:
    """OPA for one workspace: the embedded server (started here, stopped on exit) or the configured URL."""

    def __init__(self, workspace: Workspace, pinned: PolicyActivation) -> None:
        self.workspace = workspace
        self.pinned_digest = pinned.digest
        self.pinned_revision = pinned.revision
        self._local: LocalOpa | None = None
        self._client: PolicyClient | None = None

    def __enter__(self) -> PolicyEngine:
        config = self.workspace.opa
        if config.mode is OpaMode.EMBEDDED:
            info = bundle_info(self.workspace.policy_dir)
            if info.digest != self.pinned_digest:
                raise PolicyBundleError(
                    f"the policy bundle in {info.path} ({info.digest[:19]}…) is not the adopted one "
                    f"({self.pinned_digest[:19]}…): it was changed outside `forgegov policy update`",
                    hint="adopt the change with `forgegov policy update --from DIR --as NAME`, or restore the files",
                )
            self._local = LocalOpa(find_opa(config.binary), self.workspace.policy_dir,
                                   self.workspace.logs_dir / "opa.log")
            self._local.start()
            url = self._local.url
        else:
            url = config.url
        self._client = PolicyClient(url, config.timeout_s)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._local is not None:
            self._local.stop()

    @property
    def url(self) -> str:
        if self._client is None:
            raise PolicyBundleError("policy engine used outside its `with` block")
        return self._client.url

    def decide(self, gate: Gate, input_document: dict[str, Any]) -> OpaAnswer:
        if self._client is None:
            raise PolicyBundleError("policy engine used outside its `with` block")
        return self._client.decide(gate, input_document, expected_revision=self.pinned_revision)
