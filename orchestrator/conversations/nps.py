"""Read an NPS score (0-10) out of a reply the way people write one.

"9", "9, great", "10 super", "3, late delivery", "9/10", "I'd say 8", "nine", "neuf",
"nueve", "九分": a number from 0 to 10 at the start or the end of the reply, a score out of
ten anywhere, or a number word in the launch languages (English, French, Spanish, Chinese).
A reply with any other number, or none, has no score.
"""

from __future__ import annotations

import re
import unicodedata

_OUT_OF_TEN = re.compile(r"(?<![\d.,])(10|\d)\s*(?:/|sur|de|of|out of)\s*10(?!\d)", re.IGNORECASE)
_LEADING = re.compile(r"^\W*(10|\d)(?![\d.,]\d)(?!\d)")
_TRAILING = re.compile(r"(?<![\d.,])(10|\d)\W*$")

_WORDS = {
    # English
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    # French
    "zéro": 0,
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    # Spanish
    "cero": 0,
    "uno": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "siete": 7,
    "ocho": 8,
    "nueve": 9,
    "diez": 10,
}
_CHINESE = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "兩": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
# A Chinese numeral alone, or followed by 分 ("points"): "九", "九分", "給九分". "十分" alone also
# means "very", so it counts only as the whole reply.
_CHINESE_SCORE = re.compile(r"^\W*(?:給|给|打)?([零〇一二兩两三四五六七八九十])分?\W*$")
_NUMBER_WORD = "|".join(sorted(_WORDS, key=len, reverse=True))
_WORD_OUT_OF_TEN = re.compile(rf"\b({_NUMBER_WORD})\s+(?:out of|sur|de)\s+(?:ten|dix|diez)\b", re.IGNORECASE)
# A number word opens the reply only if a pause follows it: "nine, great", but not "un peu cher".
_LEADING_WORD = re.compile(rf"^\W*({_NUMBER_WORD})(?:\s*[,.;:!?/-]|\W*$)", re.IGNORECASE)
# Not "one", "un", "une", "uno" at the end: "a great one" is no score of 1.
_TRAILING_WORD = re.compile(
    rf"\b({'|'.join(w for w in _WORDS if w not in ('one', 'un', 'une', 'uno'))})\W*$", re.IGNORECASE
)


def nps_score(body: str) -> int | None:
    """The 0-10 score in a reply, or None when it has none (or more than one reading)."""
    text = unicodedata.normalize("NFKC", body).strip()  # full-width digits become ASCII
    for pattern in (_OUT_OF_TEN, _LEADING, _TRAILING):
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    if re.search(r"\d", text):
        return None  # "100", "2026": a number, but not a score
    chinese = _CHINESE_SCORE.match(text)
    if chinese:
        return _CHINESE[chinese.group(1)]
    for pattern in (_WORD_OUT_OF_TEN, _LEADING_WORD, _TRAILING_WORD):
        match = pattern.search(text)
        if match:
            return _WORDS[match.group(1).lower()]
    return None
