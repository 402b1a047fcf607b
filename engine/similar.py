"""How alike two memories are: the exact-repeat key, the near-duplicate test, the correction test.

Pure functions on text, no database, deterministic (the tests and ``why`` can
replay every decision). Three questions, three answers:

- ``content_key``: the text with case, spacing, punctuation and Unicode form
  normalised away. Two memories with the same key say the same thing in the
  same words; ``remember`` counts the second as a use of the first.
- ``compare``: are two texts near-duplicates — the same statement restated:
  case, punctuation, spacing, a framing such as "Note:", "FYI" or "Remember
  that", an extra or missing function word ("the", "really"), a plural? Both
  must say the same content words in the same order (stop words and filler
  left out, a light suffix stemmer folds "seats"/"seat"), and nothing that
  carries meaning may differ: a negation on one side only, a name, a number, a
  date or a time. A different content word is a different fact as far as words
  can tell ("window seats" / "aisle seats", "peanuts" / "walnuts"), and so is
  another order ("Alice owes Bob" / "Bob owes Alice", "tea over coffee"):
  rewordings beyond that are the model's to judge (engine/jobs/dedupe.py), never
  merged on word overlap — mem0's audit (issue #4573) shows what a loose merge
  costs. The Dice coefficient of the content-word sets is still computed: it
  ranks how related two memories are.
- ``supersedes``: does a newer memory correct an older one? Only with an
  explicit correction cue in the newer text ("correction", "update", "moved to",
  "no longer", "changed to", "instead", "now"), about the same subject (most
  of the older one's subject words again, the same leading name). Without a cue
  nothing is retired offline: that judgement is the model's (engine/jobs/dedupe.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from memtui.models.text import WORD, nfkc, content_key, tokens

# The share of the older memory's subject words the newer must repeat for a cue to apply to it.
SAME_SUBJECT_AT = 0.6
# Loosely related: worth a model's look for a contradiction (engine/jobs/dedupe.py), never merged on this.
RELATED_AT = 0.34

_DIGIT = re.compile(r"\d")

STOP_WORDS = frozenset("""
a an the and or but if then so as of at by for with about against between into through during before after
above below to from up down in out on off over under again further once here there when where why how all any
both each few more most other some such only own same than too very can will just should would could may might
must shall i me my myself we our ours ourselves you your yours yourself he him his himself she her hers herself
it its itself they them their theirs themselves what which who whom this that these those am is are was were be
been being have has had having do does did doing i'm i've i'll i'd it's that's there's he's she's we're they're
you're let's
""".split())
# Words that restate or frame a memory without adding to it ("Note: …", "Remember that …", "FYI …").
FILLER = frozenset("""
please also really definitely basically honestly apparently okay ok well just actually
""".split())
# A framing that restates a memory without adding to it, at its start: "Note: …", "FYI, …", "Remember that …".
_FRAMING = re.compile(
    r"^\W*(?:(?:note|noted|fyi|btw|reminder|update|remember|just so you know|for the record|keep in mind|"
    r"please note|please remember|don't forget|do not forget|i think|i believe)\b(?:\s+that\b)?\W*)+",
    re.IGNORECASE)
NEGATIONS = frozenset("""
not no never nothing nobody none neither nor without cannot can't don't doesn't didn't isn't aren't wasn't
weren't won't wouldn't shouldn't couldn't haven't hasn't hadn't dont doesnt didnt isnt arent wasnt cant wont
""".split())
TIME_WORDS = frozenset("""
am pm noon midnight morning afternoon evening night tonight today tomorrow yesterday weekend weekday
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec daily weekly monthly yearly annually
""".split()) - {"may", "march"}  # too often a verb; a date names its day or number besides
CORRECTION_CUES = ("correction", "corrected", "update", "updated", "moved to", "no longer", "changed to",
                   "instead", "now")
_CUE = re.compile(r"\b(" + "|".join(re.escape(cue) for cue in CORRECTION_CUES) + r")\b")
CUE_WORDS = frozenset(word for cue in CORRECTION_CUES for word in cue.split())


def stem(word: str) -> str:
    """A light, deterministic English suffix fold, enough for one statement restated: seats/seat,
    updates/updated/update, boxes/box, cities/city, brownies/brownie, moving/move all fold alike (a final "e" goes too, so
    the forms with and without one meet). Not a full stemmer: it only has to agree with itself."""
    if _DIGIT.search(word) or len(word) <= 3:
        return word
    if word.endswith("'s"):
        word = word[:-2]
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "i"
    elif word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")) and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:  # then the verb forms: "dumplings" and "dumpling" meet
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        word = word[:-1] + "i"  # city/cities, brownie/brownies meet at "citi", "browni"
    return word


@dataclass(frozen=True)
class Words:
    """The parts of one text that the tests compare."""

    content: frozenset[str]  # stemmed content words (no stop words, no filler)
    sequence: tuple[str, ...]  # the same, in the order the text says them
    names: frozenset[str]  # content words written with a capital (people, places, products)
    lead_name: str | None  # the first of them: the sentence's subject, most often
    meaning: frozenset[str]  # numbers, times, dates and signs: a different one is a different fact
    negated: bool
    cue: str | None  # the correction cue it holds, if any
    spelled: tuple[tuple[str, str], ...] = ()  # (stem, the word as written, casefolded): for reasons people read

    @classmethod
    def of(cls, text: str) -> "Words":
        framed = nfkc(text)
        raw = WORD.findall(_FRAMING.sub("", framed) or framed)
        content: list[str] = []
        names: list[str] = []
        meaning: set[str] = set()
        spelled: dict[str, str] = {}
        negated = False
        for token in raw:
            word = token.casefold()
            if word in NEGATIONS or word.endswith("n't"):
                negated = True
                continue
            if word in STOP_WORDS or word in FILLER:
                continue
            stemmed = stem(word)
            spelled.setdefault(stemmed, word[:-2] if word.endswith("'s") else word)
            if _DIGIT.search(word) or word in TIME_WORDS or stemmed in TIME_WORDS or not word[0].isalnum():
                meaning.add(stemmed)  # stemmed: "Tuesdays" is the same day as "Tuesday"
            content.append(stemmed)
            if token[0].isupper() and word not in CUE_WORDS and stemmed not in meaning:  # not "Monday"
                names.append(stemmed)
        match = _CUE.search(framed.casefold())
        return cls(frozenset(content), tuple(content), frozenset(names), names[0] if names else None,
                   frozenset(meaning), negated, match.group(1) if match else None, tuple(spelled.items()))


SAME_WORDS = "the same words"  # the verdict on texts with one content_key: a repeat, not a rewording


@dataclass(frozen=True)
class Verdict:
    similarity: float  # Dice coefficient of the content words, 0..1
    duplicate: bool
    reason: str  # why, in words: "similarity 0.91", "differs in meaning: negation", …


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))


def _meaning_difference(a: Words, b: Words) -> str | None:
    """What makes the two texts different facts, however alike their words: None when nothing does."""
    spelled = {**dict(b.spelled), **dict(a.spelled)}

    def words(stems) -> str:
        return " / ".join(sorted(spelled.get(w, w) for w in stems)[:4])

    if a.negated != b.negated:
        return "negation"
    if a.meaning != b.meaning:
        return "number, date or time " + words(a.meaning ^ b.meaning)
    names = (a.names | b.names) & (a.content ^ b.content)
    if names:
        return "name " + words(names)
    return None


def compare(a: str, b: str) -> Verdict:
    """Whether ``a`` and ``b`` are near-duplicates, with the similarity and the reason."""
    wa, wb = Words.of(a), Words.of(b)
    similarity = round(dice(wa.content, wb.content), 3)
    if content_key(a) == content_key(b):
        return Verdict(1.0, True, SAME_WORDS)
    difference = _meaning_difference(wa, wb)
    if difference:
        return Verdict(similarity, False, f"differs in meaning: {difference}")
    if wa.sequence and wa.sequence == wb.sequence:
        return Verdict(1.0, True, "the same content words in the same order")
    if wa.content == wb.content:
        return Verdict(similarity, False, "differs in meaning: word order")
    return Verdict(similarity, False, f"other words (similarity {similarity:.2f})")


def subject_overlap(older: Words, newer: Words) -> float:
    """The share of the older memory's subject words (content words but numbers, times and the cue's
    own words) that the newer one repeats."""
    subject = older.content - older.meaning - CUE_WORDS
    if not subject:
        return 0.0
    return len(subject & newer.content) / len(subject)


def supersedes(older: str, newer: str) -> str | None:
    """The reason ``newer`` replaces ``older`` (an explicit correction of the same subject), or None.

    Never for near-duplicates (those merge) and never without a cue."""
    wo, wn = Words.of(older), Words.of(newer)
    if wn.cue is None or compare(older, newer).duplicate:
        return None
    if " " not in wn.cue and stem(wn.cue) in wo.content:
        return None  # the older one says it too ("wants the updates"): part of the subject, not a correction
    if wo.lead_name is not None and wn.lead_name is not None and wo.lead_name != wn.lead_name:
        return None  # "Bob now lives in Paris" says nothing about Alice
    overlap = subject_overlap(wo, wn)
    if overlap < SAME_SUBJECT_AT:
        return None
    return f"corrected by a newer memory (cue '{wn.cue}', {overlap:.0%} of its subject repeated)"


def related(older: str, newer: str) -> bool:
    """Worth asking a model whether one replaces the other: same subject, not duplicates."""
    wo, wn = Words.of(older), Words.of(newer)
    return max(dice(wo.content, wn.content), subject_overlap(wo, wn)) >= RELATED_AT


__all__ = ["RELATED_AT", "SAME_WORDS", "SAME_SUBJECT_AT", "Verdict", "Words", "compare", "content_key",
           "related", "stem", "supersedes", "tokens"]
