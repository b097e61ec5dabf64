"""Data-quality suites, one per dataset kind, versioned and digested (shipped as package data)."""
