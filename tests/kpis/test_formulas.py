"""The arithmetic of KPIs: undefined is None, never 0 or NaN."""

from __future__ import annotations

import math

import pytest

from orchestrator.kpis.formulas import (
    difference_of_proportions,
    lifetime_value,
    net_promoter_score,
    percent,
    ratio,
    retention_rate,
)


def test_ratios_without_a_denominator_are_undefined():
    assert percent(1, 0) is None and ratio(5, 0) is None and ratio(None, 3) is None and ratio(3, None) is None
    assert percent(0, 4) == 0.0 and percent(1, 3) == 33.33 and ratio(2, 3) == 0.6667


def test_net_promoter_score():
    assert net_promoter_score(promoters=5, detractors=2, responses=10) == 30.0
    assert net_promoter_score(0, 3, 3) == -100.0
    assert net_promoter_score(0, 0, 0) is None


def test_retention():
    assert retention_rate(at_start=10, at_end=12, new=4) == 80.0
    assert retention_rate(at_start=0, at_end=3, new=3) is None


def test_lifetime_value():
    value = lifetime_value(
        revenue=1000, orders_with_revenue=20, orders=20, customers=10, period_days=365, lifespan_years=3
    )
    assert (value.average_order_value, value.purchase_frequency, value.purchase_frequency_per_year) == (50.0, 2.0, 2.0)
    assert value.customer_lifetime_value == 300.0  # 50 × 2 a year × 3 years
    half_year = lifetime_value(500, 10, 10, 10, period_days=182.5, lifespan_years=3)
    assert (half_year.purchase_frequency_per_year, half_year.customer_lifetime_value) == (2.0, 300.0)
    nothing = lifetime_value(0, 0, 0, 0, 365, 3)
    assert nothing.average_order_value is None and nothing.customer_lifetime_value is None


def agresti_caffo(x_t, n_t, x_c, n_c):
    a_t, a_c = (x_t + 1) / (n_t + 2), (x_c + 1) / (n_c + 2)
    margin = 1.96 * math.sqrt(a_t * (1 - a_t) / (n_t + 2) + a_c * (1 - a_c) / (n_c + 2))
    return 100 * (a_t - a_c - margin), 100 * (a_t - a_c + margin)


@pytest.mark.parametrize("x_t, n_t, x_c, n_c", [(120, 1000, 90, 1000), (2, 3, 1, 2), (0, 50, 0, 50), (50, 50, 0, 10)])
def test_difference_of_proportions(x_t, n_t, x_c, n_c):
    result = difference_of_proportions(x_t, n_t, x_c, n_c)
    low, high = agresti_caffo(x_t, n_t, x_c, n_c)
    assert result.difference == round(100 * (x_t / n_t - x_c / n_c), 2)
    assert result.ci_low == pytest.approx(max(low, -100), abs=0.01)
    assert result.ci_high == pytest.approx(min(high, 100), abs=0.01)
    assert result.ci_low < result.ci_high  # never a single point, even with no conversions at all


def test_difference_of_proportions_figures():
    result = difference_of_proportions(120, 1000, 90, 1000)
    assert (result.difference, result.relative, result.ci_low, result.ci_high, result.significant) == (
        3.0,
        33.33,
        0.3,
        5.68,
        True,
    )  # p̃ = 121/1002, 91/1002; margin 1.96 × 0.013725
    none_converted = difference_of_proportions(0, 50, 0, 50)
    assert (none_converted.difference, none_converted.relative, none_converted.significant) == (0.0, None, False)


def test_a_group_without_enrollments_leaves_lift_undefined():
    result = difference_of_proportions(3, 10, 0, 0)
    assert (result.difference, result.ci_low, result.ci_high, result.significant) == (None, None, None, None)
