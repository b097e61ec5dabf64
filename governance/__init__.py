"""forgegov governance: workspace, identities, registry, the gate transaction, OPA."""
