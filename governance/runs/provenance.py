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

The envelopes are DSSE (`foundation/crypto/dsse.py`); the platform key is a service key (`PLATFORM_KEY`).
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forgegov.foundation.canonical import canonical_bytes, check_digest, digest_of
from forgegov.foundation.clock import parse_rfc3339, rfc3339
from forgegov.foundation.config import ProvenanceConfig, Workspace
from forgegov.foundation.crypto.dsse import sign_envelope, strict_json, verify_envelope
from forgegov.foundation.crypto.service_key import ServiceKey
from forgegov.foundation.crypto.signing import public_key_to_b64
from forgegov.foundation.errors import AlreadyExists, BadInput, DigestMismatch, SignatureInvalid
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
ROLLOUTS_MEDIA_TYPE = "application/vnd.forgegov.rollouts.v1+jsonl"
STATEMENT_FILE = "provenance.intoto.dsse.json"
MANIFEST_FILE = "manifest.dsse.json"
UNKNOWN_VERSION = "0+unknown"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$")
_CHANGED = "the checkpoint's bytes are not the ones the run produced and signed; use the files as the run left them"


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
    rewards: list[dict] = field(default_factory=list)  # grpo: label, digest and weight of each reward function
    rollouts: dict | None = None  # grpo: the rollouts file's name, sha256 and counts
    environment: dict | None = None  # grpo: label, digest and weight of the environment the model acted in

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
            # The caller's mistake, not tampering: facts are what a run hands over before anything is signed.
            raise BadInput(f"run facts: recipe_digest is {self.recipe_digest}, but the recipe document hashes "
                           f"to {actual}")
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
        for i, reward in enumerate(self.rewards):
            _exact_keys(reward, f"rewards[{i}]", {"label", "digest", "weight"} | ({"endpoint"} & set(reward)
                                                                             if isinstance(reward, dict) else set()))
            _text(reward["label"], f"rewards[{i}].label")
            _digest(reward["digest"], f"rewards[{i}].digest")
        if self.environment is not None:
            _exact_keys(self.environment, "environment", {"label", "digest", "weight"})
            _text(self.environment["label"], "environment.label")
            _digest(self.environment["digest"], "environment.digest")
        if bool(self.rewards or self.environment) != (self.rollouts is not None):
            raise BadInput("run facts: a run with reward functions or an environment records its rollouts, and only "
                           "such a run does")
        if self.rollouts is not None:
            _text(self.rollouts.get("file"), "rollouts.file")
            _digest(self.rollouts.get("sha256"), "rollouts.sha256")
        for name in ("recipe", "base", "realised_tokens", "code", "rewards", "rollouts", "environment"):
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
    dependencies += [_descriptor(r["label"], r["digest"], {"role": "reward", "weight": r["weight"]})
                     for r in facts.rewards if "endpoint" not in r]
    # An external endpoint: its URL as the descriptor's uri, and who runs it and which version, as recorded.
    dependencies += [{**_descriptor(r["label"], r["digest"], {"role": "reward-endpoint", "weight": r["weight"],
                                                               "identity": r["endpoint"]["identity"],
                                                               "version": r["endpoint"]["version"]}),
                      "uri": r["endpoint"]["url"]} for r in facts.rewards if "endpoint" in r]
    if facts.environment is not None:
        environment = facts.environment
        dependencies.append(_descriptor(environment["label"], environment["digest"],
                                        {"role": "environment", "weight": environment["weight"]}))
    # Every completion a grpo run scored, with each reward's score: what a reviewer re-scores with the approved code.
    rollouts = [_descriptor(facts.rollouts["file"], facts.rollouts["sha256"],
                            {k: v for k, v in facts.rollouts.items() if k not in ("file", "sha256")},
                            ROLLOUTS_MEDIA_TYPE)] if facts.rollouts is not None else []
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
                    *rollouts,
                ],
            },
        },
    }


# --- the platform key ----------------------------------------------------------------------------------------------

PLATFORM_KEY = ServiceKey(
    title="the platform key", file_name="platform.key", pin=lambda c: c.provenance.public_key,
    pinned=lambda c, key: replace(c, provenance=ProvenanceConfig(public_key=public_key_to_b64(key))),
    setting="[provenance] public_key")


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
            envelopes.append(strict_json(data, str(folder / name), SignatureInvalid))
        return cls(*envelopes)


def sign_provenance(workspace: Workspace, facts: RunFacts, manifest_document: dict,
                    checkpoint_digest: str) -> SignedProvenance:
    """Sign the statement and the manifest for one checkpoint with the workspace's (pinned) platform key."""
    key = PLATFORM_KEY.load(workspace)
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


def signed_checkpoint_digest(statement: dict) -> str:
    """The checkpoint digest a verified statement signs: its files manifest's digest, named in its byproducts."""
    return _statement_manifest_digest(statement)


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
    manifest = strict_json(manifest_payload, "the signed files manifest", ProvenanceInvalid)
    try:
        expected = _manifest_files(manifest, ProvenanceInvalid)
    except ProvenanceInvalid as exc:
        raise ProvenanceInvalid(f"the signed files manifest is malformed: {exc.message}") from exc
    manifest_digest = digest_of(manifest)
    statement = strict_json(statement_payload, "the signed statement", ProvenanceInvalid)
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
