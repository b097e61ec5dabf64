"""Workspace configuration: `forgegov.toml`, typed and validated on load."""

from __future__ import annotations

import base64
import binascii
import os
import stat
import tempfile
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

from forgegov.foundation.errors import ConfigError, WorkspaceError
from forgegov.foundation.verifier_key import COSIGNATURE, parse_verifier_key

CONFIG_FILE = "forgegov.toml"
CONFIG_VERSION = 1
ENV_HOME = "FORGEGOV_HOME"
ENV_DATABASE_URL = "FORGEGOV_DATABASE_URL"
ENV_OPA_URL = "FORGEGOV_OPA_URL"


class OpaMode(StrEnum):
    EMBEDDED = "embedded"
    URL = "url"


@dataclass(frozen=True)
class OpaConfig:
    mode: OpaMode = OpaMode.EMBEDDED
    url: str = ""
    binary: str = ""
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if self.mode is OpaMode.URL:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.port:
                raise ConfigError(f"opa.url must look like http://127.0.0.1:8181, got {self.url!r}")
        if not 0 < self.timeout_s <= 60:
            raise ConfigError(f"opa.timeout_s must be in (0, 60], got {self.timeout_s}")


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///forgegov.db"

    def __post_init__(self) -> None:
        scheme = self.url.split("://", 1)[0]
        if scheme not in ("sqlite", "postgresql+psycopg"):
            raise ConfigError(
                f"store.url scheme {scheme!r} is not supported",
                hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
            )


@dataclass(frozen=True)
class PathsConfig:
    keys: str = "keys"
    artifacts: str = "artifacts"
    logs: str = "logs"


@dataclass(frozen=True)
class RemoteWitness:
    """A witness elsewhere, speaking C2SP tlog-witness: its verifier key (from its operator), and where the log
    server reaches it (a member, who only checks its cosignatures, pins the key alone)."""

    key: str
    url: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not isinstance(self.url, str):
            raise ConfigError("a remote witness has a key (its verifier key) and a url, both strings")
        if parse_verifier_key(self.key).kind != COSIGNATURE:
            raise ConfigError(f"witness key {self.key!r} is not a cosignature/v1 key (type 0x04)")
        parsed = urlparse(self.url)
        if self.url and (parsed.scheme not in ("https", "http") or not parsed.hostname or parsed.username
                         or (parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"))):
            raise ConfigError(f"witness url {self.url!r}: https://HOST, or plain HTTP only to this machine (a "
                              "witness elsewhere is reached over HTTPS)")

    @property
    def name(self) -> str:
        return parse_verifier_key(self.key).name


@dataclass(frozen=True)
class AuditConfig:
    """The log's identity (origin and pinned public key), how often it signs a checkpoint by itself, and its
    witnesses: folders (`witnesses`), and witnesses elsewhere that cosign each checkpoint (`remote_witnesses`)."""

    origin: str = ""
    log_public_key: str = ""
    checkpoint_every: int = 64
    witnesses: tuple[str, ...] = ()
    remote_witnesses: tuple[RemoteWitness, ...] = ()

    def __post_init__(self) -> None:
        if self.checkpoint_every < 0:
            raise ConfigError("audit.checkpoint_every must be ≥ 0 (0 turns automatic checkpoints off)")
        if any(not isinstance(w, str) or not w for w in self.witnesses):
            raise ConfigError("audit.witnesses must be a list of folder paths")
        object.__setattr__(self, "witnesses", tuple(self.witnesses))
        remote = tuple(w if isinstance(w, RemoteWitness) else RemoteWitness(**w) if isinstance(w, dict) else None
                       for w in self.remote_witnesses)
        if None in remote:
            raise ConfigError("audit.remote_witnesses is a list of tables (key = VERIFIER KEY, url = URL)")
        if len({w.name for w in remote if w is not None}) != len(remote):
            raise ConfigError("audit.remote_witnesses names one witness twice")
        object.__setattr__(self, "remote_witnesses", remote)


@dataclass(frozen=True)
class ProvenanceConfig:
    """The platform key's public half, pinned so that a replaced key file is refused instead of signing provenance.

    Empty only in a workspace created before provenance was signed (`forgegov db upgrade` fills it in).
    """

    public_key: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, str):
            raise ConfigError("provenance.public_key must be a string (base64 of a raw Ed25519 public key)")
        if self.public_key:
            try:
                raw = base64.b64decode(self.public_key, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ConfigError(f"provenance.public_key is not base64: {self.public_key!r}") from exc
            if len(raw) != 32:
                raise ConfigError(f"provenance.public_key must encode 32 bytes (a raw Ed25519 key), not {len(raw)}")


class ArtifactBackend(StrEnum):
    FOLDER = "folder"
    S3 = "s3"


@dataclass(frozen=True)
class ArtifactsConfig:
    """Where a team server keeps uploaded blobs: a folder in the workspace, or a bucket of an S3-compatible object
    store. Credentials are never written here: the S3 client reads them from the environment (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY) or its own configuration, as every AWS tool does."""

    backend: ArtifactBackend = ArtifactBackend.FOLDER
    s3_bucket: str = ""
    s3_endpoint: str = ""  # empty: AWS itself; else e.g. http://127.0.0.1:7070 for a gateway or MinIO-like store
    s3_region: str = "us-east-1"
    s3_prefix: str = "forgegov/"

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", ArtifactBackend(self.backend))
        if self.backend is ArtifactBackend.S3:
            if not self.s3_bucket:
                raise ConfigError("artifacts.backend = \"s3\" needs artifacts.s3_bucket")
            if self.s3_endpoint:
                parsed = urlparse(self.s3_endpoint)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise ConfigError(f"artifacts.s3_endpoint must be an http(s) URL, got {self.s3_endpoint!r}")
        if self.s3_prefix and not self.s3_prefix.endswith("/"):
            raise ConfigError("artifacts.s3_prefix must end with '/' (or be empty)")


@dataclass(frozen=True)
class ServerConfig:
    """A member's workspace: the team server that owns the store, the log and the policy, and what was pinned from it
    when the member joined (`forgegov init --join URL`). Empty in a workspace that keeps its own store."""

    url: str = ""
    policy_digest: str = ""
    member: str = ""  # who this workspace acts as by default (reads are signed too)

    def __post_init__(self) -> None:
        if self.url:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/") \
                    or parsed.query or parsed.fragment or parsed.username or parsed.password:
                raise ConfigError(f"server.url must look like https://forgegov.example.com or http://127.0.0.1:8900, "
                                  f"got {self.url!r}")
            # The answers' bodies are authenticated by TLS, not by the tree head each carries: plain HTTP only where
            # nobody can sit in between.
            if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
                raise ConfigError(f"server.url {self.url!r} is plain HTTP to another machine: anyone on the way could "
                                  "forge the server's answers", hint="use https:// (TLS in front of the server)")


@dataclass(frozen=True)
class WorkspaceConfig:
    version: int = CONFIG_VERSION
    store: StoreConfig = field(default_factory=StoreConfig)
    opa: OpaConfig = field(default_factory=OpaConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    provenance: ProvenanceConfig = field(default_factory=ProvenanceConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(f"forgegov.toml version {self.version} is not supported (expected {CONFIG_VERSION})")

    def to_toml(self) -> dict:
        opa: dict = {"mode": self.opa.mode.value, "timeout_s": self.opa.timeout_s}
        if self.opa.url:
            opa["url"] = self.opa.url
        if self.opa.binary:
            opa["binary"] = self.opa.binary
        return {
            "version": self.version,
            "store": {"url": self.store.url},
            "opa": opa,
            "paths": {"keys": self.paths.keys, "artifacts": self.paths.artifacts, "logs": self.paths.logs},
            "audit": {"origin": self.audit.origin, "log_public_key": self.audit.log_public_key,
                      "checkpoint_every": self.audit.checkpoint_every, "witnesses": list(self.audit.witnesses),
                      **({"remote_witnesses": [{"key": w.key, "url": w.url} for w in self.audit.remote_witnesses]}
                         if self.audit.remote_witnesses else {})},
            "provenance": {"public_key": self.provenance.public_key},
            **({"server": {"url": self.server.url, "policy_digest": self.server.policy_digest,
                           "member": self.server.member}} if self.server.url else {}),
            **({"artifacts": {"backend": self.artifacts.backend.value, "s3_bucket": self.artifacts.s3_bucket,
                              "s3_endpoint": self.artifacts.s3_endpoint, "s3_region": self.artifacts.s3_region,
                              "s3_prefix": self.artifacts.s3_prefix}}
               if self.artifacts != ArtifactsConfig() else {}),
        }

    @classmethod
    def from_toml(cls, doc: dict) -> WorkspaceConfig:
        known = {"version", "store", "opa", "paths", "audit", "provenance", "server", "artifacts"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"forgegov.toml has unknown sections: {', '.join(sorted(unknown))}")
        try:
            opa = dict(doc.get("opa", {}))
            if "mode" in opa:
                opa["mode"] = OpaMode(opa["mode"])
            return cls(
                version=doc.get("version", CONFIG_VERSION),
                store=StoreConfig(**doc.get("store", {})),
                opa=OpaConfig(**opa),
                paths=PathsConfig(**doc.get("paths", {})),
                audit=AuditConfig(**{**doc.get("audit", {}),
                                     "witnesses": tuple(doc.get("audit", {}).get("witnesses", ())),
                                     "remote_witnesses": tuple(doc.get("audit", {}).get("remote_witnesses", ()))}),
                provenance=ProvenanceConfig(**doc.get("provenance", {})),
                server=ServerConfig(**doc.get("server", {})),
                artifacts=ArtifactsConfig(**doc.get("artifacts", {})),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"forgegov.toml is invalid: {exc}") from exc


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: WorkspaceConfig

    @property
    def keys_dir(self) -> Path:
        return self.root / self.config.paths.keys

    @property
    def artifacts_dir(self) -> Path:
        return self.root / self.config.paths.artifacts

    def witness_dirs(self) -> list[Path]:
        """Every witness folder: the configured ones, and the one per remote witness holding the checkpoints it
        cosigned (what `audit verify` and every gate check the log against)."""
        return [self.root / w for w in self.config.audit.witnesses] + [
            self.remote_witness_dir(w) for w in self.config.audit.remote_witnesses]

    def remote_witness_dir(self, witness: RemoteWitness) -> Path:
        """One folder per witness key (its key hash), whatever its name holds: two names never share one, and a
        rotated key starts afresh."""
        return self.root / "witnessed" / witness.key.split("+")[1]

    @property
    def logs_dir(self) -> Path:
        return self.root / self.config.paths.logs

    @property
    def server_url(self) -> str:
        """The team server's URL in a member's workspace; empty where the workspace keeps its own store."""
        return self.config.server.url.rstrip("/")

    @property
    def database_url(self) -> str:
        if self.server_url:
            # A member never writes the team's store: the server decides, and a client with database credentials
            # could change any state with one row. So this door is closed, not merely unused.
            raise WorkspaceError(f"this workspace is a member of {self.server_url}: the server keeps the store, "
                                 "and this command needs a store of its own",
                                 hint="run it through the server's commands (see `forgegov --help`), or on the "
                                      "server's own workspace")
        url = os.environ.get(ENV_DATABASE_URL) or self.config.store.url
        StoreConfig(url)
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            url = prefix + str(self.root / url[len(prefix):])
        return url

    @property
    def opa(self) -> OpaConfig:
        override = os.environ.get(ENV_OPA_URL)
        if override:
            return OpaConfig(mode=OpaMode.URL, url=override, binary=self.config.opa.binary,
                             timeout_s=self.config.opa.timeout_s)
        return self.config.opa


def read_config(root: Path) -> WorkspaceConfig:
    """`forgegov.toml` in `root`, read afresh (settings changed since a Workspace was loaded are seen)."""
    path = root / CONFIG_FILE
    try:
        return WorkspaceConfig.from_toml(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"cannot read {path}: it nests too deeply") from exc


def write_config(root: Path, config: WorkspaceConfig, *, create: bool = False) -> None:
    """The one writer of `forgegov.toml`: written beside it and renamed over it, so a crash (even `kill -9`) leaves
    the old file or the new one, never half of one. `create` is for a new workspace, which must not have one yet."""
    import tomli_w

    target = root / CONFIG_FILE
    text = tomli_w.dumps(config.to_toml())
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=root, prefix=".forgegov.toml.", delete=False) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
        temporary = Path(f.name)
    try:
        if create:
            os.chmod(temporary, 0o644)
            try:
                os.link(temporary, target)  # never replaces: a second creator fails here
            except FileExistsError as exc:
                raise ConfigError(f"{target} already exists",
                                  hint="a workspace is created once; use it, or pick a new --dir") from exc
        else:
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
            os.replace(temporary, target)
        fsync_dir(root)
    finally:
        temporary.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable, as well as the file's bytes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_workspace(explicit: Path | None = None) -> Workspace:
    """--workspace, then $FORGEGOV_HOME, then the nearest folder upwards holding forgegov.toml."""
    if explicit is None and os.environ.get(ENV_HOME):
        explicit = Path(os.environ[ENV_HOME])
    if explicit is not None:
        candidates = [explicit]
    else:
        cwd = Path.cwd()
        candidates = [cwd, *cwd.parents]
    for candidate in candidates:
        config_path = candidate / CONFIG_FILE
        if config_path.is_file():
            try:
                doc = tomllib.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {config_path}: {exc}") from exc
            except RecursionError as exc:
                raise ConfigError(f"cannot read {config_path}: it nests too deeply") from exc
            return Workspace(candidate.resolve(), WorkspaceConfig.from_toml(doc))
    where = str(explicit) if explicit is not None else f"{Path.cwd()} or any parent"
    raise WorkspaceError(
        f"no forgegov workspace at {where}",
        hint="create one with `forgegov init --dir DIR`, or pass --workspace DIR / set FORGEGOV_HOME",
    )
