"""Text folding for search: one definition of "the same letters", used on both sides of a comparison.

``fold`` is applied in Python to a query and, registered as the SQL function
``memtui_fold``, to stored text, so a search matches whatever the case or the
accents: "Émile" finds "emile", "ÖBB" finds "obb", "İstanbul" finds "istanbul",
"STRASSE" finds "Straße", "ΣΩΚΡΑΤΗΣ" finds "Σωκράτης".
"""
from __future__ import annotations

import re
import unicodedata

SQL_NAME = "memtui_fold"
CONTAINS_SQL_NAME = "memtui_contains"
YPOGEGRAMMENI = 0x345  # Greek iota subscript: a combining mark whose capital form is the letter Ι
WORD_SEPARATOR = "\x1f"  # joins a query's words for memtui_contains; never inside a folded word

# The combining marks that are accents on Latin, Greek and Cyrillic letters, but the iota subscript
# (U+0345). Marks of other scripts stay: in Japanese, Devanagari or Thai they make a different
# letter (が is not か), not an accented one. A regex is one C-speed pass (str.translate with a
# dict calls back into Python per character: ten times slower on every row of a recall).
_ACCENTS = re.compile("[\u0300-\u0344\u0346-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff"
                      "\u20d0-\u20ff\ufe20-\ufe2f]")
# Letters whose stroke or dot is part of them (no decomposition), written as a person types them plain.
_PLAIN = {"ı": "i", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ŧ": "t", "ƀ": "b", "ɨ": "i",
          "æ": "ae", "œ": "oe", "þ": "th"}
_PLAIN_LETTERS = re.compile("[" + "".join(_PLAIN) + "]")


def fold(text: str | bytes | float | None) -> str | None:
    """Case- and accent-insensitive form of ``text``: the same for the same text, always (what
    counts as a mark or a case is Python's unicodedata, a fixed table per Python version).

    NFKD (compatibility forms and accents come apart: "ﬁ" -> "fi", "É" -> "E" + ´),
    the accents of Latin, Greek and Cyrillic dropped, casefolded (ß -> ss, final ς -> σ),
    and letters whose stroke or dot is part of them written plain (ı -> i, ø -> o,
    ł -> l, æ -> ae), so "Işık" and "isik", "Łódź" and "Lodz" fold alike. The Greek iota
    subscript is kept, as the ι that casefold makes of it: its capital form is a full
    letter ("ᾠ" is "ὨΙ" in capitals), so dropping it would part a word from its own
    capitals. Stored text that is not a string (a BLOB or a number written by plain
    SQL) is folded as text (bytes as UTF-8, bad bytes replaced) rather than failing the
    whole query."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    if text.isascii():  # the common case, called once per row: ASCII has no marks, and lower() is casefold()
        return text.lower()
    folded = _ACCENTS.sub("", unicodedata.normalize("NFKD", text)).casefold()
    return _PLAIN_LETTERS.sub(lambda m: _PLAIN[m.group()], folded)


def contains_all(text, words: str) -> int:
    """SQL ``memtui_contains(content, words)``: 1 when the folded ``text`` holds every one of
    ``words`` (already folded, joined by WORD_SEPARATOR). One call per row, however many words."""
    folded = fold(text)
    if folded is None:
        return 0
    return int(all(word in folded for word in words.split(WORD_SEPARATOR)))
