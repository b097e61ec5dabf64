"""Dataset intake: what a dataset's bytes are, checked while they are hashed (issue 4 builds the quality gate on it)."""
