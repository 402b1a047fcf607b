"""Text folding for search: one definition of "the same letters", used on both sides of a comparison.

``fold`` is applied in Python to a query and, registered as the SQL function
``memtui_fold``, to stored text, so a search matches whatever the case or the
accents: "Émile" finds "emile", "ÖBB" finds "obb", "İstanbul" finds "istanbul",
"STRASSE" finds "Straße", "ΣΩΚΡΑΤΗΣ" finds "Σωκράτης".
"""
from __future__ import annotations

import unicodedata

SQL_NAME = "memtui_fold"
YPOGEGRAMMENI = 0x345  # Greek iota subscript: a combining mark whose capital form is the letter Ι


class _Marks(dict):
    """str.translate table dropping combining marks (but the iota subscript), filled as code
    points are met: far faster than testing each character in Python, for the same result."""

    def __missing__(self, cp: int):
        value = None if cp != YPOGEGRAMMENI and unicodedata.combining(chr(cp)) else cp
        self[cp] = value
        return value


_MARKS = _Marks()


def fold(text: str | bytes | float | None) -> str | None:
    """Case- and accent-insensitive form of ``text``: the same for the same text, always (what
    counts as a mark or a case is Python's unicodedata, a fixed table per Python version).

    NFKD (compatibility forms and accents come apart: "ﬁ" -> "fi", "É" -> "E" + ´),
    combining marks dropped, casefolded (ß -> ss, final ς -> σ), and dotless ı -> i,
    so "Işık", "IŞIK" and "isik" fold alike. The Greek iota subscript is kept, as the ι
    that casefold makes of it: its capital form is a full letter ("ᾠ" is "ὨΙ" in
    capitals), so dropping it would part a word from its own capitals. Stored text
    that is not a string (a BLOB or a number written by plain SQL) is folded as text
    (bytes as UTF-8, bad bytes replaced) rather than failing the whole query."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    if text.isascii():  # the common case, called once per row: ASCII has no marks, and lower() is casefold()
        return text.lower()
    bare = unicodedata.normalize("NFKD", text).translate(_MARKS)
    # Dotless ı has no decomposition, and casefold() leaves it alone: map it by hand.
    return bare.casefold().replace("ı", "i")
