"""The verified-loading doors: data, checkpoints and reward code reach any consumer only through these, re-hashed
against the digest the gate approved."""
