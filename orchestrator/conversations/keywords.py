"""STOP / START / HELP: single-word keywords, case-insensitive, in several languages."""

from __future__ import annotations

import enum
import string

from orchestrator.config import Settings

_TRIM = string.whitespace + string.punctuation + "。！？、"


class Keyword(str, enum.Enum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"


def classify(body: str, settings: Settings) -> Keyword | None:
    word = body.strip(_TRIM).casefold()
    if not word or any(c.isspace() for c in word):
        return None  # "stop sending me coupons" is a message for a person, not a keyword
    for keyword, words in ((Keyword.opt_out, settings.opt_out_keywords), (Keyword.opt_in, settings.opt_in_keywords),
                           (Keyword.help, settings.help_keywords)):
        if word in {w.casefold() for w in words}:
            return keyword
    return None
