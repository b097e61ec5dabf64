"""Running code that is not forgegov's (reward functions, environments) outside the trainer's process, contained:
`isolation` builds the sandbox, `pool` keeps its workers and judges every reply."""
