"""Signatures are bound to their purpose and to canonical bytes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forgegov.foundation.canonical import canonical_bytes, digest_of
from forgegov.foundation.crypto.signing import Purpose, sign, verify
from forgegov.foundation.errors import SignatureInvalid


def test_signature_for_one_purpose_never_verifies_for_another():
    key = Ed25519PrivateKey.generate()
    payload = {"subject": "sha256:" + "0" * 64, "n": 1}
    signature = sign(key, Purpose.GATE_ACTION, payload)
    verify(key.public_key(), Purpose.GATE_ACTION, payload, signature)
    for other in Purpose:
        if other is not Purpose.GATE_ACTION:
            with pytest.raises(SignatureInvalid):
                verify(key.public_key(), other, payload, signature)


def test_key_order_does_not_change_bytes_but_values_do():
    assert canonical_bytes({"b": 1, "a": [1, "x"]}) == canonical_bytes({"a": [1, "x"], "b": 1}) == b'{"a":[1,"x"],"b":1}'
    assert digest_of({"a": 1}) != digest_of({"a": 2})


def test_garbage_signature_is_refused():
    key = Ed25519PrivateKey.generate()
    with pytest.raises(SignatureInvalid, match="base64"):
        verify(key.public_key(), Purpose.GATE_ACTION, {}, "not base64!!")
    with pytest.raises(SignatureInvalid):
        verify(key.public_key(), Purpose.GATE_ACTION, {}, "AAAA")
