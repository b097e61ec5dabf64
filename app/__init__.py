"""forgegov app: the command line, the demo, workspace creation and the orchestration of a run start.

The top layer: it wires governance to the training backends and evaluation; nothing imports it.
"""
