"""The offline summarizer: the most informative sentences of a text, deterministically.

Used by the rollup jobs when no model is configured. A sentence's weight is the
mean frequency, across the whole period, of its content words (stop words
left out), so sentences about what the period was mostly about win; repeated
sentences (the same words in the same order, whatever the case and
punctuation) count once; ties go to the earlier sentence; the chosen sentences
keep their original order and are quoted as written, never reworded.

No two chosen sentences say the same thing (issue 12: a day summary read
"bob runs three times a week. Noted — I'll remember that bob runs three times a
week."). Before anything is weighed:

- an acknowledgement that only restates the period is left out: a sentence
  opening with "Noted", "Got it", "OK", "Sure", "Thanks", "I'll remember
  (that)", … (``ACK_OPENER``) whose remaining content words all appear in a
  sentence of the period that is not an acknowledgement. The period holds both
  the user's and the assistant's messages, and the assistant echoing the user
  adds nothing. An acknowledgement with something new stays;
- near duplicates count once: two sentences with the same content words (up to
  order, case, punctuation, stop words and a possessive 's), or one whose
  content words are a subset of the other's covering at least ``OVERLAP`` of
  it. The one with more content words stays, else the earlier one. Sentences
  that differ in a negation (not, no, never, n't, …) or in a number ("3" and
  "three" are one number) are never duplicates, nor are sentences naming
  different people or things (a different word is not a subset). A sentence
  with no content words at all is a duplicate only of the same text.

Words are compared with the same light normalisation throughout (case folded,
number words as digits), which is what makes "three times" and "3 times" the
same and keeps the rules deterministic.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

STOP_WORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only
or other our ours ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves i'll i'm it's that's noted remember about
i've i'd you're you've you'll you'd we're we've we'll they're they've they'll also really actually well indeed
""".split())
# Words that turn a sentence around: two sentences that differ in one of these say different things.
NEGATIONS = frozenset("not no never nor neither none nothing nobody nowhere cannot without".split())
NUMBER_WORDS = {word: str(n) for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                     "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"})
OVERLAP = 0.75  # a subset covering at least this share of the other sentence's content words is a duplicate

# An acknowledgement opens with an interjection followed by punctuation or the end ("Noted —", "Got it,",
# "OK."; so "Sure enough" or "Great news" are not one), or with a promise to remember ("I'll remember",
# "I've noted", …). Openers may follow each other ("Noted — I'll remember that …"); a "that" after them goes too.
_INTERJECTION = (r"noted|got it|gotcha|ok(?:ay)?|sure(?: thing)?|understood|will do|thanks?(?: a lot| so much)?"
                 r"|thank you(?: so much)?|great|perfect|alright|all right|cool|of course|absolutely|certainly"
                 r"|sounds good|makes sense|good to know|roger(?: that)?")
_PROMISE = (r"i(?:'ll| will) (?:remember|note|keep in mind|make a note of)|i(?:'ve| have) (?:noted|made a note of)"
            r"|(?:thanks?|thank you) for (?:letting me know|telling me|sharing(?: that| this)?|the update)")
_SEPARATORS = r"[\s—–\-,:;.!]*"
ACK_OPENER = re.compile(rf"(?:(?:{_INTERJECTION})(?=\s*(?:[—–\-,:;.!]|$))|(?:{_PROMISE})\b){_SEPARATORS}",
                        re.IGNORECASE)
_THAT = re.compile(r"that\b\s*", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_][\w'\-]*")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 1]


def acknowledged(sentence: str) -> str | None:
    """What an acknowledgement says after its openers ("Noted — I'll remember that X." -> "X."), or
    None if ``sentence`` is not an acknowledgement."""
    rest = sentence.strip().replace("’", "'")
    stripped = False
    while match := ACK_OPENER.match(rest):  # an opener is never empty: this ends
        rest, stripped = rest[match.end():], True
        if that := _THAT.match(rest):
            rest = rest[that.end():]
    return rest if stripped else None


def content(text: str) -> tuple[list[str], bool]:
    """(content words in order, negated): case folded, stop words left out, number words as digits,
    a possessive 's dropped; negations are taken out of the words and reported instead."""
    words, negated = [], False
    for word in _WORD.findall(text.casefold().replace("’", "'")):
        word = word.strip("'-")
        if word.endswith("'s"):
            word = word[:-2]
        if word in NEGATIONS or word.endswith("n't"):
            negated = True
            continue
        word = NUMBER_WORDS.get(word, word)
        if word and word not in STOP_WORDS:
            words.append(word)
    return words, negated


@dataclass(frozen=True)
class _Sentence:
    position: int
    text: str
    tokens: tuple[str, ...]  # content words in order (of what follows the openers, for an acknowledgement)
    words: frozenset[str]
    negated: bool
    ack: bool

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(w for w in self.words if any(ch.isdigit() for ch in w))


def _parse(position: int, text: str) -> _Sentence:
    # An acknowledgement is weighed and compared by what follows its openers, but one that stays (it
    # says something new) is quoted whole, opener included: this summarizer quotes, it never rewrites;
    # what follows an opener may be a fragment ("Sure, that works for Friday." -> "that works for
    # Friday."), and the opener says whose words these are (the assistant's, not the user's).
    rest = acknowledged(text)
    tokens, negated = content(text if rest is None else rest)
    return _Sentence(position, text, tuple(tokens), frozenset(tokens), negated, rest is not None)


def _within(small: _Sentence, big: _Sentence) -> bool:
    """Every content word of ``small`` is in ``big``, and both agree on negation."""
    return small.negated == big.negated and small.words <= big.words


def restates(ack: _Sentence, other: _Sentence) -> bool:
    """``ack`` is an acknowledgement saying nothing that ``other`` (not one) does not say."""
    return ack.ack and not other.ack and _within(ack, other)


def duplicates(a: _Sentence, b: _Sentence) -> bool:
    """``a`` says nothing ``b`` does not: the same content words, or a subset covering ``OVERLAP`` of
    ``b``'s, with the same negation and the same numbers."""
    return (bool(a.words) and _within(a, b) and a.numbers == b.numbers
            and len(a.words) >= OVERLAP * len(b.words))


def _kept(candidates: list[_Sentence]) -> list[_Sentence]:
    """``candidates`` without the acknowledgements that restate the period and without near
    duplicates (of two, the one with more content words stays, else the earlier one)."""
    postings: dict[str, list[_Sentence]] = {}  # word -> the sentences holding it
    for c in candidates:
        for word in c.words:
            postings.setdefault(word, []).append(c)
    plain = [c for c in candidates if not c.ack]

    def holding_all(c: _Sentence) -> list[_Sentence]:
        """The sentences that could hold every word of ``c`` (non-empty): those holding its rarest word."""
        return postings[min(c.words, key=lambda w: (len(postings[w]), w))]

    def beats(winner: _Sentence, loser: _Sentence) -> bool:
        return (len(winner.words), -winner.position) > (len(loser.words), -loser.position)

    kept = []
    for c in candidates:
        if c.ack and any(restates(c, o) for o in (holding_all(c) if c.words else plain) if o is not c):
            continue
        if c.words and any(o is not c and duplicates(c, o) and beats(o, c) for o in holding_all(c)):
            continue
        kept.append(c)
    return kept


def summarize(texts: list[str], max_sentences: int = 3, max_chars: int = 600) -> str:
    """The ``max_sentences`` most informative sentences of ``texts``, within ``max_chars``."""
    seen: set[str] = set()
    candidates: list[_Sentence] = []
    for text in texts:
        for sentence in sentences(text):
            key = " ".join(_WORD.findall(sentence.casefold().replace("’", "'"))) or sentence.casefold()
            if key in seen:  # the same words in the same order: the same sentence, whatever its case or punctuation
                continue
            seen.add(key)
            candidates.append(_parse(len(candidates), sentence))
    candidates = _kept(candidates)
    if not candidates:
        return ""
    frequency = Counter(w for c in candidates for w in c.words)
    scored = sorted(
        candidates,
        key=lambda c: (-(sum(frequency[w] for w in c.tokens) / (len(c.tokens) + 1)), c.position),
    )
    chosen: list[tuple[int, str]] = []
    length = 0
    for c in scored:
        if len(chosen) >= max_sentences:
            break
        if chosen and length + len(c.text) + 1 > max_chars:
            continue
        chosen.append((c.position, c.text[:max_chars]))
        length += len(c.text) + 1
    return " ".join(sentence for _, sentence in sorted(chosen))
