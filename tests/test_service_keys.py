"""One service-key class for the audit log key and the platform key: the same guarantees hold for both."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tomllib

import pytest
import tomli_w

from forgegov.app.workspace import init_workspace
from forgegov.audit.log_key import LOG_KEY, load_log_key
from forgegov.foundation.config import CONFIG_FILE, load_workspace
from forgegov.foundation.errors import AlreadyExists, KeyUnavailable, ServiceKeyMismatch
from forgegov.governance.runs.provenance import PLATFORM_KEY

KEYS = {"log": (LOG_KEY, "audit", "log_public_key"), "platform": (PLATFORM_KEY, "provenance", "public_key")}


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def _unpin(ws, section: str, field: str) -> None:
    path = ws.root / CONFIG_FILE
    doc = tomllib.loads(path.read_text())
    doc[section][field] = ""
    path.write_text(tomli_w.dumps(doc))


@pytest.mark.parametrize("which", sorted(KEYS))
def test_key_files_are_private_and_pinned(ws, which):
    key, _, _ = KEYS[which]
    assert stat.S_IMODE(os.stat(key.path(ws)).st_mode) == 0o600
    assert key.load(ws).public_key().public_bytes_raw() == key.public_key(ws).public_bytes_raw()


@pytest.mark.parametrize("which", sorted(KEYS))
def test_a_key_file_replaced_by_a_link_is_not_followed(ws, tmp_path, which):
    key, _, _ = KEYS[which]
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_bytes(key.path(ws).read_bytes())
    key.path(ws).unlink()
    key.path(ws).symlink_to(elsewhere)
    with pytest.raises(KeyUnavailable, match="cannot read"):
        key.load(ws)


@pytest.mark.parametrize("which", sorted(KEYS))
def test_ensure_refuses_a_planted_link_and_writes_nothing_through_it(ws, tmp_path, which):
    # An insider plants keys/<name> as a link to a file of their choosing, hoping the next upgrade writes the new
    # private key where they can read it.
    key, section, field = KEYS[which]
    key.path(ws).unlink()
    _unpin(ws, section, field)
    target = tmp_path / "stolen.pem"
    key.path(ws).symlink_to(target)
    with pytest.raises(ServiceKeyMismatch, match="unknown origin"):
        key.ensure(load_workspace(ws.root))
    assert not target.exists()
    with pytest.raises(AlreadyExists):
        key.write_new(load_workspace(ws.root))
    assert not target.exists()


@pytest.mark.parametrize("which", sorted(KEYS))
def test_ensure_pins_a_new_key_atomically_and_keeps_other_settings(ws, which):
    key, section, field = KEYS[which]
    key.path(ws).unlink()
    _unpin(ws, section, field)
    before = load_workspace(ws.root).config
    upgraded = key.ensure(load_workspace(ws.root))
    assert getattr(getattr(upgraded.config, section), field)
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".forgegov.toml.")] == []
    assert load_workspace(ws.root).config == upgraded.config
    others = {name for name in ("store", "opa", "paths", "audit", "provenance") if name != section}
    assert all(getattr(upgraded.config, name) == getattr(before, name) for name in others)
    key.load(upgraded)


def test_log_origin_follows_the_log_key(ws):
    _unpin(ws, "audit", "log_public_key")
    LOG_KEY.path(ws).unlink()
    upgraded = LOG_KEY.ensure(load_workspace(ws.root))
    assert upgraded.config.audit.origin != ws.config.audit.origin
    assert load_log_key(upgraded).origin == upgraded.config.audit.origin


@pytest.mark.parametrize("which", sorted(KEYS))
def test_a_copy_of_the_workspace_holds_only_ciphertext(ws, tmp_path, monkeypatch, which):
    # The attack: someone who can read the workspace (a copy, a backup, a shared folder) takes keys/ and signs tree
    # heads or provenance with it. The file holds no key they can use without the service passphrase.
    from forgegov.foundation.crypto import service_key

    key, _, _ = KEYS[which]
    stored = key.path(ws).read_bytes()
    assert b"PRIVATE KEY" not in stored and json.loads(stored)["cipher"]["name"] == "aes-256-gcm"
    copy = tmp_path / "copy"
    shutil.copytree(ws.root, copy)
    monkeypatch.setattr(service_key, "_UNLOCKED", {})  # a fresh process
    monkeypatch.setenv("FORGEGOV_SERVICE_PASSPHRASE", "a guess of the passphrase")
    with pytest.raises(KeyUnavailable, match="does not open with the service passphrase"):
        key.load(load_workspace(copy))


def test_the_service_passphrase_defaults_to_a_private_file_outside_the_workspace(tmp_path, monkeypatch):
    from forgegov.foundation.crypto import service_key

    monkeypatch.delenv("FORGEGOV_SERVICE_PASSPHRASE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ws = init_workspace(tmp_path / "ws")
    secret = tmp_path / "config" / "forgegov" / "service-passphrase"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and not secret.is_relative_to(ws.root)
    monkeypatch.setattr(service_key, "_UNLOCKED", {})
    load_log_key(ws)  # opens with it
    secret.chmod(0o644)
    monkeypatch.setattr(service_key, "_UNLOCKED", {})  # each check below as a fresh process meets it
    with pytest.raises(KeyUnavailable, match="can be read by others"):
        load_log_key(ws)
    secret.unlink()
    with pytest.raises(KeyUnavailable, match="service passphrase file .* is missing"):
        load_log_key(ws)
    monkeypatch.setenv("FORGEGOV_SERVICE_PASSPHRASE_FILE", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").write_text("not it at all\n")
    (tmp_path / "elsewhere").chmod(0o600)
    with pytest.raises(KeyUnavailable, match="does not open with the service passphrase"):
        load_log_key(ws)


def test_an_unencrypted_key_from_an_earlier_forgegov_is_refused(ws, monkeypatch):
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from forgegov.foundation.crypto import service_key

    private = LOG_KEY.load(ws)
    path = LOG_KEY.path(ws)
    path.unlink()
    path.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    monkeypatch.setattr(service_key, "_UNLOCKED", {})
    with pytest.raises(KeyUnavailable, match="stored unencrypted"):
        load_log_key(ws)
