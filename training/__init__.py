"""forgegov training: the reference model family, recipes, governed runs on TRL, and their signed provenance."""
