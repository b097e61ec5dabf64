"""Migrations, oldest first. Each is frozen: it carries the code it needs and imports nothing of forgegov's that may change."""
