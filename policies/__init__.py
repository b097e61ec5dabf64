"""The Rego policy bundle, shipped as package data; see the folders beside this file."""
