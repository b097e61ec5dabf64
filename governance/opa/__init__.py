"""OPA: finding the pinned binary, supervising a local server, and asking it for decisions."""
