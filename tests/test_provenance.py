"""Signed provenance: DSSE envelopes that independent implementations (securesystemslib, in-toto) accept and produce,
refused when anything signed, or any checkpoint file, changes; a platform key pinned like the audit log key."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.metadata
import json
import os
import stat
import tomllib
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from forgegov.app.workspace import init_workspace
from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.config import CONFIG_FILE, WorkspaceConfig, load_workspace
from forgegov.foundation.crypto.dsse import dsse_key_id, pae, sign_envelope, verify_envelope
from forgegov.foundation.crypto.signing import raw_public_key
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    ConfigError,
    DigestMismatch,
    KeyUnavailable,
    ServiceKeyMismatch,
    SignatureInvalid,
)
from forgegov.foundation.manifest import build_manifest
from forgegov.governance.runs.provenance import (
    BUILDER_ID,
    IN_TOTO_PAYLOAD_TYPE,
    MANIFEST_FILE,
    MANIFEST_PAYLOAD_TYPE,
    PLATFORM_KEY,
    SLSA_PROVENANCE_V1,
    STATEMENT_FILE,
    STATEMENT_TYPE,
    ProvenanceInvalid,
    RunFacts,
    SignedProvenance,
    provenance_statement,
    sign_provenance,
    verify_provenance,
)
from forgegov.governance.runs.recipe import parse_recipe, recipe_digest

from .conftest import tiny_checkpoint_files

RECIPE = """\
version = 1
name = "claims-cpt"
method = "cpt"
seed = 7

[base]
checkpoint = "checkpoint/ref-post@1"

[[mixture.sources]]
dataset = "dataset/claims@1"
role = "proprietary"
share = 0.75

[[mixture.sources]]
dataset = "dataset/chat-safety@1"
role = "replay"
share = 0.25

[train]
max_steps = 20
batch_size = 4
seq_len = 64
learning_rate = 1e-3
warmup_steps = 2
decay = "cosine"
min_lr_ratio = 0.1
weight_decay = 0.1
grad_clip = 1.0

[devices]
kind = "cpu"
count = 1
"""


def _sha(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


def _facts(**changes) -> RunFacts:
    recipe = parse_recipe(tomllib.loads(RECIPE))
    fields = dict(
        run_id=str(uuid.uuid4()),
        recipe=recipe.to_document(),
        recipe_digest=recipe_digest(recipe),
        base={"label": "checkpoint/ref-post@1", "digest": _sha("base")},
        datasets=[{"label": "dataset/claims@1", "digest": _sha("claims"), "role": "proprietary", "share": 0.75},
                  {"label": "dataset/chat-safety@1", "digest": _sha("safety"), "role": "replay", "share": 0.25}],
        realised_tokens={"dataset/claims@1": 3840, "dataset/chat-safety@1": 1280},
        code={"forgegov": "0.1.0", "code_digest": _sha("code"), "python": "3.11.9", "torch": "2.5.1",
              "transformers": "5.0.0", "trl": "1.0.0", "datasets": "4.0.0", "peft": None},
        policy_revision="rev-1",
        policy_digest=_sha("policy"),
        decision_id="5d3c1a8e-opa-decision",
        started_at="2025-03-01T10:00:00Z",
        finished_at="2025-03-01T11:05:30.250+01:00",
        actor="alice",
    )
    fields.update(changes)
    return RunFacts(**fields)


def _ssl_key(public_key) -> SSlibKey:
    """The platform key as securesystemslib sees it, under forgegov's key id."""
    return SSlibKey(dsse_key_id(public_key), "ed25519", "ed25519", {"public": raw_public_key(public_key).hex()})


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def checkpoint(files) -> Path:
    return files.folder("ckpt", {**tiny_checkpoint_files(), "generation_config.json": '{"do_sample": false}'})


@pytest.fixture
def signed(ws, checkpoint):
    manifest = build_manifest(checkpoint)
    facts = _facts()
    return facts, manifest, sign_provenance(ws, facts, manifest.to_document(), manifest.digest)


def _on_disk(folder: Path) -> dict[str, str]:
    """The folder's files and sha256s, computed here without forgegov's manifest code."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


# --- independent implementations agree ---------------------------------------------------------------------------

def test_securesystemslib_verifies_both_envelopes_and_reads_the_statement(ws, checkpoint, signed):
    facts, manifest, provenance = signed
    public = PLATFORM_KEY.public_key(ws)
    key = _ssl_key(public)
    payloads = {}
    for envelope, payload_type in ((provenance.statement_envelope, IN_TOTO_PAYLOAD_TYPE),
                                   (provenance.manifest_envelope, MANIFEST_PAYLOAD_TYPE)):
        theirs = Envelope.from_dict(copy.deepcopy(envelope))  # from_dict rewrites the signature dicts it is given
        assert set(theirs.verify([key], 1)) == {key.keyid}
        assert theirs.payload_type == payload_type
        assert theirs.payload == verify_envelope(envelope, public, payload_type)
        payloads[payload_type] = theirs.payload

    # The manifest envelope's payload is the manifest's canonical bytes: it hashes to the checkpoint digest.
    assert payloads[MANIFEST_PAYLOAD_TYPE] == canonical_bytes(manifest.to_document())
    assert "sha256:" + hashlib.sha256(payloads[MANIFEST_PAYLOAD_TYPE]).hexdigest() == manifest.digest

    statement = json.loads(payloads[IN_TOTO_PAYLOAD_TYPE])
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == SLSA_PROVENANCE_V1
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == _on_disk(checkpoint)
    assert len(statement["subject"]) == 3
    build = statement["predicate"]["buildDefinition"]
    assert {d["name"]: d["digest"]["sha256"] for d in build["resolvedDependencies"]} == {
        "checkpoint/ref-post@1": hashlib.sha256(b"base").hexdigest(),
        "dataset/claims@1": hashlib.sha256(b"claims").hexdigest(),
        "dataset/chat-safety@1": hashlib.sha256(b"safety").hexdigest(),
    }
    assert build["resolvedDependencies"][2]["annotations"] == {"role": "replay", "share": 0.25}
    assert build["externalParameters"]["recipeDigest"] == facts.recipe_digest
    assert digest_of(build["externalParameters"]["recipe"]) == facts.recipe_digest
    assert build["internalParameters"]["runGateDecisionId"] == facts.decision_id
    run = statement["predicate"]["runDetails"]
    assert run["builder"] == {"id": BUILDER_ID, "version": {"forgegov": importlib.metadata.version("forgegov")}}
    assert run["metadata"] == {"invocationId": facts.run_id, "startedOn": "2025-03-01T10:00:00.000000Z",
                               "finishedOn": "2025-03-01T10:05:30.250000Z"}
    tied = [b for b in run["byproducts"] if b.get("mediaType") == MANIFEST_PAYLOAD_TYPE]
    assert [b["digest"]["sha256"] for b in tied] == [manifest.digest.removeprefix("sha256:")]
    mixture = next(b for b in run["byproducts"] if b["name"] == "realised-mixture")
    assert mixture["annotations"]["realisedTokens"] == facts.realised_tokens
    assert mixture["annotations"]["plannedShares"] == {"dataset/claims@1": 0.75, "dataset/chat-safety@1": 0.25}


def test_securesystemslib_refuses_a_forgegov_envelope_under_another_key(ws, signed):
    other = Ed25519PrivateKey.generate().public_key()
    # Another key under the platform key's id: only the signature can tell them apart, and it does.
    impostor = SSlibKey(dsse_key_id(PLATFORM_KEY.public_key(ws)), "ed25519", "ed25519",
                        {"public": raw_public_key(other).hex()})
    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(signed[2].statement_envelope)).verify([impostor], 1)


def test_in_toto_verifies_the_statement_envelope(ws, signed):
    # in-toto 3.1's Envelope is securesystemslib's plus its own loading and key handling; it parses in-toto payloads
    # only into Links and Layouts, so the Statement is compared as bytes. It does not take the manifest envelope's
    # payload type at all (Metadata.from_dict refuses it), which is why that one is checked by securesystemslib only.
    from in_toto.exceptions import SignatureVerificationError
    from in_toto.models.metadata import Envelope as InTotoEnvelope
    from in_toto.models.metadata import Metadata

    public = PLATFORM_KEY.public_key(ws)
    envelope = Metadata.from_dict(copy.deepcopy(signed[2].statement_envelope))
    assert isinstance(envelope, InTotoEnvelope)
    key = {"keyid": dsse_key_id(public), "keytype": "ed25519", "scheme": "ed25519",
           "keyval": {"public": raw_public_key(public).hex()}}
    envelope.verify_signature(key)
    assert envelope.payload == verify_envelope(signed[2].statement_envelope, public, IN_TOTO_PAYLOAD_TYPE)
    assert json.loads(envelope.payload)["_type"] == STATEMENT_TYPE
    wrong = {**key, "keyval": {"public": raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()}}
    with pytest.raises(SignatureVerificationError):
        envelope.verify_signature(wrong)


def test_envelope_signed_by_securesystemslib_verifies_with_forgegov():
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    payload = json.dumps({"made": "by securesystemslib", "n": 1}).encode()
    envelope = Envelope(payload, "application/vnd.example+json", {})
    envelope.sign(CryptoSigner(private, _ssl_key(public)))
    document = envelope.to_dict()
    assert verify_envelope(document, public, "application/vnd.example+json") == payload
    assert verify_envelope(json.dumps(document), public, "application/vnd.example+json") == payload
    # DSSE makes the key id optional: a signature without one is still checked, and still has to verify.
    anonymous = {**document, "signatures": [{"sig": document["signatures"][0]["sig"]}]}
    assert verify_envelope(anonymous, public, "application/vnd.example+json") == payload
    # URL-safe, unpadded base64 is allowed to producers too.
    urlsafe = {**document, "payload": base64.urlsafe_b64encode(payload).decode().rstrip("=")}
    assert verify_envelope(urlsafe, public, "application/vnd.example+json") == payload
    # securesystemslib's own default key id is not forgegov's: the signature is not "by this key id".
    default_id = Envelope(payload, "application/vnd.example+json", {})
    default_id.sign(CryptoSigner(private))
    with pytest.raises(SignatureInvalid, match="no signature by key"):
        verify_envelope(default_id.to_dict(), public, "application/vnd.example+json")


def test_pae_matches_securesystemslib():
    private = Ed25519PrivateKey.generate()
    ours = sign_envelope(b"\x00 binary \xff payload", "text/x-odd type", private)
    theirs = Envelope.from_dict(copy.deepcopy(ours))
    theirs.verify([_ssl_key(private.public_key())], 1)
    assert theirs.pae() == b"DSSEv1 15 text/x-odd type 18 \x00 binary \xff payload"
    assert pae("text/x-odd type", b"\x00 binary \xff payload") == theirs.pae()
    # Lengths count bytes, not characters: a non-ASCII type is where a careless encoder would differ.
    assert pae("tÿpe", b"") == Envelope(b"", "tÿpe", {}).pae() == "DSSEv1 5 tÿpe 0 ".encode()


# --- round trip through files --------------------------------------------------------------------------------------

def test_written_provenance_verifies_and_is_never_overwritten(ws, checkpoint, signed, tmp_path):
    facts, manifest, provenance = signed
    out = tmp_path / "run" / "provenance"
    assert provenance.write(out) == (out / STATEMENT_FILE, out / MANIFEST_FILE)
    read = SignedProvenance.read(out)
    assert read == provenance
    statement = verify_provenance(PLATFORM_KEY.public_key(ws), read.statement_envelope, read.manifest_envelope,
                                  checkpoint)
    assert statement == provenance_statement(facts, manifest.to_document(), manifest.digest)
    with pytest.raises(AlreadyExists):
        provenance.write(out)
    (out / STATEMENT_FILE).write_text("{not json")
    with pytest.raises(SignatureInvalid, match="not valid JSON"):
        SignedProvenance.read(out)


def test_signing_is_deterministic_for_the_same_facts(ws, checkpoint, signed):
    facts, manifest, provenance = signed
    again = sign_provenance(ws, facts, manifest.to_document(), manifest.digest)
    assert again.statement_envelope["payload"] == provenance.statement_envelope["payload"]
    assert again.manifest_envelope == provenance.manifest_envelope  # Ed25519 signatures are deterministic too


# --- tampering -----------------------------------------------------------------------------------------------------

def _flip_payload_byte(envelope: dict) -> dict:
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[len(payload) // 2] ^= 0x01
    return {**envelope, "payload": base64.b64encode(bytes(payload)).decode()}


def test_changed_payload_byte_is_refused(ws, signed):
    public = PLATFORM_KEY.public_key(ws)
    for envelope, payload_type in ((signed[2].statement_envelope, IN_TOTO_PAYLOAD_TYPE),
                                   (signed[2].manifest_envelope, MANIFEST_PAYLOAD_TYPE)):
        with pytest.raises(SignatureInvalid, match="does not verify"):
            verify_envelope(_flip_payload_byte(envelope), public, payload_type)


def test_swapped_payload_type_is_refused(ws, signed, checkpoint):
    public = PLATFORM_KEY.public_key(ws)
    statement, manifest = signed[2].statement_envelope, signed[2].manifest_envelope
    with pytest.raises(SignatureInvalid, match="expected"):
        verify_envelope(manifest, public, IN_TOTO_PAYLOAD_TYPE)
    relabelled = {**manifest, "payloadType": IN_TOTO_PAYLOAD_TYPE}  # the type is inside the signature (PAE)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_envelope(relabelled, public, IN_TOTO_PAYLOAD_TYPE)
    with pytest.raises(SignatureInvalid):
        verify_provenance(public, manifest, statement, checkpoint)


def test_signature_by_another_key_is_refused(ws, signed, checkpoint):
    public = PLATFORM_KEY.public_key(ws)
    payload = base64.b64decode(signed[2].statement_envelope["payload"])
    other = Ed25519PrivateKey.generate()
    resigned = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, other)
    with pytest.raises(SignatureInvalid, match="no signature by key"):
        verify_envelope(resigned, public, IN_TOTO_PAYLOAD_TYPE)
    # Claiming the platform key's id changes nothing: the signature itself is checked.
    forged = {**resigned, "signatures": [{**resigned["signatures"][0], "keyid": dsse_key_id(public)}]}
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_envelope(forged, public, IN_TOTO_PAYLOAD_TYPE)
    with pytest.raises(SignatureInvalid):
        verify_provenance(public, forged, signed[2].manifest_envelope, checkpoint)
    # An extra signature by another key does not hide the platform key's.
    both = {**signed[2].statement_envelope,
            "signatures": resigned["signatures"] + signed[2].statement_envelope["signatures"]}
    assert verify_envelope(both, public, IN_TOTO_PAYLOAD_TYPE) == payload


@pytest.mark.parametrize("mangle", [
    lambda e: "{not json",
    lambda e: b"\xff\xfe",
    lambda e: json.dumps(e).replace('"payloadType"', '"payloadType": "x", "payloadType"', 1),
    lambda e: [e],
    lambda e: {k: v for k, v in e.items() if k != "signatures"},
    lambda e: {**e, "signatures": []},
    lambda e: {**e, "signatures": [{"keyid": e["signatures"][0]["keyid"]}]},
    lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": "not base64!"}]},
    lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": e["signatures"][0]["sig"][:-4]}]},
    lambda e: {**e, "signatures": [{**e["signatures"][0], "keyid": 7}]},
    lambda e: {**e, "signatures": [{**e["signatures"][0], "cert": "x"}]},
    lambda e: {**e, "payload": "@@@"},
    lambda e: {**e, "payload": None},
    lambda e: {**e, "extra": "unsigned"},
], ids=["json", "bytes", "duplicate-key", "list", "no-signatures", "empty-signatures", "no-sig", "sig-base64",
        "short-sig", "keyid-type", "unknown-signature-field", "payload-base64", "payload-type", "unknown-field"])
def test_malformed_envelope_is_refused_as_signature_invalid(ws, signed, mangle):
    with pytest.raises(SignatureInvalid):
        verify_envelope(mangle(copy.deepcopy(signed[2].manifest_envelope)), PLATFORM_KEY.public_key(ws),
                        MANIFEST_PAYLOAD_TYPE)


def test_changed_checkpoint_file_is_refused_naming_it(ws, checkpoint, signed):
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch) as refused:
        verify_provenance(PLATFORM_KEY.public_key(ws), signed[2].statement_envelope, signed[2].manifest_envelope,
                          checkpoint)
    assert refused.value.file == "model.safetensors"
    assert refused.value.actual == hashlib.sha256(bytes(data)).hexdigest()
    assert "changed: model.safetensors" in refused.value.message


def test_added_checkpoint_file_is_refused_naming_it(ws, checkpoint, signed):
    (checkpoint / "sub").mkdir()
    (checkpoint / "sub" / "extra.safetensors").write_bytes(b"smuggled")
    with pytest.raises(DigestMismatch) as refused:
        verify_provenance(PLATFORM_KEY.public_key(ws), signed[2].statement_envelope, signed[2].manifest_envelope,
                          checkpoint)
    assert refused.value.file == "sub/extra.safetensors"
    assert "added: sub/extra.safetensors" in refused.value.message


def test_removed_checkpoint_file_is_refused_naming_it(ws, checkpoint, signed):
    (checkpoint / "generation_config.json").unlink()
    with pytest.raises(DigestMismatch) as refused:
        verify_provenance(PLATFORM_KEY.public_key(ws), signed[2].statement_envelope, signed[2].manifest_envelope,
                          checkpoint)
    assert refused.value.file == "generation_config.json"
    assert "missing: generation_config.json" in refused.value.message


def test_envelopes_of_different_checkpoints_do_not_pair(ws, files, checkpoint, signed):
    facts, _, first = signed
    other_folder = files.folder("ckpt2", tiny_checkpoint_files(seed=1))
    other_manifest = build_manifest(other_folder)
    second = sign_provenance(ws, facts, other_manifest.to_document(), other_manifest.digest)
    public = PLATFORM_KEY.public_key(ws)
    with pytest.raises(ProvenanceInvalid, match="different checkpoints"):
        verify_provenance(public, first.statement_envelope, second.manifest_envelope, other_folder)
    with pytest.raises(ProvenanceInvalid, match="different checkpoints"):
        verify_provenance(public, second.statement_envelope, first.manifest_envelope, checkpoint)
    assert verify_provenance(public, second.statement_envelope, second.manifest_envelope, other_folder)


def test_statement_refuses_a_manifest_of_another_checkpoint(checkpoint):
    manifest = build_manifest(checkpoint)
    with pytest.raises(DigestMismatch, match="different checkpoints"):
        provenance_statement(_facts(), manifest.to_document(), _sha("another checkpoint"))
    with pytest.raises(BadInput, match="not a files manifest"):
        provenance_statement(_facts(), {"files": []}, manifest.digest)


# --- the facts -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"run_id": "not-a-uuid"}, "run_id must be a UUID"),
    ({"run_id": str(uuid.uuid4()).upper()}, "canonical form"),
    ({"actor": ""}, "actor must be a non-empty string"),
    ({"decision_id": "   "}, "decision_id must be a non-empty string"),
    ({"policy_digest": "sha256:abc"}, "policy_digest"),
    ({"recipe_digest": _sha("something else")}, "recipe document hashes to"),
    ({"base": {"label": "checkpoint/ref-post@1", "digest": _sha("b"), "stage": "post"}}, "unknown: stage"),
    ({"base": {"label": "", "digest": _sha("b")}}, "base.label"),
    ({"datasets": []}, "every dataset"),
    ({"datasets": [{"label": "dataset/claims@1", "digest": _sha("c"), "role": "proprietary", "share": 1.5}]},
     r"share must be a number in \(0, 1\]"),
    ({"realised_tokens": {"dataset/claims@1": 10}}, "a count for each dataset label"),
    ({"realised_tokens": {"dataset/claims@1": True, "dataset/chat-safety@1": 1}}, "integer ≥ 0"),
    ({"code": {"forgegov": "0.1.0"}}, "code_digest"),
    ({"code": {"forgegov": "0.1.0", "code_digest": "md5:00"}}, "code.code_digest"),
    ({"code": {"forgegov": None, "code_digest": _sha("code")}}, r"code\['forgegov'\]"),
    ({"code": {"forgegov": "0.1.0", "code_digest": _sha("code"), "torch": ""}}, r"code\['torch'\]"),
    ({"started_at": "yesterday"}, "RFC 3339"),
    ({"started_at": "2025-03-01T10:00:00"}, "RFC 3339"),
    ({"finished_at": "2025-03-01T09:00:00Z"}, "before started_at"),
])
def test_run_facts_are_validated(changes, message):
    with pytest.raises(BadInput, match=message):
        _facts(**changes)


def test_run_facts_keep_their_own_copies():
    tokens = {"dataset/claims@1": 3840, "dataset/chat-safety@1": 1280}
    facts = _facts(realised_tokens=tokens)
    tokens["dataset/claims@1"] = 1
    assert facts.realised_tokens["dataset/claims@1"] == 3840
    with pytest.raises(AttributeError):
        facts.actor = "mallory"  # type: ignore[misc]


# --- the platform key ----------------------------------------------------------------------------------------------

def test_platform_key_is_created_at_init_private_and_pinned(ws):
    path = ws.root / "keys" / "platform.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pinned = tomllib.loads((ws.root / CONFIG_FILE).read_text())["provenance"]["public_key"]
    key = PLATFORM_KEY.load(load_workspace(ws.root))
    assert base64.b64encode(raw_public_key(key.public_key())).decode() == pinned
    assert raw_public_key(PLATFORM_KEY.public_key(ws)) == raw_public_key(key.public_key())
    # Not the audit log's key: each service key signs one kind of thing.
    assert (ws.root / "keys" / "log.key").read_bytes() != path.read_bytes()


def test_replaced_platform_key_is_refused(ws, checkpoint):
    path = PLATFORM_KEY.path(ws)
    path.unlink()
    PLATFORM_KEY.write_new(ws)  # another key, encrypted as the real one is, where the pinned one was
    with pytest.raises(ServiceKeyMismatch) as refused:
        PLATFORM_KEY.load(ws)
    assert "restore the original key" in (refused.value.hint or "")
    manifest = build_manifest(checkpoint)
    with pytest.raises(ServiceKeyMismatch):
        sign_provenance(ws, _facts(), manifest.to_document(), manifest.digest)
    path.unlink()
    with pytest.raises(KeyUnavailable, match="missing"):
        PLATFORM_KEY.load(ws)


def _make_old_style(ws) -> None:
    """As a workspace created before provenance: no [provenance] in forgegov.toml and no platform key."""
    config = ws.root / CONFIG_FILE
    doc = tomllib.loads(config.read_text())
    del doc["provenance"]
    config.write_text(tomli_w.dumps(doc))
    PLATFORM_KEY.path(ws).unlink()


def test_ensure_platform_key_upgrades_an_old_workspace_once(ws, checkpoint):
    _make_old_style(ws)
    mode = stat.S_IMODE(os.stat(ws.root / CONFIG_FILE).st_mode)
    old = load_workspace(ws.root)
    assert old.config.provenance.public_key == ""
    with pytest.raises(KeyUnavailable, match="pins no platform key"):
        PLATFORM_KEY.load(old)
    upgraded = PLATFORM_KEY.ensure(old)
    assert upgraded.config.provenance.public_key
    assert upgraded.config.audit == old.config.audit  # the rest of the configuration is kept
    assert stat.S_IMODE(os.stat(PLATFORM_KEY.path(ws)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ws.root / CONFIG_FILE).st_mode) == mode
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".forgegov.toml.")] == []
    reloaded = load_workspace(ws.root)
    assert reloaded.config == upgraded.config
    key = PLATFORM_KEY.load(reloaded)
    manifest = build_manifest(checkpoint)
    provenance = sign_provenance(reloaded, _facts(), manifest.to_document(), manifest.digest)
    assert verify_provenance(key.public_key(), provenance.statement_envelope, provenance.manifest_envelope,
                             checkpoint)["_type"] == STATEMENT_TYPE
    # Already pinned: nothing changes, the key is not replaced.
    before = PLATFORM_KEY.path(ws).read_bytes()
    assert PLATFORM_KEY.ensure(reloaded).config == reloaded.config
    assert PLATFORM_KEY.path(ws).read_bytes() == before


def test_ensure_platform_key_refuses_an_unpinned_key_file(ws):
    _make_old_style(ws)
    stray = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    PLATFORM_KEY.path(ws).write_bytes(stray)
    with pytest.raises(ServiceKeyMismatch, match="pins no platform key"):
        PLATFORM_KEY.ensure(load_workspace(ws.root))
    assert PLATFORM_KEY.path(ws).read_bytes() == stray
    assert "provenance" not in tomllib.loads((ws.root / CONFIG_FILE).read_text())


def test_provenance_config_round_trips_and_refuses_unknown_keys(ws):
    assert WorkspaceConfig.from_toml(tomllib.loads(tomli_w.dumps(ws.config.to_toml()))) == ws.config
    config = ws.root / CONFIG_FILE
    text = config.read_text()
    config.write_text(text.replace("[provenance]\n", "[provenance]\nkey_file = \"elsewhere.key\"\n"))
    with pytest.raises(ConfigError, match="key_file"):
        load_workspace(ws.root)
    for bad in ('"not base64!"', '"' + base64.b64encode(b"short").decode() + '"', "3"):
        doc = tomllib.loads(text)
        config.write_text(tomli_w.dumps(doc).replace(f'public_key = "{doc["provenance"]["public_key"]}"',
                                                     f"public_key = {bad}"))
        with pytest.raises(ConfigError, match="provenance.public_key"):
            load_workspace(ws.root)
    with pytest.raises(ConfigError):
        replace(ws.config.provenance, public_key="AAAA")
