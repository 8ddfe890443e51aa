"""STOP / START / HELP: single-word keywords, case-insensitive, in several languages.

The confirmation or help text is a template (`templates/keyword-<opt-out|opt-in|help>/`),
rendered in the customer's locale, or, for someone we know no locale of, in the language
of the keyword they wrote (ARRET is answered in French).
"""

from __future__ import annotations

import enum
import string

from orchestrator.config import Settings

_TRIM = string.whitespace + string.punctuation + "。！？、"


class Keyword(str, enum.Enum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"


REPLY_TEMPLATES = {Keyword.opt_out: "keyword-opt-out", Keyword.opt_in: "keyword-opt-in", Keyword.help: "keyword-help"}

# The language a keyword is written in; words shared by several (STOP, INFO) tell nothing.
KEYWORD_LOCALES = {
    word.casefold(): locale
    for locale, words in {
        "fr": ("ARRET", "ARRÊT", "OUI", "AIDE"),
        "es": ("ALTO", "BAJA", "SI", "SÍ", "AYUDA"),
        "zh-Hant": ("退訂", "取消訂閱", "訂閱", "幫助"),
    }.items()
    for word in words
}


def _word(body: str) -> str:
    return body.strip(_TRIM).casefold()


def keyword_locale(body: str) -> str | None:
    """The language of the keyword in this reply, if it has one of its own."""
    return KEYWORD_LOCALES.get(_word(body))


def classify(body: str, settings: Settings) -> Keyword | None:
    word = _word(body)
    if not word or any(c.isspace() for c in word):
        return None  # "stop sending me coupons" is a message for a person, not a keyword
    for keyword, words in (
        (Keyword.opt_out, settings.opt_out_keywords),
        (Keyword.opt_in, settings.opt_in_keywords),
        (Keyword.help, settings.help_keywords),
    ):
        if word in {w.casefold() for w in words}:
            return keyword
    return None
