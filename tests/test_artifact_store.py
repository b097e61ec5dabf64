"""The content-addressed artifact store, on a local folder and on a real S3-compatible object store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from forgegov.foundation.artifact_store import S3Backend, artifact_store, folder_store
from forgegov.foundation.config import ArtifactsConfig, ConfigError, Workspace, WorkspaceConfig
from forgegov.foundation.errors import BadInput, DigestMismatch, NotFound, StateConflict
from tests.s3_support import make_bucket, object_store

DATA = bytes(range(256)) * 40  # 10,240 bytes
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The store, and a function that changes a stored blob's bytes behind its back (a disk fault, an edit)."""
    if request.param == "folder":
        built = folder_store(tmp_path / "store")

        def corrupt(digest: str) -> None:
            path = tmp_path / "store" / "blobs" / "sha256" / digest[7:9] / digest[7:]
            path.chmod(0o644)
            path.write_bytes(path.read_bytes()[:-1] + b"\x00")

        yield built, corrupt
        return
    with object_store(tmp_path / "s3", monkeypatch) as s3:
        make_bucket(s3, "models")
        workspace = Workspace(tmp_path / "server", WorkspaceConfig(artifacts=ArtifactsConfig(
            backend="s3", s3_bucket="models", s3_endpoint=s3.endpoint)))
        built = artifact_store(workspace)
        assert isinstance(built.backend, S3Backend)

        def corrupt(digest: str) -> None:
            path = s3.object_path("models", f"forgegov/sha256/{digest[7:]}")
            path.write_bytes(path.read_bytes()[:-1] + b"\x00")

        yield built, corrupt


def test_a_blob_is_stored_whole_after_its_bytes_verify(store) -> None:  # type: ignore[no-untyped-def]
    artifacts, _corrupt = store
    state = artifacts.begin(DIGEST, len(DATA))
    assert (state.received, artifacts.has(DIGEST)) == (0, None)
    artifacts.write(DIGEST, 0, DATA[:4000])
    # A dropped connection: the uploader asks again and resumes where the store stopped.
    assert artifacts.begin(DIGEST, len(DATA)).received == 4000
    with pytest.raises(StateConflict, match="has 4000 of"):
        artifacts.finish(DIGEST)
    with pytest.raises(StateConflict) as overlap:
        artifacts.write(DIGEST, 3000, DATA[3000:5000])
    assert overlap.value.hint == "resume from byte 4000"
    with pytest.raises(BadInput, match="declared 10240 bytes"):
        artifacts.write(DIGEST, 4000, DATA[4000:] + b"extra")
    assert artifacts.has(DIGEST) is None  # nothing visible until it is whole and verified
    artifacts.write(DIGEST, 4000, DATA[4000:])
    assert artifacts.finish(DIGEST).complete
    assert artifacts.has(DIGEST) == len(DATA)
    assert b"".join(artifacts.read_verified(DIGEST)) == DATA
    # Storing the same bytes again sends nothing.
    assert artifacts.begin(DIGEST, len(DATA)).complete


def test_bytes_that_do_not_hash_to_the_digest_are_discarded(store) -> None:  # type: ignore[no-untyped-def]
    artifacts, _corrupt = store
    artifacts.begin(DIGEST, 3)
    artifacts.write(DIGEST, 0, b"abc")
    with pytest.raises(DigestMismatch, match="discarded"):
        artifacts.finish(DIGEST)
    assert artifacts.has(DIGEST) is None
    with pytest.raises(NotFound):
        artifacts.finish(DIGEST)
    with pytest.raises(BadInput, match="not a digest"):
        artifacts.begin("sha256:../../etc/passwd", 3)


def test_a_blob_changed_after_receipt_is_refused_when_read(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    artifacts, corrupt = store
    source = tmp_path / "shard.bin"
    source.write_bytes(DATA)
    assert artifacts.put_file(source) == DIGEST
    corrupt(DIGEST)
    with pytest.raises(DigestMismatch, match="changed after it was received"):
        b"".join(artifacts.read_verified(DIGEST))


def test_the_s3_backend_needs_a_bucket_and_an_http_endpoint() -> None:
    with pytest.raises(ConfigError, match="needs artifacts.s3_bucket"):
        ArtifactsConfig(backend="s3")
    with pytest.raises(ConfigError, match="http"):
        ArtifactsConfig(backend="s3", s3_bucket="b", s3_endpoint="ftp://x")


def test_a_received_manifest_names_each_file_once_inside_its_folder() -> None:
    """What a server assembles a folder from: no path twice, none outside, none inside another named as a file (the
    folder could not hold both: an untyped error half-way through writing it), and a policy bundle's prefixed hashes
    read as the others'."""
    from forgegov.foundation.manifest import file_entries

    h = "ab" * 32
    assert [e.sha256 for e in file_entries({"files": [{"path": "a", "size": 1, "sha256": f"sha256:{h}"}]})] == [h]
    for files, message in (
            ([{"path": "a", "size": 1, "sha256": h}, {"path": "a/b", "size": 1, "sha256": h}], "inside a path"),
            ([{"path": "a", "size": 1, "sha256": h}, {"path": "a", "size": 2, "sha256": h}], "names a file twice"),
            ([{"path": "../x", "size": 1, "sha256": h}], "would leave its folder")):
        with pytest.raises(BadInput, match=message):
            file_entries({"files": files})
