"""forgegov audit: the append-only log every state change writes through."""
