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


# A card candidate is digits, spaces and hyphens only, starting with a digit, 13 digits at least; so it lies inside one
# maximal run like this. Running the candidate pattern only over such runs finds the same matches (the characters
# either side of a run are not digits, which is all the candidate's look-arounds ask) without trying every position.
_CARD_RUN = re.compile(r"\d[\d -]{12,}")


def _cards(text: str) -> int:
    count = 0
    for run in _CARD_RUN.finditer(text):
        count += _cards_in(text, run.start(), run.end())
    return count


def _cards_in(text: str, start: int, end: int) -> int:
    count = 0
    for match in _CARD_CANDIDATE.finditer(text, start, end):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            count += 1
    return count


# Pre-filters: cheap necessary conditions, checked before a pattern runs, so that text which cannot match skips the
# pattern (Python's `re` tries most of these patterns at every position). Each is implied by every match of its
# pattern, so skipping never changes a count; tests/test_sensitive_scan.py compares against the unfiltered patterns.
_DIGIT = re.compile(r"\d")  # the same Unicode digits that `\d` matches in the patterns above
_API_KEY_MARKERS = ("AKIA", "ASIA", "_", "xox", "AIza", "sk-", "glpat-")  # one is in every alternative
_PHONE_NANP_HINT = re.compile(r"\d{3}\)?[ .-]\d{3}[ .-]\d{4}")  # the second alternative, without its boundaries
_NATIONAL_ID_HINT = re.compile(r"\d\d(?:\d-\d\d-\d{4}| ?\d\d ?\d\d ?[A-D])")  # both alternatives' digits
_ASCII_DIGITS = "0123456789"


def _digit_count(text: str) -> int:
    if text.isascii():
        return sum(map(text.count, _ASCII_DIGITS))
    return len(_DIGIT.findall(text))


def find(text: str) -> Counter[Finding]:
    """How many of each kind of sensitive value `text` holds."""
    found: Counter[Finding] = Counter()
    if "@" in text:
        hits = len(_EMAIL.findall(text))
        if hits:
            found[Finding.EMAIL] = hits
    digits = _digit_count(text)
    # A national id holds at least 6 digits (UK) or 9 (US), a phone at least 7 after a '+' or 10 otherwise, and a
    # card candidate at least 13.
    if digits >= 6 and _NATIONAL_ID_HINT.search(text):
        hits = len(_NATIONAL_ID.findall(text))
        if hits:
            found[Finding.NATIONAL_ID] = hits
    if any(marker in text for marker in _API_KEY_MARKERS):
        hits = len(_API_KEY.findall(text))
        if hits:
            found[Finding.API_KEY] = hits
    if "-----BEGIN " in text:
        hits = len(_PRIVATE_KEY.findall(text))
        if hits:
            found[Finding.PRIVATE_KEY] = hits
    if (digits >= 7 and "+" in text) or (digits >= 10 and _PHONE_NANP_HINT.search(text)):
        hits = len(_PHONE.findall(text))
        if hits:
            found[Finding.PHONE] = hits
    if digits >= 13:
        cards = _cards(text)
        if cards:
            found[Finding.PAYMENT_CARD] = cards
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
        self.add_findings(location, find(text))

    def add_findings(self, location: str, findings: Counter[Finding]) -> None:
        """Count one record whose text `find` has already scanned (so the text is not scanned twice)."""
        self.records += 1
        for kind, hits in findings.items():
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
