"""forgegov evaluation: behavioural-drift evaluation that the promotion gate reads (issue 13; the paired statistics
first, in `statistics.py`)."""
