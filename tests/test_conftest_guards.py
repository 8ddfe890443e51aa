"""The guards in tests/conftest.py notice what they are there to notice."""

from __future__ import annotations

import gc

import pytest

from tests.conftest import TIERS, restore_collector, select_phase


def test_a_frozen_collector_is_noticed_and_thawed():
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0  # what every test starts from

    gc.freeze()
    gc.set_threshold(700, 10, 100)
    assert restore_collector(threshold, 0) is True

    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, threshold)
    assert restore_collector(threshold, 0) is False  # nothing left to restore


def test_other_thresholds_alone_are_noticed():
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0] + 1)
    assert restore_collector(threshold, 0) is True
    assert gc.get_threshold() == threshold


def test_every_test_here_has_exactly_one_tier(request):
    tiers = [tier for tier in TIERS if request.node.get_closest_marker(tier)]
    assert tiers == ["unit"]


@pytest.mark.integration
def test_a_tier_a_test_gives_itself_is_kept(request):
    assert [tier for tier in TIERS if request.node.get_closest_marker(tier)] == ["integration"]


def test_a_test_on_a_database_fixture_is_integration(database_url, request):
    assert [tier for tier in TIERS if request.node.get_closest_marker(tier)] == ["integration"]


class FakeItem:
    def __init__(self, name: str, *markers: str):
        self.name, self.markers = name, markers

    def get_closest_marker(self, name: str):
        return name if name in self.markers else None


class FakeConfig:
    def __init__(self):
        self.deselected: list[str] = []
        self.hook = self

    def pytest_deselected(self, items):
        self.deselected += [item.name for item in items]


@pytest.mark.parametrize(
    ("phase", "kept", "deselected"),
    [
        ("shared", ["beside_others"], ["by_itself"]),
        ("alone", ["by_itself"], ["beside_others"]),
        ("", ["beside_others", "by_itself"], []),  # plain pytest: everything, as before test.sh had phases
    ],
)
def test_each_phase_runs_its_own_tests_and_reports_the_rest_deselected(phase, kept, deselected):
    items, config = [FakeItem("beside_others", "unit"), FakeItem("by_itself", "acceptance", "alone")], FakeConfig()
    select_phase(config, items, phase)
    assert ([item.name for item in items], config.deselected) == (kept, deselected)
