"""Scores read the way people write them, in the four launch languages."""

from __future__ import annotations

import pytest

from orchestrator.conversations.nps import nps_score


@pytest.mark.parametrize(
    ("body", "score"),
    [
        ("9", 9),
        ("10", 10),
        ("0", 0),
        ("9, great", 9),
        ("10 super", 10),
        ("3, late delivery", 3),
        ("9/10", 9),
        ("10/10 would buy again", 10),
        ("8 sur 10", 8),
        ("I would say 8", 8),
        ("７", 7),
        ("nine", 9),
        ("Neuf !", 9),
        ("nueve", 9),
        ("seven out of ten", 7),
        ("huit sur dix", 8),
        ("diez de diez", 10),
        ("I give it a nine", 9),
        ("九", 9),
        ("九分", 9),
        ("給九分", 9),
        ("Zéro.", 0),
    ],
)
def test_scores_people_write(body, score):
    assert nps_score(body) == score


@pytest.mark.parametrize(
    "body",
    [
        "thanks!",
        "100",
        "11",
        "2026 was a good year",
        "1.5",
        "un peu cher",
        "one more thing, shipping was slow",
        "a great one",
        "",
    ],
)
def test_replies_without_a_score(body):
    assert nps_score(body) is None
