"""forgegov evaluation: behavioural-drift suites that the promotion gate reads (a later issue builds it)."""
