"""forgegov foundation: errors, configuration, canonical bytes, the vocabulary, crypto and the store.

The bottom layer: it imports no other forgegov package, and every other package may import it.
"""
