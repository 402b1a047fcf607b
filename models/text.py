"""Text folding for search, and the repeat key: one definition of "the same letters", and of "the same words".

``fold`` is applied in Python to a query and, registered as the SQL function
``memtui_fold``, to stored text, so a search matches whatever the case or the
accents: "Émile" finds "emile", "ÖBB" finds "obb", "İstanbul" finds "istanbul",
"STRASSE" finds "Straße", "ΣΩΚΡΑΤΗΣ" finds "Σωκράτης".

``content_key`` is what ``remember`` compares to tell a repeat: the words of a
text, casefolded, without punctuation or spacing (accents kept: "año" is not "ano").
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


SEARCH_SQL_NAME = "memtui_search_text"


def search_text(text) -> str | None:
    """What the SQLite search index holds for ``text`` (and what a query is matched as): ``fold``, with
    the marks fold keeps (other scripts': が is not か) composed again, since FTS5's tokenizer would read
    a lone combining mark as a gap between words."""
    folded = fold(text)
    return None if folded is None else unicodedata.normalize("NFC", folded)


def contains_all(text, words: str) -> int:
    """SQL ``memtui_contains(content, words)``: 1 when the folded ``text`` holds every one of
    ``words`` (already folded, joined by WORD_SEPARATOR). One call per row, however many words."""
    folded = fold(text)
    if folded is None:
        return 0
    return int(all(word in folded for word in words.split(WORD_SEPARATOR)))


# A word: letters/digits, joined by an apostrophe, or inside a number by . , : / (9:30, 3.5, 1,000).
# A sign right before a digit belongs to the number (-5 is not 5), as do % and currency signs after/before it.
WORD = re.compile(r"(?:(?<!\w)[-+−](?=\d))?\d+(?:[.,:/]\d+)*[^\W_]*|[^\W_]+(?:['’][^\W_]+)*|[%$€£¥°]")


def nfkc(text: str) -> str:
    """Compatibility forms composed (NFKC: "ﬁ" -> "fi", full-width digits -> digits), typographic apostrophe plain."""
    return unicodedata.normalize("NFKC", text).replace("’", "'")


def tokens(text: str) -> list[str]:
    """The words of ``text``, casefolded, in order (numbers whole: ``9:30``, ``-5``, ``3.5``)."""
    return [token.casefold() for token in WORD.findall(nfkc(text))]


def content_key(text: str) -> str:
    """The normalised form two texts share exactly when they are the same words: NFKC, casefolded,
    punctuation and spacing dropped (but not inside a number, nor a sign, % or currency)."""
    words = tokens(text)
    return " ".join(words) if words else " ".join(nfkc(text).casefold().split())
