"""forgegov training: backends that only train (CPT/SFT on TRL), the mixture, and the reference model family."""
