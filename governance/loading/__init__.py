"""The verified-loading doors: data, checkpoints (and reward code next) reach any consumer only through these, re-hashed
against the digest the gate approved."""
