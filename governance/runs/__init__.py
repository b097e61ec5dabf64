"""Run specs and their gate: the recipe as a registered asset, the evidence the run gate reads, and the plan it pins."""
