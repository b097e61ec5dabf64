"""Signatures, identity keys, service keys and DSSE envelopes: the cryptography every layer above shares."""
