"""SMS measuring, checked against hand-counted cases at every boundary that costs money."""

from __future__ import annotations

import pytest

from orchestrator.templating.sms import (
    GSM7_BASIC_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    SmsMeasure,
    measure_sms,
)

ZH_HANT = "歡迎光臨，您的訂單已出貨。"  # 13 BMP characters: UCS-2, one unit each
THUMBS_UP = "\U0001F44D"  # beyond the BMP: a surrogate pair in UTF-16

CASES = [
    # (id, text, encoding, units, segments, length)
    ("empty", "", "GSM-7", 0, 0, 0),
    ("ascii-1", "a", "GSM-7", 1, 1, 1),
    ("ascii-160", "a" * 160, "GSM-7", 160, 1, 160),
    ("ascii-161", "a" * 161, "GSM-7", 161, 2, 161),
    ("ascii-306-fills-two-parts", "a" * 306, "GSM-7", 306, 2, 306),
    ("ascii-307", "a" * 307, "GSM-7", 307, 3, 307),
    ("euro-alone-costs-2", "€", "GSM-7", 2, 1, 1),
    ("extension-fits-at-160", "a" * 158 + "€", "GSM-7", 160, 1, 159),
    ("extension-crosses-160", "a" * 159 + "€", "GSM-7", 161, 2, 160),
    ("every-extension-costs-2", "^{}\\[]~|€\f", "GSM-7", 20, 1, 10),
    # The pair would straddle parts 1 and 2 (152 + 2 > 153), so it moves whole to part 2,
    # which then overflows: 3 parts where ceil(306 / 153) says 2.
    ("escape-pair-not-split", "a" * 152 + "{" + "a" * 152, "GSM-7", 306, 3, 305),
    ("escape-pair-just-fits", "a" * 151 + "{" + "a" * 153, "GSM-7", 306, 2, 305),
    ("crlf-is-two-septets", "hi\r\nthere", "GSM-7", 9, 1, 9),
    ("e-acute-is-gsm", "Café é É", "GSM-7", 8, 1, 8),
    ("e-circumflex-is-not", "Crêpe", "UCS-2", 5, 1, 5),
    ("curly-quote-is-not", "it\u2019s", "UCS-2", 4, 1, 4),
    ("zh-hant", ZH_HANT, "UCS-2", 13, 1, 13),
    ("emoji-two-units", THUMBS_UP, "UCS-2", 2, 1, 1),
    ("emoji-with-text", "Thanks " + THUMBS_UP, "UCS-2", 9, 1, 8),
    ("ucs2-70", "ê" * 70, "UCS-2", 70, 1, 70),
    ("ucs2-71", "ê" * 71, "UCS-2", 71, 2, 71),
    ("ucs2-134", "ê" * 134, "UCS-2", 134, 2, 134),
    ("ucs2-135", "ê" * 135, "UCS-2", 135, 3, 135),
    ("emoji-crosses-70", "ê" * 69 + THUMBS_UP, "UCS-2", 71, 2, 70),
    # Same straddle as the escape pair: a surrogate pair is never cut in half.
    ("surrogate-pair-not-split", "ê" * 66 + THUMBS_UP + "ê" * 66, "UCS-2", 134, 3, 133),
    ("surrogate-pair-just-fits", "ê" * 65 + THUMBS_UP + "ê" * 67, "UCS-2", 134, 2, 133),
    ("extension-chars-in-ucs2-cost-1", "ê{€", "UCS-2", 3, 1, 3),
]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments", "length"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_measure_sms(text: str, encoding: str, units: int, segments: int, length: int) -> None:
    assert measure_sms(text) == SmsMeasure(encoding, units, segments, length)


def test_basic_table_is_the_gsm_0338_default_alphabet() -> None:
    # 128 code points minus the escape to the extension table.
    assert len(GSM7_BASIC_CHARACTERS) == 127
    # Greek capitals are the real Greek code points, not look-alikes (e.g. the Ohm sign).
    greek_capitals = (0x394, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E)
    assert {chr(code_point) for code_point in greek_capitals} <= GSM7_BASIC_CHARACTERS
    assert {"@", "£", "$", "¥", "¤", "¡", "¿", "§", "ß", "Ç", "Ø", "ø", "Å", "å", "\n", "\r"} <= (
        GSM7_BASIC_CHARACTERS
    )
    # ASCII characters that the GSM alphabet gave away to national letters.
    for ascii_char in "`[]{}\\^~|":
        assert ascii_char not in GSM7_BASIC_CHARACTERS
    assert "`" not in GSM7_EXTENSION_CHARACTERS
    assert GSM7_BASIC_CHARACTERS.isdisjoint(GSM7_EXTENSION_CHARACTERS)
    assert len(GSM7_EXTENSION_CHARACTERS) == 10


def test_whole_basic_alphabet_is_one_septet_each() -> None:
    alphabet = "".join(sorted(GSM7_BASIC_CHARACTERS))
    assert measure_sms(alphabet) == SmsMeasure("GSM-7", 127, 1, 127)


def test_backtick_forces_ucs2() -> None:
    assert measure_sms("a`b").encoding == "UCS-2"
