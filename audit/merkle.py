"""RFC 6962 / RFC 9162 Merkle tree arithmetic: root, inclusion and consistency proofs, and their verification.

Proof generation works on *perfect subtrees* addressed as (level, index): the node covering leaves
[index·2^level, (index+1)·2^level). RFC 6962 splits every range at the largest power of two below its size, so each
range it ever hashes is either such a perfect subtree or splits into one on the left and a smaller range on the
right. A root or proof therefore needs O(log n) stored nodes for its perfect parts (at most O(log² n) in all),
which callers fetch in one batch: `needed_nodes` lists them, the `*_from_nodes` functions assemble the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from forgegov.audit.hashing import node_hash
from forgegov.foundation.errors import ForgegovError

Node = tuple[int, int]
EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


class ProofError(ForgegovError):
    exit_code = 1


def split_point(size: int) -> int:
    """The largest power of two strictly below `size` (size ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _perfect(start: int, end: int) -> Node | None:
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return size.bit_length() - 1, start // size
    return None


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees whose hashes make up MTH(D[start:end])."""
    nodes: list[Node] = []
    while True:
        node = _perfect(start, end)
        if node is not None:
            nodes.append(node)
            return nodes
        k = split_point(end - start)
        nodes.append(_perfect(start, start + k) or _unreachable(start, end))
        start += k


def _unreachable(start: int, end: int) -> Node:
    raise ProofError(f"range [{start}, {end}) is not one RFC 6962 ever hashes")


def range_hash(start: int, end: int, node: Callable[[int, int], bytes]) -> bytes:
    if end <= start:
        raise ProofError(f"empty range [{start}, {end})")
    parts = [node(level, index) for level, index in range_nodes(start, end)]
    result = parts[-1]
    for left in reversed(parts[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(index, D[0:size]) as leaf ranges, bottom-up (RFC 6962 §2.1.1)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return list(reversed(ranges))


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """PROOF(old_size, D[0:new_size]) as leaf ranges, bottom-up (RFC 6962 §2.1.2)."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        ranges.append((start, end))
    return list(reversed(ranges))


def needed_nodes(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    return {node for start, end in ranges for node in range_nodes(start, end)}


def hashes_from_nodes(ranges: Sequence[tuple[int, int]], nodes: Mapping[Node, bytes]) -> list[bytes]:
    def lookup(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError as exc:
            raise ProofError(f"the log is missing its stored node ({level}, {index})") from exc

    return [range_hash(start, end, lookup) for start, end in ranges]


def _check_hashes(*hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a hash of {len(value)} bytes where SHA-256 gives {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2. Raises ProofError unless `proof` shows leaf `index` in the tree of `size` with `root`."""
    if index >= size or index < 0:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes(leaf, root, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2. Raises ProofError unless the tree of `old_size` is a prefix of the tree of `new_size`."""
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("roots differ for the same tree size")
        return
    _check_hashes(old_root, new_root, *proof)
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
