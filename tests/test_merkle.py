"""Merkle proofs: checked against the public RFC 6962 vectors (when ../shared is present) and a naive reference."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from forgegov.audit.merkle import (
    ProofError,
    consistency_ranges,
    hashes_from_nodes,
    inclusion_ranges,
    needed_nodes,
    range_hash,
    verify_consistency,
    verify_inclusion,
)

from . import merkle_reference as ref
from .conftest import SHARED

VECTORS = SHARED / "vectors" / "rfc6962"


def _cases(kind: str) -> list[Path]:
    if not VECTORS.is_dir():
        return []
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value):
    return base64.b64decode(value) if value else b""


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


@pytest.mark.skipif(not VECTORS.is_dir(), reason="../shared/vectors/rfc6962 is not present")
@pytest.mark.parametrize("case", _cases("inclusion"), ids=_id)
def test_inclusion_vectors(case: Path):
    v = json.loads(case.read_text())
    proof = [_b64(p) for p in v.get("proof") or []]
    call = lambda: verify_inclusion(v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))  # noqa: E731
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


@pytest.mark.skipif(not VECTORS.is_dir(), reason="../shared/vectors/rfc6962 is not present")
@pytest.mark.parametrize("case", _cases("consistency"), ids=_id)
def test_consistency_vectors(case: Path):
    v = json.loads(case.read_text())
    proof = [_b64(p) for p in v.get("proof") or []]
    call = lambda: verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)  # noqa: E731
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


def test_vector_count():
    if not VECTORS.is_dir():
        pytest.skip("../shared/vectors/rfc6962 is not present")
    assert len(_cases("inclusion")) + len(_cases("consistency")) == 196


# RFC 6962's own test leaves (the ones the public vectors are built on), then more to reach odd shapes.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                      "606162636465666768696a6b6c6d6e6f")] + [bytes([i]) * i for i in range(1, 26)]


def _nodes_for(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    nodes = {(0, i): ref.leaf(d) for i, d in enumerate(leaves)}
    level = 0
    while True:
        row = [nodes[(level, i)] for i in range(len(leaves) >> level)]
        if len(row) < 2:
            return nodes
        for i in range(len(row) // 2):
            nodes[(level + 1, i)] = ref.hashlib.sha256(b"\x01" + row[2 * i] + row[2 * i + 1]).digest()
        level += 1


def test_matches_naive_reference_for_every_size_and_index():
    nodes = _nodes_for(LEAVES)
    lookup = lambda level, index: nodes[(level, index)]  # noqa: E731
    for size in range(1, len(LEAVES) + 1):
        leaves = LEAVES[:size]
        root = ref.mth(leaves)
        assert range_hash(0, size, lookup) == root
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            assert needed_nodes(ranges) <= nodes.keys()
            proof = hashes_from_nodes(ranges, nodes)
            assert proof == ref.path(index, leaves)
            verify_inclusion(index, size, ref.leaf(leaves[index]), proof, root)
        for old in range(1, size + 1):
            proof = hashes_from_nodes(consistency_ranges(old, size), nodes)
            assert proof == ref.proof(old, leaves)
            verify_consistency(old, size, ref.mth(LEAVES[:old]), root, proof)


def test_tampered_proofs_fail():
    nodes = _nodes_for(LEAVES)
    root = ref.mth(LEAVES[:20])
    proof = hashes_from_nodes(inclusion_ranges(5, 20), nodes)
    with pytest.raises(ProofError):
        verify_inclusion(6, 20, ref.leaf(LEAVES[5]), proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(5, 20, ref.leaf(LEAVES[5]), proof[:-1], root)
    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    with pytest.raises(ProofError):
        verify_inclusion(5, 20, ref.leaf(LEAVES[5]), bad, root)
    consistency = hashes_from_nodes(consistency_ranges(7, 20), nodes)
    with pytest.raises(ProofError):
        verify_consistency(7, 20, ref.mth(LEAVES[:8]), root, consistency)
    with pytest.raises(ProofError):
        inclusion_ranges(20, 20)
