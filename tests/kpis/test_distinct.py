"""Distinct visitors as a mergeable sketch: exact while small, a HyperLogLog beyond, and
merging that loses nothing. The visitor ids are fixed, so every estimate here is too."""

from __future__ import annotations

import random

import pytest

from orchestrator.kpis.distinct import (
    EXACT_LIMIT,
    HASHES_ALONE,
    REGISTERS,
    RELATIVE_ERROR,
    DistinctVisitors,
    register_max,
    visitor_hash,
)


def visitors(first: int, last: int) -> list[str]:
    return [f"a:visitor-{n}" for n in range(first, last)]


def merged(*parts: DistinctVisitors) -> DistinctVisitors:
    union = DistinctVisitors()
    for part in parts:
        union.merge_bytes(part.to_bytes())
    return union


def test_up_to_512_visitors_the_count_is_exact_and_a_visitor_seen_twice_counts_once():
    sketch = DistinctVisitors.of(visitors(0, EXACT_LIMIT) + visitors(0, 100))
    assert (sketch.exact, sketch.count()) == (True, EXACT_LIMIT)
    sketch.add("a:visitor-513")
    assert not sketch.exact


def test_the_hash_is_stable_across_processes():
    # BLAKE2b, not Python's per-process salted `hash`: stored sketches are merged by other processes
    assert visitor_hash("c:42") == 0x9FE96D7D62C1E186
    assert visitor_hash("c:42") != visitor_hash("c:43")


@pytest.mark.parametrize("size", [0, 1, 300, 5_000])
def test_a_sketch_reads_back_as_it_was_stored(size):
    sketch = DistinctVisitors.of(visitors(0, size))
    again = DistinctVisitors.from_bytes(sketch.to_bytes())
    assert (again.exact, again.count(), again.to_bytes()) == (sketch.exact, sketch.count(), sketch.to_bytes())


def test_a_stored_sketch_carries_its_registers_from_65_visitors_and_only_them_past_512():
    sizes = {n: DistinctVisitors.of(visitors(0, n)).to_bytes() for n in (HASHES_ALONE, HASHES_ALONE + 1, 512, 513)}
    assert [(blob[:1], len(blob)) for blob in sizes.values()] == [
        (b"E", 1 + 8 * HASHES_ALONE),
        (b"X", 1 + REGISTERS + 8 * (HASHES_ALONE + 1)),
        (b"X", 1 + REGISTERS + 8 * EXACT_LIMIT),
        (b"H", 1 + REGISTERS),
    ]
    # the registers an exact sketch carries are those its hashes make
    estimated = DistinctVisitors.of(visitors(0, 200))
    estimated.merge_bytes(DistinctVisitors.of(visitors(10_000, 10_600)).to_bytes())
    by_hash = DistinctVisitors.of(visitors(0, 200) + visitors(10_000, 10_600))
    assert estimated.to_bytes() == by_hash.to_bytes()


@pytest.mark.parametrize(
    "parts",
    [
        [(0, 40), (30, 60)],  # hashes alone, union so too
        [(0, 40), (30, 300)],  # hashes alone and with registers, union exact
        [(0, 60), (50, 110), (100, 530)],  # exact parts, union past the limit
        [(0, 300), (250, 600)],  # exact parts with registers, union past the limit
        [(0, 3_000), (0, 100), (2_500, 6_000), (7_000, 7_010)],  # estimated and exact parts
    ],
)
def test_merging_sketches_gives_the_sketch_of_the_union_in_any_order(parts):
    sketches = [DistinctVisitors.of(visitors(a, b)) for a, b in parts]
    union = DistinctVisitors.of(v for a, b in parts for v in visitors(a, b))
    assert merged(*sketches).to_bytes() == union.to_bytes()
    assert merged(*reversed(sketches)).to_bytes() == union.to_bytes()
    assert merged(*sketches).count() == union.count()


def test_merging_registers_takes_the_larger_of_each():
    rng = random.Random(20)
    for _ in range(20):
        a = bytes(rng.randrange(54) for _ in range(REGISTERS))
        b = bytes(rng.choice((0, rng.randrange(54))) for _ in range(REGISTERS))
        assert register_max(a, b) == bytes(map(max, a, b))


@pytest.mark.parametrize("size", [600, 2_000, 20_000, 150_000])
def test_beyond_512_the_estimate_is_within_three_standard_errors(size):
    estimate = DistinctVisitors.of(visitors(0, size)).count()
    assert abs(estimate - size) <= 3 * RELATIVE_ERROR * size, (size, estimate)


def test_what_is_not_a_sketch_is_refused():
    with pytest.raises(ValueError, match="not a visitor sketch"):
        DistinctVisitors.from_bytes(b"H" + bytes(10))
