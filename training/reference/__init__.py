"""The reference model family: three staged checkpoints (pre-, mid-, post-training) of a tiny Llama-style model,
built on this machine from text it already has plus text the project generates. `build.build_reference` makes it;
`forgegov reference build` is the command."""
