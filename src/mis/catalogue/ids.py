"""Catalogue ids as they arrive in URLs: ASCII digits only, no more than a bigint holds.

``str.isdigit`` also takes superscripts and other scripts' digits, which ``int`` then
refuses or reads (``items/3_6`` = 36, Arabic-Indic digits): one non-canonical spelling of an
id must not resolve to a record. Every route that takes an id from its path uses this.
"""

from __future__ import annotations

import re
from typing import Any

ID_DIGITS = re.compile(r"[0-9]{1,18}")


def positive_id(text: str) -> int | None:
    """The id ``text`` spells canonically, or None when it is no positive catalogue id."""
    return int(text) if ID_DIGITS.fullmatch(text) and int(text) > 0 else None


_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")


def bigint(value: Any) -> int:
    """``value`` as a PostgreSQL bigint (ValueError if it is not an integer in range).

    Only canonical spellings: ASCII digits, an optional minus. Python's ``int`` also
    reads ``3_6`` (36), Arabic-Indic or full-width digits and surrounding blanks, which
    would make one record answer to many URLs."""
    text = str(value)
    if not _ASCII_INTEGER.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not an integer (ASCII digits, at most 19)")
    number = int(text)
    if not -2 ** 63 <= number < 2 ** 63:
        raise ValueError(f"{value!r} is out of the bigint range")
    return number
