"""Text folding for search: one definition of "the same letters", used on both sides of a comparison.

``fold`` is applied in Python to a query and, registered as the SQL function
``memtui_fold``, to stored text, so a search matches whatever the case or the
accents: "Émile" finds "emile", "ÖBB" finds "obb", "İstanbul" finds "istanbul".
"""
from __future__ import annotations

import unicodedata

SQL_NAME = "memtui_fold"


def fold(text: str | None) -> str | None:
    """Case- and accent-insensitive form of ``text``: NFKD, combining marks dropped, casefolded."""
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # casefold() handles ß, Σ/ς and the rest; dotless ı has no decomposition, so map it by hand.
    return bare.casefold().replace("ı", "i")
