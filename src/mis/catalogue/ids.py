"""Catalogue ids as they arrive in URLs: ASCII digits only, no more than a bigint holds.

``str.isdigit`` also takes superscripts and other scripts' digits, which ``int`` then
refuses or reads (``items/3_6`` = 36, Arabic-Indic digits): one non-canonical spelling of an
id must not resolve to a record. Every route that takes an id from its path uses this.
"""

from __future__ import annotations

import re

ID_DIGITS = re.compile(r"[0-9]{1,18}")


def positive_id(text: str) -> int | None:
    """The id ``text`` spells canonically, or None when it is no positive catalogue id."""
    return int(text) if ID_DIGITS.fullmatch(text) and int(text) > 0 else None
