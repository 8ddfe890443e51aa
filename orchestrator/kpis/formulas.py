"""The arithmetic of KPIs, apart from the SQL that counts: pure functions over counts.

An undefined ratio (nothing to divide by) is None, which the API answers as JSON null:
0 % would claim something was measured, and NaN is not JSON. Rates are percentages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

Z_95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal distribution
DAYS_PER_YEAR = 365

Number = int | float | Decimal


def ratio(numerator: Number | None, denominator: Number | None, digits: int = 4) -> float | None:
    """numerator / denominator, or None when the denominator is 0 (or unknown)."""
    if numerator is None or not denominator:
        return None
    return round(float(numerator) / float(denominator), digits)


def percent(numerator: Number | None, denominator: Number | None) -> float | None:
    """numerator / denominator × 100, two decimals; None when the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return round(100 * float(numerator) / float(denominator), 2)


def money(amount: Number | None, digits: int = 2) -> float | None:
    return None if amount is None else round(float(amount), digits)


def net_promoter_score(promoters: int, detractors: int, responses: int) -> float | None:
    """% promoters (9-10) − % detractors (0-6), from −100 to 100."""
    if not responses:
        return None
    return round(100 * (promoters - detractors) / responses, 2)


def retention_rate(at_start: int, at_end: int, new: int) -> float | None:
    """(customers at end − new customers) / customers at start × 100."""
    return percent(at_end - new, at_start)


@dataclass(frozen=True)
class LifetimeValue:
    average_order_value: float | None
    purchase_frequency: float | None  # orders per customer in the period
    purchase_frequency_per_year: float | None
    lifespan_years: float
    customer_lifetime_value: float | None


def lifetime_value(
    revenue: Number, orders_with_revenue: int, orders: int, customers: int, period_days: float, lifespan_years: float
) -> LifetimeValue:
    """CLV = AOV × purchase frequency per year × lifespan in years.

    AOV = revenue / orders that carry a revenue; purchase frequency = orders / customers
    who ordered in the period, scaled to a year (× 365 / period days) so that the value
    does not depend on how long the period is.
    """
    aov = ratio(revenue, orders_with_revenue, 6)
    frequency = ratio(orders, customers, 6)
    per_year = frequency * DAYS_PER_YEAR / period_days if frequency is not None and period_days > 0 else None
    clv = aov * per_year * lifespan_years if aov is not None and per_year is not None else None
    return LifetimeValue(
        average_order_value=money(aov),
        purchase_frequency=None if frequency is None else round(frequency, 4),
        purchase_frequency_per_year=None if per_year is None else round(per_year, 4),
        lifespan_years=lifespan_years,
        customer_lifetime_value=money(clv),
    )


@dataclass(frozen=True)
class ProportionDifference:
    """Treatment minus control, in percentage points, with a 95 % confidence interval."""

    difference: float | None
    relative: float | None  # difference / control rate, percent
    ci_low: float | None
    ci_high: float | None
    significant: bool | None  # the interval excludes 0


def difference_of_proportions(
    x_treatment: int, n_treatment: int, x_control: int, n_control: int
) -> ProportionDifference:
    """p_t − p_c with the Agresti–Caffo interval (a Wald interval on adjusted counts).

    The point estimate is the observed p_t − p_c. The interval adds one success and one
    failure to each group, p̃ = (x + 1) / (n + 2), and takes

        (p̃_t − p̃_c) ± 1.96 × √( p̃_t(1 − p̃_t)/(n_t + 2) + p̃_c(1 − p̃_c)/(n_c + 2) )

    because the plain Wald interval collapses to a single point when a group has no
    conversions (or only conversions), which small holdouts often do; with the adjustment
    it keeps its 95 % coverage there. Bounds are clamped to [−100, 100]. A group with no
    enrollments leaves everything undefined (None).
    """
    if not n_treatment or not n_control:
        return ProportionDifference(None, None, None, None, None)
    p_t, p_c = x_treatment / n_treatment, x_control / n_control
    a_t, a_c = (x_treatment + 1) / (n_treatment + 2), (x_control + 1) / (n_control + 2)
    margin = Z_95 * math.sqrt(a_t * (1 - a_t) / (n_treatment + 2) + a_c * (1 - a_c) / (n_control + 2))
    low, high = max(-1.0, a_t - a_c - margin), min(1.0, a_t - a_c + margin)
    return ProportionDifference(
        difference=round(100 * (p_t - p_c), 2),
        relative=round(100 * (p_t - p_c) / p_c, 2) if p_c else None,
        ci_low=round(100 * low, 2),
        ci_high=round(100 * high, 2),
        significant=low > 0 or high < 0,
    )
