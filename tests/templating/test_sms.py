"""SMS measuring, checked against hand-counted cases at every boundary that costs money and,
with Hypothesis, against the rules themselves."""

from __future__ import annotations

import math

import gsm0338
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.templating.sms import (
    GSM7_BASIC_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    SmsMeasure,
    is_gsm7,
    measure_sms,
)

ZH_HANT = "歡迎光臨，您的訂單已出貨。"  # 13 BMP characters: UCS-2, one unit each
THUMBS_UP = "\U0001f44d"  # beyond the BMP: a surrogate pair in UTF-16

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
    assert {"@", "£", "$", "¥", "¤", "¡", "¿", "§", "ß", "Ç", "Ø", "ø", "Å", "å", "\n", "\r"} <= (GSM7_BASIC_CHARACTERS)
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


# --- Properties, against the rules rather than against hand-counted cases ------------------

# An independent witness of the GSM 03.38 alphabet: the `gsm0338` codec (registered as
# "gsm03.38" on import). It also accepts U+001B, the escape itself, as a character; that is
# not one (see the module docstring of `orchestrator.templating.sms`), so it is left out.
GSM0338 = gsm0338.Codec()
ESC = 0x1B


def _codec_characters(prefix: bytes) -> set[str]:
    characters = set()
    for code in range(0x80):
        if code != ESC:
            text, _ = GSM0338.decode(prefix + bytes([code]), "ignore")
            characters.update(text)
    return characters


def test_the_alphabet_agrees_with_the_gsm0338_codec() -> None:
    assert _codec_characters(b"") - {"\x1b"} == GSM7_BASIC_CHARACTERS
    assert _codec_characters(bytes([ESC])) == GSM7_EXTENSION_CHARACTERS


def encoded(text: str) -> tuple[list[int], int, int, set[int]]:
    """The units on the air, encoded independently of the code under test: GSM-7 septets
    from the gsm0338 codec or UTF-16 code units; then the single-message and per-part
    capacity, and the units that must stay with the unit after them (ESC before an
    extension character, a high surrogate before its low one)."""
    try:
        if "\x1b" in text:
            raise UnicodeEncodeError("gsm03.38", text, 0, 1, "ESC is no character")
        return list(text.encode("gsm03.38")), 160, 153, {ESC}
    except UnicodeEncodeError:
        raw = text.encode("utf-16-be")
        units = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        return units, 70, 67, set(range(0xD800, 0xDC00))


def greedy_packing(text: str) -> int:
    """Segments by filling parts with the encoded units one by one, as phones and SMSCs do,
    never parting a bound unit from the one after it."""
    units, single, per_part, binds_to_next = encoded(text)
    if not units:
        return 0
    if len(units) <= single:
        return 1
    parts: list[list[int]] = [[]]
    i = 0
    while i < len(units):
        piece = units[i : i + 2] if units[i] in binds_to_next else units[i : i + 1]
        if len(parts[-1]) + len(piece) > per_part:
            parts.append([])
        parts[-1].extend(piece)
        i += len(piece)
    assert all(len(part) <= per_part and part[-1] not in binds_to_next for part in parts)
    return len(parts)


basic = st.sampled_from(sorted(GSM7_BASIC_CHARACTERS))
extension = st.sampled_from(sorted(GSM7_EXTENSION_CHARACTERS))
not_gsm_bmp = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)).filter(lambda c: not is_gsm7(c))
astral = st.characters(min_codepoint=0x10000)  # emoji and friends: surrogate pairs in UTF-16
gsm_alphabet = st.one_of(basic, basic, basic, extension)
# Mostly GSM with now and then a character that forces UCS-2, so both encodings and every
# kind of unit show up.
any_alphabet = st.one_of(basic, basic, extension, not_gsm_bmp, astral)


def texts(alphabet: st.SearchStrategy[str], longest: int) -> st.SearchStrategy[str]:
    # Lengths drawn evenly: left to itself Hypothesis prefers short texts, and the rules
    # that cost money only show in texts of several parts.
    return st.integers(0, longest).flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))


@st.composite
def near_part_boundaries(draw, alphabet: st.SearchStrategy[str], longest: int) -> str:
    """A text padded with `a` (one unit in either encoding) to within two units of a whole
    number of parts: where a pair moved whole to the next part changes the count. Random
    texts almost never land there."""
    text = draw(texts(alphabet, longest))
    units, _, per_part, _ = encoded(text)
    target = max(2, len(units) // per_part + 1) * per_part + draw(st.integers(-2, 2))
    at = draw(st.integers(0, len(text)))
    return text[:at] + "a" * max(0, target - len(units)) + text[at:]


bodies = st.one_of(
    texts(gsm_alphabet, 480),
    texts(any_alphabet, 220),
    near_part_boundaries(gsm_alphabet, 460),
    near_part_boundaries(any_alphabet, 200),
)
PROPERTIES = settings(deadline=None, max_examples=150)  # no deadline: the machine may be busy


@PROPERTIES
@given(bodies)
def test_segments_equal_an_independent_greedy_packing(text: str) -> None:
    assert measure_sms(text).segments == greedy_packing(text)


@PROPERTIES
@given(bodies)
def test_units_are_septets_or_utf16_code_units(text: str) -> None:
    measured = measure_sms(text)
    units, single, _, _ = encoded(text)
    assert measured.encoding == ("GSM-7" if single == 160 else "UCS-2")
    assert measured.units == len(units)
    assert measured.length == len(text)


@PROPERTIES
@given(texts(basic, 1000))
def test_basic_alphabet_text_of_n_septets(text: str) -> None:
    n = len(text)
    expected = 0 if n == 0 else 1 if n <= 160 else math.ceil(n / 153)
    assert measure_sms(text) == SmsMeasure("GSM-7", n, expected, n)


@PROPERTIES
@given(not_gsm_bmp, texts(st.one_of(basic, not_gsm_bmp), 210))
def test_bmp_ucs2_text_of_n_units(forcing: str, rest: str) -> None:
    text = forcing + rest
    n = len(text)
    expected = 1 if n <= 70 else math.ceil(n / 67)
    assert measure_sms(text) == SmsMeasure("UCS-2", n, expected, n)


@PROPERTIES
@given(bodies, st.one_of(basic, extension, not_gsm_bmp, astral), st.data())
def test_adding_a_character_never_lowers_the_count(text: str, added: str, data) -> None:
    at = data.draw(st.integers(0, len(text)))
    assert measure_sms(text[:at] + added + text[at:]).segments >= measure_sms(text).segments


@PROPERTIES
@given(bodies)
def test_never_fewer_parts_than_the_units_need_nor_many_more(text: str) -> None:
    measured = measure_sms(text)
    single, per_part = (160, 153) if measured.encoding == "GSM-7" else (70, 67)
    if measured.units > single:
        # A pair moved whole to the next part leaves at most one unit of a part unused.
        assert math.ceil(measured.units / per_part) <= measured.segments <= math.ceil(measured.units / (per_part - 1))
