"""forgegov governance: identities, the registry, the gates and their evidence, OPA and the policy in force, the
verified-loading doors and the bookkeeping of training runs."""
