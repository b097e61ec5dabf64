"""Train/eval contamination by word n-gram overlap.

An eval item counts as contaminated when any of its word n-grams (13 by default, the size GPT-3's and later
decontamination studies used) also occurs in the training text. A text shorter than n words is one n-gram of its own
length on both sides, so a short eval prompt that also appears as a short training record is still caught; a short
prompt appearing only inside a long training passage is not (that would need every shorter window indexed). N-grams are kept as 8-byte BLAKE2b
hashes: memory stays proportional to the training text, and the index never holds the text itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"\w+")
DEFAULT_N = 13


def _hash(words: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest(), "big")


def shingles(text: str, n: int = DEFAULT_N) -> Iterator[int]:
    words = _WORD.findall(text.lower())
    if not words:
        return
    if len(words) < n:
        yield _hash(words)
        return
    for start in range(len(words) - n + 1):
        yield _hash(words[start:start + n])


@dataclass
class NgramIndex:
    n: int = DEFAULT_N
    grams: set[int] = field(default_factory=set)

    def add(self, text: str) -> None:
        self.grams.update(shingles(text, self.n))

    def add_all(self, texts: Iterable[str]) -> NgramIndex:
        for text in texts:
            self.add(text)
        return self

    def overlaps(self, text: str) -> bool:
        return any(gram in self.grams for gram in shingles(text, self.n))


@dataclass
class ContaminationReport:
    items: int = 0
    contaminated: int = 0
    sample_locations: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.contaminated / self.items if self.items else 0.0

    def to_evidence(self) -> dict[str, Any]:
        return {"items": self.items, "contaminated": self.contaminated, "rate": self.rate,
                "sample_locations": list(self.sample_locations)}


def check(items: Iterable[tuple[str, str]], index: NgramIndex, max_samples: int = 5) -> ContaminationReport:
    """`items` are (location, text) pairs from the eval side; `index` holds the training side."""
    report = ContaminationReport()
    for location, text in items:
        report.items += 1
        if index.overlaps(text):
            report.contaminated += 1
            if len(report.sample_locations) < max_samples:
                report.sample_locations.append(location)
    return report
