"""forgegov training: governed runs from staged checkpoints (issue 5 builds it; nothing here yet)."""
