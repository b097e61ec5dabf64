"""Finding personal data and secrets in text, reporting where and how often — never what.

A finding is a category and a location (file, line). Values never leave this module: summaries go into OPA input
and the audit log, and a gate's evidence must not become a second copy of the data it guards.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Finding(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    PAYMENT_CARD = "payment-card"
    NATIONAL_ID = "national-id"
    API_KEY = "api-key"
    PRIVATE_KEY = "private-key"


PII = frozenset({Finding.EMAIL, Finding.PHONE, Finding.PAYMENT_CARD, Finding.NATIONAL_ID})
SECRETS = frozenset({Finding.API_KEY, Finding.PRIVATE_KEY})

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b")
# International numbers with a leading +, or North American numbers written with separators; bare digit runs are
# left to the card check, so that part numbers and timestamps do not count as phones.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}"
                    r"|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b)")
_CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# US social security numbers (never 000/666/9xx areas, 00 groups or 0000 serials) and UK national insurance numbers.
_NATIONAL_ID = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"
                          r"|\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_API_KEY = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"                  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b"             # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,72}\b"            # Slack tokens
    r"|\bAIza[0-9A-Za-z_-]{35}\b"                     # Google API keys
    r"|\bsk-(?:proj-|live_|test_)?[A-Za-z0-9_-]{20,}\b"  # OpenAI / Stripe style secret keys
    r"|\bglpat-[A-Za-z0-9_-]{20}\b"                   # GitLab personal access tokens
)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _cards(text: str) -> int:
    count = 0
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            count += 1
    return count


def find(text: str) -> Counter[Finding]:
    """How many of each kind of sensitive value `text` holds."""
    found: Counter[Finding] = Counter()
    for kind, pattern in ((Finding.EMAIL, _EMAIL), (Finding.NATIONAL_ID, _NATIONAL_ID), (Finding.API_KEY, _API_KEY),
                          (Finding.PRIVATE_KEY, _PRIVATE_KEY), (Finding.PHONE, _PHONE)):
        hits = len(pattern.findall(text))
        if hits:
            found[kind] += hits
    cards = _cards(text)
    if cards:
        found[Finding.PAYMENT_CARD] += cards
    return found


@dataclass
class ScanSummary:
    """Counts, rates and a few locations per category; the shape the data-quality evidence carries."""

    records: int = 0
    counts: Counter[Finding] = field(default_factory=Counter)
    records_with: Counter[Finding] = field(default_factory=Counter)
    samples: dict[Finding, list[str]] = field(default_factory=dict)
    max_samples: int = 5

    def add(self, location: str, text: str) -> None:
        self.records += 1
        for kind, hits in find(text).items():
            self.counts[kind] += hits
            self.records_with[kind] += 1
            samples = self.samples.setdefault(kind, [])
            if len(samples) < self.max_samples:
                samples.append(location)

    def to_evidence(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "findings": {
                kind.value: {
                    "count": self.counts[kind],
                    "records": self.records_with[kind],
                    "rate": self.records_with[kind] / self.records if self.records else 0.0,
                    "sample_locations": list(self.samples.get(kind, [])),
                    "category": "pii" if kind in PII else "secret",
                }
                for kind in Finding
            },
        }
