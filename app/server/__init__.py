"""The team server: it owns the store, the audit log and its key, the policies and the artifacts; members only sign."""
