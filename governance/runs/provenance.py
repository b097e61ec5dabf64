"""Signed provenance for the checkpoints a training run produces.

A checkpoint is only as trustworthy as what it was trained from. The store records that, but a record in a database
is forgegov's word, readable only through forgegov. So for every candidate checkpoint the run also emits two DSSE
envelopes, signed by the workspace's platform key, which anyone holding the pinned public key can check with any
in-toto/DSSE implementation:

* an in-toto Statement v1 whose subjects are the checkpoint's files and whose predicate is SLSA Provenance v1: the
  recipe, base checkpoint and datasets (by manifest digest), the policy and gate decision that allowed the run, the
  code versions, and the tokens each dataset actually contributed;
* the checkpoint's files manifest, the document whose digest is the checkpoint's digest in the registry. It is signed
  on its own so that whoever registers the checkpoint can take the digest from a signed document without having to
  understand SLSA; the statement names that digest among its byproducts, so the two envelopes of one run cannot be
  paired with those of another.

Both payloads are the RFC 8785 bytes of their documents. DSSE signs bytes and does not care how they were produced,
but canonical bytes make the manifest envelope's payload hash to exactly the checkpoint digest, and make signing the
same facts twice give the same payload.

Key ids are `sha256:` + the hex SHA-256 of the raw 32-byte public key. `governance.signing.key_id_of` uses the bare
hex; the prefix is added here because a DSSE key id travels without context and should say which hash it is. A key
id is only a hint (DSSE does not sign it): verification always checks the signature with the key the caller trusts.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import importlib.metadata
import json
import os
import re
import stat
import tempfile
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from forgegov.foundation.canonical import canonical_bytes, check_digest, digest_of
from forgegov.foundation.clock import parse_rfc3339, rfc3339
from forgegov.foundation.config import CONFIG_FILE, ProvenanceConfig, Workspace, WorkspaceConfig
from forgegov.foundation.crypto.signing import public_key_from_b64, public_key_to_b64, raw_public_key
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    ConfigError,
    DigestMismatch,
    ForgegovError,
    KeyUnavailable,
    SignatureInvalid,
)
from forgegov.foundation.manifest import MANIFEST_VERSION, build_manifest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MANIFEST_PAYLOAD_TYPE = "application/vnd.forgegov.files-manifest.v1+json"
BUILDER_ID = "https://forgegov.dev/builders/local/v1"
BUILD_TYPE = "https://forgegov.dev/build-types/training-run/v1"
MIXTURE_MEDIA_TYPE = "application/vnd.forgegov.realised-mixture.v1+json"
MANIFEST_BYPRODUCT = "checkpoint-files-manifest"
MIXTURE_BYPRODUCT = "realised-mixture"
STATEMENT_FILE = "provenance.intoto.dsse.json"
MANIFEST_FILE = "manifest.dsse.json"
UNKNOWN_VERSION = "0+unknown"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$")
_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})
_CHANGED = "the checkpoint's bytes are not the ones the run produced and signed; use the files as the run left them"


class PlatformKeyMismatch(ForgegovError):
    """The key file is not the key the workspace pins: signing with it would make provenance nobody should trust."""

    exit_code = 1


class ProvenanceInvalid(SignatureInvalid):
    """The signatures verify, but what they sign is not forgegov provenance, or the two envelopes do not belong
    together. A SignatureInvalid, so that callers who refuse unverifiable provenance refuse this too."""


# --- the facts a run hands over --------------------------------------------------------------------------------------

def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"run facts: {where} must be a non-empty string, got {value!r}")
    return value


def _digest(value: Any, where: str) -> str:
    _text(value, where)
    try:
        return check_digest(value)
    except BadInput as exc:
        raise BadInput(f"run facts: {where}: {exc.message}") from exc


def _exact_keys(value: Any, where: str, keys: set[str]) -> dict:
    # A misspelt key must not vanish silently from a signed record; the same rule as the recipe's.
    if not isinstance(value, dict):
        raise BadInput(f"run facts: {where} must be a table with {', '.join(sorted(keys))}, got {value!r}")
    if set(value) != keys:
        extra, missing = sorted(set(value) - keys), sorted(keys - set(value))
        raise BadInput(f"run facts: {where} must have exactly {', '.join(sorted(keys))}"
                       + (f"; unknown: {', '.join(extra)}" if extra else "")
                       + (f"; missing: {', '.join(missing)}" if missing else ""))
    return value


def _timestamp(value: Any, where: str) -> str:
    _text(value, where)
    if not _RFC3339.match(value):
        raise BadInput(f"run facts: {where} must be an RFC 3339 time such as 2025-01-31T12:00:00Z, got {value!r}")
    try:
        return rfc3339(parse_rfc3339(value))
    except ValueError as exc:
        raise BadInput(f"run facts: {where} is not a valid time: {value!r}") from exc


@dataclass(frozen=True)
class RunFacts:
    """What a finished training run did, as the run itself observed it.

    Validated and deep-copied on construction, because these values end up signed: a mistake or a later change to a
    dict the caller still holds must not reach the signature. Times are normalised to UTC (`…Z`, microseconds) so
    the same run always produces the same statement.
    """

    run_id: str
    recipe: dict
    recipe_digest: str
    base: dict
    datasets: list[dict]
    realised_tokens: dict[str, int]
    code: dict
    policy_revision: str
    policy_digest: str
    decision_id: str
    started_at: str
    finished_at: str
    actor: str

    def __post_init__(self) -> None:
        _text(self.run_id, "run_id")
        try:
            canonical_id = str(uuid.UUID(self.run_id))
        except ValueError as exc:
            raise BadInput(f"run facts: run_id must be a UUID, got {self.run_id!r}") from exc
        if canonical_id != self.run_id:
            raise BadInput(f"run facts: run_id must be a UUID in its canonical form ({canonical_id}), "
                           f"got {self.run_id!r}")
        if not isinstance(self.recipe, dict) or not self.recipe:
            raise BadInput("run facts: recipe must be the recipe's canonical document (Recipe.to_document())")
        _digest(self.recipe_digest, "recipe_digest")
        actual = digest_of(self.recipe)
        if actual != self.recipe_digest:
            raise DigestMismatch(f"run facts: recipe_digest is {self.recipe_digest}, but the recipe document hashes "
                                 f"to {actual}", expected=self.recipe_digest, actual=actual)
        _exact_keys(self.base, "base", {"label", "digest"})
        _text(self.base["label"], "base.label")
        _digest(self.base["digest"], "base.digest")
        if not isinstance(self.datasets, list | tuple) or not self.datasets:
            raise BadInput("run facts: datasets must list every dataset the run trained on")
        labels: list[str] = []
        for i, dataset in enumerate(self.datasets):
            where = f"datasets[{i}]"
            _exact_keys(dataset, where, {"label", "digest", "role", "share"})
            labels.append(_text(dataset["label"], f"{where}.label"))
            _digest(dataset["digest"], f"{where}.digest")
            _text(dataset["role"], f"{where}.role")
            share = dataset["share"]
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
                raise BadInput(f"run facts: {where}.share must be a number in (0, 1], got {share!r}")
        if len(set(labels)) != len(labels):
            raise BadInput(f"run facts: datasets name a label twice: {', '.join(sorted(labels))}")
        if not isinstance(self.realised_tokens, dict) or set(self.realised_tokens) != set(labels):
            got = sorted(self.realised_tokens) if isinstance(self.realised_tokens, dict) else self.realised_tokens
            raise BadInput(f"run facts: realised_tokens must give a count for each dataset label and nothing else: "
                           f"expected {', '.join(labels)}, got {got!r}",
                           hint="report 0 for a dataset the run never drew from")
        for label, tokens in self.realised_tokens.items():
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
                raise BadInput(f"run facts: realised_tokens[{label!r}] must be an integer ≥ 0, got {tokens!r}")
        if not isinstance(self.code, dict) or not {"forgegov", "code_digest"} <= set(self.code):
            raise BadInput("run facts: code must name at least the forgegov version and the code_digest")
        for name, value in self.code.items():
            _text(name, "a code key")
            # None records a library that was not installed (an optional one such as peft): a fact, not a gap.
            if value is not None or name in ("forgegov", "code_digest"):
                _text(value, f"code[{name!r}]")
        _digest(self.code["code_digest"], "code.code_digest")
        _text(self.policy_revision, "policy_revision")
        _digest(self.policy_digest, "policy_digest")
        _text(self.decision_id, "decision_id")
        _text(self.actor, "actor")
        started, finished = _timestamp(self.started_at, "started_at"), _timestamp(self.finished_at, "finished_at")
        if parse_rfc3339(finished) < parse_rfc3339(started):
            raise BadInput(f"run facts: finished_at {self.finished_at} is before started_at {self.started_at}")
        for name in ("recipe", "base", "realised_tokens", "code"):
            object.__setattr__(self, name, copy.deepcopy(getattr(self, name)))
        object.__setattr__(self, "datasets", [copy.deepcopy(d) for d in self.datasets])
        object.__setattr__(self, "started_at", started)
        object.__setattr__(self, "finished_at", finished)


# --- the statement -------------------------------------------------------------------------------------------------

def forgegov_version() -> str:
    """The installed forgegov's version. The fallback exists only so that a source tree run without being installed
    still produces provenance, marked as of unknown version rather than guessed."""
    try:
        return importlib.metadata.version("forgegov")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _manifest_files(document: Any, error: type[BadInput]) -> dict[str, dict]:
    """The manifest's files by path, checked for shape. `error` says whose fault a bad shape is: the caller's when
    signing, the signed document's when verifying."""
    if not isinstance(document, dict) or set(document) != {"manifest_version", "files"}:
        raise error("not a files manifest: expected exactly manifest_version and files")
    if document["manifest_version"] != MANIFEST_VERSION or isinstance(document["manifest_version"], bool):
        raise error(f"files manifest version {document['manifest_version']!r} is not {MANIFEST_VERSION}")
    files = document["files"]
    if not isinstance(files, list) or not files:
        raise error("a files manifest lists at least one file")
    by_path: dict[str, dict] = {}
    for entry in files:
        if not isinstance(entry, dict) or set(entry) != {"path", "size", "sha256"}:
            raise error(f"files manifest entry {entry!r} must have exactly path, size and sha256")
        path, size, sha = entry["path"], entry["size"], entry["sha256"]
        if (not isinstance(path, str) or not path or path.startswith("/")
                or any(part in ("", ".", "..") for part in path.split("/"))):
            raise error(f"files manifest path {path!r} is not a relative POSIX path inside the checkpoint")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise error(f"files manifest size of {path} must be an integer ≥ 0, got {size!r}")
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise error(f"files manifest sha256 of {path} must be 64 lowercase hex digits, got {sha!r}")
        if path in by_path:
            raise error(f"files manifest lists {path} twice")
        by_path[path] = entry
    return by_path


def _descriptor(name: str, digest: str, annotations: dict | None = None, media_type: str | None = None) -> dict:
    descriptor: dict[str, Any] = {"name": name, "digest": {"sha256": _hex(digest)}}
    if media_type:
        descriptor["mediaType"] = media_type
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


def provenance_statement(facts: RunFacts, manifest_document: dict, checkpoint_digest: str) -> dict:
    """The in-toto Statement (SLSA Provenance v1) for one checkpoint of the run described by `facts`.

    Subjects are the checkpoint's files rather than its manifest digest because that is what generic in-toto tools
    match artifacts against: a file's name and sha256. The manifest digest goes into the byproducts, tying this
    statement to the manifest envelope; the mixture actually realised is a byproduct too, because it is an outcome
    of the run, not an input to it (the planned shares are in the recipe and repeated there for comparison).
    """
    check_digest(checkpoint_digest)
    files = _manifest_files(manifest_document, BadInput)
    actual = digest_of(manifest_document)
    if actual != checkpoint_digest:
        raise DigestMismatch(f"the files manifest hashes to {actual}, not to the checkpoint digest "
                             f"{checkpoint_digest}: they describe different checkpoints",
                             expected=checkpoint_digest, actual=actual)
    dependencies = [_descriptor(facts.base["label"], facts.base["digest"], {"role": "base-checkpoint"})]
    dependencies += [_descriptor(d["label"], d["digest"], {"role": d["role"], "share": d["share"]})
                     for d in facts.datasets]
    mixture = {"realisedTokens": dict(facts.realised_tokens),
               "plannedShares": {d["label"]: d["share"] for d in facts.datasets}}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": path, "digest": {"sha256": entry["sha256"]}} for path, entry in files.items()],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"recipe": copy.deepcopy(facts.recipe), "recipeDigest": facts.recipe_digest,
                                       "actor": facts.actor},
                "internalParameters": {"policy": {"revision": facts.policy_revision, "digest": facts.policy_digest},
                                       "runGateDecisionId": facts.decision_id,
                                       "code": copy.deepcopy(facts.code)},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                # SLSA's builder.version is a map of component -> version.
                "builder": {"id": BUILDER_ID, "version": {"forgegov": forgegov_version()}},
                "metadata": {"invocationId": facts.run_id, "startedOn": facts.started_at,
                             "finishedOn": facts.finished_at},
                "byproducts": [
                    _descriptor(MANIFEST_BYPRODUCT, checkpoint_digest, media_type=MANIFEST_PAYLOAD_TYPE),
                    # A resource descriptor needs a digest (or uri, or content); this one is of the canonical bytes
                    # of its own annotations, so it can be checked.
                    _descriptor(MIXTURE_BYPRODUCT, digest_of(mixture), mixture, MIXTURE_MEDIA_TYPE),
                ],
            },
        },
    }


# --- DSSE ----------------------------------------------------------------------------------------------------------

def dsse_key_id(public_key: Ed25519PublicKey) -> str:
    """Derived from the key itself, so a key id can neither be chosen to collide with another key's nor go stale."""
    return "sha256:" + hashlib.sha256(raw_public_key(public_key)).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the signature covers the payload type too, with lengths so that no
    (type, payload) pair can be re-split into another."""
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(encoded_type), encoded_type, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any, what: str) -> bytes:
    # DSSE lets producers use standard or URL-safe base64, padded or not; a verifier has to accept all four.
    if not isinstance(value, str):
        raise SignatureInvalid(f"DSSE envelope: {what} is not a base64 string")
    text = value.translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid(f"DSSE envelope: {what} is not valid base64") from exc


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    # Two parsers that keep different copies of a repeated key would read different documents from the same bytes.
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(data: str | bytes, what: str, error: type[SignatureInvalid]) -> Any:
    try:
        return json.loads(data, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc


def sign_envelope(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> dict:
    """A DSSE envelope over `payload`. The payload type is part of what is signed, so an envelope cannot be passed
    off as another kind of document."""
    if not isinstance(payload, bytes):
        raise BadInput("a DSSE payload is bytes")
    if not isinstance(payload_type, str) or not payload_type:
        raise BadInput("a DSSE envelope needs a payload type")
    signature = key.sign(pae(payload_type, payload))
    return {"payload": _b64(payload), "payloadType": payload_type,
            "signatures": [{"keyid": dsse_key_id(key.public_key()), "sig": _b64(signature)}]}


def verify_envelope(envelope: Mapping | str | bytes, public_key: Ed25519PublicKey, payload_type: str) -> bytes:
    """The payload of `envelope`, once a signature by `public_key` over it and `payload_type` verifies.

    Returns the bytes rather than a verdict so that nothing unverified is ever at hand to parse by mistake; every
    failure raises SignatureInvalid. The envelope's shape is checked strictly (no unknown fields, every signature
    entry well formed) because anything in it that is not signed should not be there to be misread. Signatures with
    another key id are skipped; one without a key id is tried, since DSSE makes the key id optional.
    """
    if isinstance(envelope, str | bytes):
        envelope = _strict_json(envelope, "DSSE envelope", SignatureInvalid)
    if not isinstance(envelope, Mapping) or set(envelope) != _ENVELOPE_FIELDS:
        raise SignatureInvalid("not a DSSE envelope: expected exactly payload, payloadType and signatures")
    found_type = envelope["payloadType"]
    if not isinstance(found_type, str):
        raise SignatureInvalid("DSSE envelope: payloadType is not a string")
    if found_type != payload_type:
        raise SignatureInvalid(f"DSSE envelope holds {found_type!r}, expected {payload_type!r}")
    payload = _b64decode(envelope["payload"], "payload")
    entries = envelope["signatures"]
    if not isinstance(entries, list) or not entries:
        raise SignatureInvalid("DSSE envelope carries no signatures")
    key_id = dsse_key_id(public_key)
    candidates: list[bytes] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "sig" not in entry or not set(entry) <= _SIGNATURE_FIELDS:
            raise SignatureInvalid("DSSE envelope: a signature entry must have sig and, optionally, keyid only")
        hint = entry.get("keyid", "")
        if not isinstance(hint, str):
            raise SignatureInvalid("DSSE envelope: a keyid is not a string")
        signature = _b64decode(entry["sig"], "sig")
        if not hint or hint == key_id:
            candidates.append(signature)
    if not candidates:
        raise SignatureInvalid(f"DSSE envelope has no signature by key {key_id}",
                               hint="verify with the platform key pinned in the signing workspace's forgegov.toml")
    message = pae(found_type, payload)
    for signature in candidates:
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            continue
        return payload
    raise SignatureInvalid(f"DSSE envelope: the signature by key {key_id} does not verify; the payload or its type "
                           f"was changed after signing, or it was signed by another key")


# --- the platform key ----------------------------------------------------------------------------------------------

def new_platform_key() -> tuple[Ed25519PrivateKey, ProvenanceConfig]:
    """A fresh platform key and the [provenance] settings that pin it, made together so neither exists alone."""
    key = Ed25519PrivateKey.generate()
    return key, ProvenanceConfig(public_key=public_key_to_b64(key.public_key()))


def write_platform_key(workspace: Workspace, key: Ed25519PrivateKey) -> None:
    """Store the key as PKCS#8 PEM readable only by its owner. It is a service key (signing happens unattended at the
    end of a run), so it cannot sit behind a passphrase; O_EXCL makes sure an existing key is never overwritten."""
    path = workspace.platform_key_path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise AlreadyExists(f"{path} already exists; a platform key is never overwritten") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def pinned_platform_public_key(workspace: Workspace) -> Ed25519PublicKey:
    """The key provenance from this workspace must verify against: the pin in forgegov.toml, never the key file,
    since a replaced key file is exactly what the pin is there to catch."""
    pinned = workspace.config.provenance.public_key
    if not pinned:
        raise KeyUnavailable("this workspace pins no platform key ([provenance] in forgegov.toml)",
                             hint="it predates signed provenance: `forgegov db upgrade` creates and pins one")
    return public_key_from_b64(pinned)


def load_platform_key(workspace: Workspace) -> Ed25519PrivateKey:
    """The platform key, refused unless it is the pinned one: provenance signed by a substituted key would be
    accepted by nobody, and should not be produced in the first place."""
    pinned = pinned_platform_public_key(workspace)
    path = workspace.platform_key_path
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise KeyUnavailable(f"the platform key {path} is missing",
                             hint="restore it from backup; a new key would not match the pin in forgegov.toml") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise KeyUnavailable(f"cannot read the platform key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyUnavailable(f"the platform key {path} is not an Ed25519 key")
    if raw_public_key(key.public_key()) != raw_public_key(pinned):
        raise PlatformKeyMismatch(
            f"{path} is not the platform key pinned in forgegov.toml ({dsse_key_id(pinned)[:23]}…): "
            "refusing to sign provenance with it",
            hint="restore the original key; the platform key is never silently replaced",
        )
    return key


def _write_config(root: Path, config: WorkspaceConfig) -> None:
    import tomli_w

    # Written beside it and renamed over it, so a crash leaves the old file or the new one, never half of one.
    target = root / CONFIG_FILE
    text = tomli_w.dumps(config.to_toml())
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=root, prefix=".forgegov.toml.", delete=False) as f:
        f.write(text)
        temporary = Path(f.name)
    try:
        os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def ensure_platform_key(workspace: Workspace) -> Workspace:
    """Give a workspace made before provenance was signed its platform key and pin; returns the workspace as now
    configured. Reads forgegov.toml afresh, so that settings changed since `workspace` was loaded are kept."""
    path = workspace.root / CONFIG_FILE
    try:
        config = WorkspaceConfig.from_toml(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    current = Workspace(workspace.root, config)
    if config.provenance.public_key:
        return current
    if os.path.lexists(current.platform_key_path):
        raise PlatformKeyMismatch(
            f"{current.platform_key_path} exists, but forgegov.toml pins no platform key: refusing to adopt or "
            "overwrite a key of unknown origin",
            hint="if it is this workspace's key, pin its public half as [provenance] public_key; otherwise move it away",
        )
    key, provenance = new_platform_key()
    updated = replace(config, provenance=provenance)
    write_platform_key(current, key)
    try:
        _write_config(workspace.root, updated)
    except BaseException:
        # An unpinned key would block the next attempt; this one was never used, so it can go.
        current.platform_key_path.unlink(missing_ok=True)
        raise
    return Workspace(workspace.root, updated)


# --- signing and verifying a run's provenance ----------------------------------------------------------------------

@dataclass(frozen=True)
class SignedProvenance:
    statement_envelope: dict
    manifest_envelope: dict

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write both envelopes into `folder`, never over existing ones (a signed record is not rewritten).

        `folder` must not be the checkpoint folder itself: the statement lists every file there, so files added
        beside the weights after signing would be reported as additions by `verify_provenance`.
        """
        folder.mkdir(parents=True, exist_ok=True)
        targets = ((folder / STATEMENT_FILE, self.statement_envelope), (folder / MANIFEST_FILE, self.manifest_envelope))
        for target, _ in targets:
            if os.path.lexists(target):
                raise AlreadyExists(f"{target} already exists; signed provenance is never overwritten")
        for target, envelope in targets:
            try:
                with open(target, "x", encoding="utf-8") as handle:
                    handle.write(json.dumps(envelope, indent=2, sort_keys=True) + "\n")
            except FileExistsError as exc:
                raise AlreadyExists(f"{target} already exists; signed provenance is never overwritten") from exc
        return targets[0][0], targets[1][0]

    @classmethod
    def read(cls, folder: Path) -> SignedProvenance:
        """The envelopes `write` left in `folder`, parsed but not yet verified (see `verify_provenance`)."""
        envelopes = []
        for name in (STATEMENT_FILE, MANIFEST_FILE):
            try:
                data = (folder / name).read_bytes()
            except OSError as exc:
                raise SignatureInvalid(f"cannot read {folder / name}: {exc.strerror or exc}") from exc
            envelopes.append(_strict_json(data, str(folder / name), SignatureInvalid))
        return cls(*envelopes)


def sign_provenance(workspace: Workspace, facts: RunFacts, manifest_document: dict,
                    checkpoint_digest: str) -> SignedProvenance:
    """Sign the statement and the manifest for one checkpoint with the workspace's (pinned) platform key."""
    key = load_platform_key(workspace)
    statement = provenance_statement(facts, manifest_document, checkpoint_digest)
    return SignedProvenance(
        statement_envelope=sign_envelope(canonical_bytes(statement), IN_TOTO_PAYLOAD_TYPE, key),
        manifest_envelope=sign_envelope(canonical_bytes(manifest_document), MANIFEST_PAYLOAD_TYPE, key),
    )


def _statement_subjects(statement: Any) -> dict[str, str]:
    if not isinstance(statement, dict):
        raise ProvenanceInvalid("the signed statement is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise ProvenanceInvalid(f"the signed statement's _type is {statement.get('_type')!r}, not {STATEMENT_TYPE}")
    if statement.get("predicateType") != SLSA_PROVENANCE_V1:
        raise ProvenanceInvalid(f"the signed statement's predicateType is {statement.get('predicateType')!r}, "
                                f"not {SLSA_PROVENANCE_V1}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ProvenanceInvalid("the signed statement names no subjects")
    by_name: dict[str, str] = {}
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        name = subject.get("name") if isinstance(subject, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str) or not _HEX64.match(sha) or name in by_name:
            raise ProvenanceInvalid(f"the signed statement has a malformed or repeated subject: {subject!r}")
        by_name[name] = sha
    return by_name


def _statement_manifest_digest(statement: dict) -> str:
    try:
        byproducts = statement["predicate"]["runDetails"]["byproducts"]
        builder = statement["predicate"]["runDetails"]["builder"]["id"]
        build_type = statement["predicate"]["buildDefinition"]["buildType"]
    except (KeyError, TypeError) as exc:
        raise ProvenanceInvalid(f"the signed statement is not SLSA provenance: no {exc}") from exc
    if builder != BUILDER_ID or build_type != BUILD_TYPE:
        raise ProvenanceInvalid(f"the signed statement is not a forgegov training run's ({builder!r}, {build_type!r})")
    found = [b for b in byproducts if isinstance(b, dict) and b.get("mediaType") == MANIFEST_PAYLOAD_TYPE] \
        if isinstance(byproducts, list) else []
    digest = found[0].get("digest") if len(found) == 1 else None
    sha = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise ProvenanceInvalid("the signed statement does not name exactly one files-manifest digest")
    return "sha256:" + sha


def verify_provenance(public_key: Ed25519PublicKey, statement_envelope: Mapping | str | bytes,
                      manifest_envelope: Mapping | str | bytes, checkpoint_folder: Path) -> dict:
    """The verified statement, once both envelopes verify against `public_key`, belong to the same checkpoint, and
    the files in `checkpoint_folder` are exactly the ones they describe.

    Every file is re-hashed: a signature over digests proves nothing about bytes nobody has compared. A file added,
    missing or changed is a DigestMismatch naming it; envelopes that verify but disagree are ProvenanceInvalid.
    """
    manifest_payload = verify_envelope(manifest_envelope, public_key, MANIFEST_PAYLOAD_TYPE)
    statement_payload = verify_envelope(statement_envelope, public_key, IN_TOTO_PAYLOAD_TYPE)
    manifest = _strict_json(manifest_payload, "the signed files manifest", ProvenanceInvalid)
    try:
        expected = _manifest_files(manifest, ProvenanceInvalid)
    except ProvenanceInvalid as exc:
        raise ProvenanceInvalid(f"the signed files manifest is malformed: {exc.message}") from exc
    manifest_digest = digest_of(manifest)
    statement = _strict_json(statement_payload, "the signed statement", ProvenanceInvalid)
    subjects = _statement_subjects(statement)
    named = _statement_manifest_digest(statement)
    if named != manifest_digest:
        raise ProvenanceInvalid(f"the statement is for checkpoint {named}, the manifest envelope for "
                                f"{manifest_digest}: they come from different checkpoints")
    if subjects != {path: entry["sha256"] for path, entry in expected.items()}:
        raise ProvenanceInvalid("the statement's subjects are not the files of the manifest it names")
    try:
        mode = os.lstat(checkpoint_folder).st_mode
    except OSError as exc:
        raise DigestMismatch(f"the checkpoint folder {checkpoint_folder} cannot be read: {exc.strerror or exc}",
                             hint=_CHANGED) from exc
    if not stat.S_ISDIR(mode):
        raise DigestMismatch(f"{checkpoint_folder} is not a folder; provenance describes a checkpoint folder",
                             hint=_CHANGED)
    found = {entry.path: entry for entry in build_manifest(checkpoint_folder).files}
    changed = sorted(p for p in found.keys() & expected.keys()
                     if (found[p].sha256, found[p].size) != (expected[p]["sha256"], expected[p]["size"]))
    added, missing = sorted(found.keys() - expected.keys()), sorted(expected.keys() - found.keys())
    if changed or added or missing:
        first = (changed or added or missing)[0]
        parts = [f"{label}: {', '.join(paths)}" for label, paths in
                 (("changed", changed), ("added", added), ("missing", missing)) if paths]
        raise DigestMismatch(
            f"{checkpoint_folder} is not the checkpoint the provenance was signed for ({'; '.join(parts)})",
            file=first, expected=expected[first]["sha256"] if first in expected else None,
            actual=found[first].sha256 if first in found else None, hint=_CHANGED)
    return statement
