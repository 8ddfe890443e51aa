"""Compile a segment's condition into one SQL boolean over `customers`.

Every condition becomes a column test, an EXISTS or an aggregate subquery correlated on the
customer, so a whole segment is one query and the database does the work: no Python loop
over customers. Windows are resolved against `now` when the query is built (a sweep builds
it again each time, which is how a 90-day window lets members go).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.customers.consent import marketing_allowed_sql
from orchestrator.kpis.scope import json_number, json_text
from orchestrator.segments.format import (
    AllOf,
    AnyOf,
    Comparison,
    Consent,
    Converted,
    EventCondition,
    Journey,
    LastSeenCondition,
    Locale,
    NotOf,
    Timezone,
    Trait,
    Window,
)
from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Customer, Enrollment, Event

customers = Customer.__table__
events = Event.__table__
enrollments = Enrollment.__table__
conversions = Conversion.__table__


def window_start(window: Window, now: datetime) -> datetime | None:
    """The start of a window (UTC); None: no window, all history."""
    if window.within is not None:
        return now - window.within
    if window.since is None:
        return None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window.since == "start_of_year":
        return day.replace(month=1, day=1)
    if window.since == "start_of_month":
        return day.replace(day=1)
    if window.since == "start_of_week":  # Monday, as ISO weeks start
        return day - timedelta(days=day.weekday())
    if window.since == "start_of_day":
        return day
    return datetime.fromisoformat(window.since).replace(tzinfo=now.tzinfo)


def compare(value: sa.ColumnElement, comparison: Comparison) -> sa.ColumnElement[bool]:
    bounds = {
        "equals": value.__eq__,
        "at_least": value.__ge__,
        "at_most": value.__le__,
        "greater_than": value.__gt__,
        "less_than": value.__lt__,
    }
    return sa.and_(
        *(test(getattr(comparison, name)) for name, test in bounds.items() if getattr(comparison, name) is not None)
    )


def since(column: sa.ColumnElement, start: datetime | None) -> list[sa.ColumnElement[bool]]:
    return [] if start is None else [column >= start]


def condition_sql(condition, now: datetime, dialect: str) -> sa.ColumnElement[bool]:
    """The condition as a boolean over the current `customers` row."""
    if isinstance(condition, AllOf):
        return sa.and_(*(condition_sql(c, now, dialect) for c in condition.all))
    if isinstance(condition, AnyOf):
        return sa.or_(*(condition_sql(c, now, dialect) for c in condition.any))
    if isinstance(condition, NotOf):
        return sa.not_(condition_sql(condition.not_, now, dialect))
    if isinstance(condition, Trait):
        return _trait(condition, dialect)
    if isinstance(condition, Consent):
        allowed = marketing_allowed_sql(customers.c.id, condition.consent.channel)
        return allowed if condition.consent.opted_in else sa.not_(allowed)
    if isinstance(condition, EventCondition):
        return _event(condition, now, dialect)
    if isinstance(condition, LastSeenCondition):
        test = condition.last_seen
        seen = sa.exists().where(
            events.c.customer_id == customers.c.id, events.c.timestamp >= now - (test.within or test.not_within)
        )
        return seen if test.within is not None else sa.not_(seen)
    if isinstance(condition, Locale):
        return _text(customers.c.locale, condition.locale, language_tag=True)
    if isinstance(condition, Timezone):
        return _text(customers.c.timezone, condition.timezone, language_tag=False)
    if isinstance(condition, Journey):
        test = condition.journey
        start = window_start(test, now)
        column = enrollments.c.converted_at if test.converted else enrollments.c.entered_at
        return sa.exists().where(
            enrollments.c.customer_id == customers.c.id,
            enrollments.c.journey_id == test.id,
            column.is_not(None),
            *since(column, start),
        )
    if isinstance(condition, Converted):
        test = condition.converted
        journey = [conversions.c.journey_id == test.journey] if test.journey else []
        return sa.exists().where(
            conversions.c.customer_id == customers.c.id,
            *journey,
            *since(conversions.c.converted_at, window_start(test, now)),
        )
    raise TypeError(f"unknown segment condition {type(condition).__name__}")


def _trait(condition: Trait, dialect: str) -> sa.ColumnElement[bool]:
    test, traits = condition.trait, customers.c.traits
    if test.exists is not None:
        present = json_text(traits, test.name).is_not(None)
        return present if test.exists else sa.not_(present)
    if test.compare is not None:
        return compare(json_number(traits, test.name, dialect), test.compare)
    values = [test.equals] if test.equals is not None else test.in_
    return sa.or_(*(_trait_equals(traits, test.name, value, dialect) for value in values))


def _trait_equals(traits, name: str, value, dialect: str) -> sa.ColumnElement[bool]:
    if isinstance(value, bool):
        # a JSON true or false, not the text "true"
        if dialect == "postgresql":
            return sa.and_(
                sa.func.jsonb_typeof(traits[name]) == "boolean", json_text(traits, name) == str(value).lower()
            )
        return sa.func.json_type(traits, f"$.{name}") == str(value).lower()
    if isinstance(value, (int, float)):
        return json_number(traits, name, dialect) == value
    return json_text(traits, name) == value


def _event(condition: EventCondition, now: datetime, dialect: str) -> sa.ColumnElement[bool]:
    test = condition.event
    matching = [
        events.c.customer_id == customers.c.id,
        events.c.type == "track",
        events.c.name == test.name,
        events.c.unverified.is_(None),  # a page's track that cannot prove its userId (events/site_identity.py)
        *since(events.c.timestamp, window_start(test, now)),
    ]
    if test.sum is not None:
        total = sa.func.coalesce(sa.func.sum(json_number(events.c.properties, test.sum.property, dialect)), 0)
        return compare(sa.select(total).where(*matching).scalar_subquery(), test.sum.compare)
    if test.count is None:
        return sa.exists().where(*matching)
    return compare(sa.select(sa.func.count()).where(*matching).scalar_subquery(), test.count)


def _text(column, test, language_tag: bool) -> sa.ColumnElement[bool]:
    if test.equals is not None:
        return sa.func.lower(column) == test.equals.lower()
    prefix = test.prefix.lower()
    value = sa.func.lower(column)
    if not language_tag:
        return sa.func.substr(value, 1, len(prefix)) == prefix
    # fr matches fr, fr-FR and fr_FR, not fro: a language tag's prefix ends at a separator
    head = sa.func.substr(value, 1, len(prefix) + 1)
    return sa.or_(value == prefix, head == prefix + "-", head == prefix + "_")


def segment_query(condition, now: datetime, dialect: str) -> sa.Select:
    """`SELECT customers.id` of everyone matching `condition` now; an erased customer
    (customers/erasure.py) matches no segment, whatever their kept orders say."""
    return sa.select(customers.c.id).where(customers.c.erased_at.is_(None), condition_sql(condition, now, dialect))
