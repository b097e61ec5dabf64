"""Which backend trains which method: the one table the bookkeeping (`execute_run`) is handed."""

from __future__ import annotations

from forgegov.governance.runs.lifecycle import Backend
from forgegov.governance.runs.recipe import Method
from forgegov.training import backend, grpo

# The bookkeeping refuses a recipe whose method has no row.
BACKENDS: dict[Method, Backend] = {
    Method.CPT: Backend(preflight=backend.preflight, train=backend.train),
    Method.SFT: Backend(preflight=backend.preflight, train=backend.train),
    Method.GRPO: Backend(preflight=grpo.grpo_preflight, train=grpo.train),
}
