"""How an SMS body will travel: its encoding, its size in encoding units, its segment count.

Carriers bill per segment, and one stray character outside the GSM alphabet (a curly quote,
an emoji, `ê`) switches the whole message to UCS-2 and cuts a segment from 160 characters to
70. `measure_sms` is the one segment counter: template preview, the engine when it creates a
message (`messages.segments`) and the fake Twilio's billing all call it, so they cannot
disagree.

The rules follow 3GPP TS 23.038 (the GSM 03.38 alphabet) and TS 23.040 (concatenation):
- GSM-7: 160 septets fit one SMS. Characters of the extension table are sent as ESC plus a
  second septet, so they cost two. A concatenated message spends 7 septets of every part on
  the user-data header, leaving 153, and an escape pair is never split across two parts
  (the receiving phone would decode ESC alone as a space), so a part can end one short:
  `"a" * 152 + "€" + "a" * 152` is 306 septets but 3 segments, not ceil(306 / 153) = 2.
- UCS-2: 70 UTF-16 code units fit one SMS, 67 per part when concatenated. Characters beyond
  the Basic Multilingual Plane (most emoji) are surrogate pairs: two units, never split.

The alphabet is a table here rather than the `gsm0338` codec from PyPI: that codec encodes
U+001B (ESC) as if it were a character of its own, one septet, when 0x1B is the escape to
the extension table and no character at all, and it is several times slower per body. The
tests check this table against it for every other code point.

Not modelled: national language shift tables (Turkish, Spanish, Portuguese, Indian
languages), which few senders enable, and provider "smart encoding" that silently replaces
curly quotes and the like with GSM look-alikes. Both can only make a message cheaper than
measured here, so this measure is a safe upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The GSM 03.38 default alphabet in table order, 0x00 to 0x7F; None marks 0x1B, the escape
# to the extension table, which is not a character of its own.
_GSM7_BASIC_TABLE: tuple[str | None, ...] = (
    # 0x00-0x0F
    "@",
    "£",
    "$",
    "¥",
    "è",
    "é",
    "ù",
    "ì",
    "ò",
    "Ç",
    "\n",
    "Ø",
    "ø",
    "\r",
    "Å",
    "å",
    # 0x10-0x1F (the capital Greek letters that differ from Latin ones)
    "\u0394",
    "_",
    "\u03a6",
    "\u0393",
    "\u039b",
    "\u03a9",
    "\u03a0",
    "\u03a8",
    "\u03a3",
    "\u0398",
    "\u039e",
    None,
    "Æ",
    "æ",
    "ß",
    "É",
    # 0x20-0x2F: like ASCII, except that 0x24 is `¤` rather than `$` (which sits at 0x02)
    " ",
    "!",
    '"',
    "#",
    "¤",
    "%",
    "&",
    "'",
    "(",
    ")",
    "*",
    "+",
    ",",
    "-",
    ".",
    "/",
    # 0x30-0x3F
    *"0123456789:;<=>?",
    # 0x40-0x5F: `¡` replaces `@`; national letters and `§` replace `[\]^_`
    "¡",
    *"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "Ä",
    "Ö",
    "Ñ",
    "Ü",
    "§",
    # 0x60-0x7F: `¿` replaces the backtick; national letters replace `{|}~` and DEL
    "¿",
    *"abcdefghijklmnopqrstuvwxyz",
    "ä",
    "ö",
    "ñ",
    "ü",
    "à",
)

GSM7_BASIC_CHARACTERS: frozenset[str] = frozenset(c for c in _GSM7_BASIC_TABLE if c is not None)

# The extension table: each is sent as ESC (0x1B) followed by the code shown.
GSM7_EXTENSION_CHARACTERS: frozenset[str] = frozenset(
    {
        "\f",  # 0x0A form feed (a page break)
        "^",  # 0x14
        "{",  # 0x28
        "}",  # 0x29
        "\\",  # 0x2F
        "[",  # 0x3C
        "~",  # 0x3D
        "]",  # 0x3E
        "|",  # 0x40
        "€",  # 0x65
    }
)

GSM7_SINGLE_SEGMENT_SEPTETS = 160
GSM7_SEPTETS_PER_PART = 153
UCS2_SINGLE_SEGMENT_UNITS = 70
UCS2_UNITS_PER_PART = 67

SmsEncoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsMeasure:
    """What an SMS body costs on the air.

    `units` are septets for GSM-7 and UTF-16 code units for UCS-2; `length` counts Unicode
    code points (what `len()` says), which is what a person would call characters except for
    combined emoji sequences.
    """

    encoding: SmsEncoding
    units: int
    segments: int
    length: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return all(c in GSM7_BASIC_CHARACTERS or c in GSM7_EXTENSION_CHARACTERS for c in text)


def measure_sms(text: str) -> SmsMeasure:
    """Measure `text` as it would be sent in one (possibly concatenated) SMS.

    Empty text measures as GSM-7 with 0 units and 0 segments: there is nothing to send, and
    callers must refuse an empty body rather than bill it as a segment.
    """
    if is_gsm7(text):
        costs = [2 if c in GSM7_EXTENSION_CHARACTERS else 1 for c in text]
        encoding: SmsEncoding = "GSM-7"
        single_limit, part_limit = GSM7_SINGLE_SEGMENT_SEPTETS, GSM7_SEPTETS_PER_PART
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
        encoding = "UCS-2"
        single_limit, part_limit = UCS2_SINGLE_SEGMENT_UNITS, UCS2_UNITS_PER_PART
    units = sum(costs)
    return SmsMeasure(
        encoding=encoding,
        units=units,
        segments=_count_segments(costs, units, single_limit, part_limit),
        length=len(text),
    )


def _count_segments(costs: list[int], units: int, single_limit: int, part_limit: int) -> int:
    if units == 0:
        return 0
    if units <= single_limit:
        return 1
    # Fill parts greedily, as phones and SMSCs do; a character that does not fit whole
    # (an escape pair or a surrogate pair) starts the next part, so ceil(units / part_limit)
    # would undercount.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part_limit:
            segments += 1
            used = 0
        used += cost
    return segments
