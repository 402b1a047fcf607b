"""The offline summarizer: the most informative sentences of a text, deterministically.

Used by the rollup jobs when no model is configured. A sentence's weight is the
mean frequency, across the whole period, of its content words (stop words
left out), so sentences about what the period was mostly about win; repeated
sentences count once; ties go to the earlier sentence; the chosen sentences
keep their original order.
"""
from __future__ import annotations

import re
from collections import Counter

STOP_WORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only
or other our ours ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves i'll i'm it's that's noted remember about
""".split())
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 1]


def summarize(texts: list[str], max_sentences: int = 3, max_chars: int = 600) -> str:
    """The ``max_sentences`` most informative sentences of ``texts``, within ``max_chars``."""
    seen: set[str] = set()
    candidates: list[tuple[int, str, list[str]]] = []
    for text in texts:
        for sentence in sentences(text):
            key = sentence.lower()
            if key in seen:
                continue
            seen.add(key)
            words = [w for w in _WORD.findall(key) if w not in STOP_WORDS]
            candidates.append((len(candidates), sentence, words))
    if not candidates:
        return ""
    frequency = Counter(w for _, _, words in candidates for w in set(words))
    scored = sorted(
        candidates,
        key=lambda c: (-(sum(frequency[w] for w in c[2]) / (len(c[2]) + 1)), c[0]),
    )
    chosen: list[tuple[int, str]] = []
    length = 0
    for position, sentence, _ in scored:
        if len(chosen) >= max_sentences:
            break
        if chosen and length + len(sentence) + 1 > max_chars:
            continue
        chosen.append((position, sentence[:max_chars]))
        length += len(sentence) + 1
    return " ".join(sentence for _, sentence in sorted(chosen))
