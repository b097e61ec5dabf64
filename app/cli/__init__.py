"""The `forgegov` command line: one module per command group, each thin over the layers below."""
