"""What a KPI query looks at: filters, grouping, and the few SQL expressions that differ
between SQLite and PostgreSQL (calendar day, adding days, numbers inside JSON).

Time ranges are half-open, [since, until), and apply to a message's `created_at` (the
moment its step ran): a message's later delivery, replies and conversions count with it,
in the period (and on the UTC day) it was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from orchestrator.policies.frequency import REASON_PREFIX
from orchestrator.storage.models import Message
from orchestrator.storage.queries import is_postgresql

_COLUMN_OF = {"journey": "journey_id", "step": "step_id", "channel": "channel", "template": "template"}

messages = Message.__table__


@dataclass(frozen=True)
class KpiScope:
    journey: str | None = None
    step: str | None = None
    channel: str | None = None
    template: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    group_by: tuple[str, ...] = ()

    @property
    def narrows_messages(self) -> bool:
        """Whether the filter picks some messages (not only a time range)."""
        return any((self.journey, self.step, self.channel, self.template))

    def equality_filters(self) -> dict[str, str]:
        """Column name → value, for tables that carry journey/step/channel/template too."""
        return {_COLUMN_OF[name]: value for name in _COLUMN_OF if (value := getattr(self, name)) is not None}


def message_conditions(scope: KpiScope, table: sa.Table = messages) -> list:
    # Conversation replies (agent, auto reply) have no journey: they are not campaign sends.
    conditions = [table.c.journey_id.is_not(None)]
    conditions += [table.c[column] == value for column, value in scope.equality_filters().items()]
    if scope.since is not None:
        conditions.append(table.c.created_at >= scope.since)
    if scope.until is not None:
        conditions.append(table.c.created_at < scope.until)
    return conditions


def column_of(dimension: str) -> str:
    return "day" if dimension == "day" else _COLUMN_OF[dimension]


def calendar_day(column, dialect: str):
    """The UTC calendar day of a timestamp."""
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)  # SQLite keeps UTC timestamps as text


def utc_hour(column, dialect: str):
    """A timestamp truncated to its UTC hour."""
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", column, "UTC")
    # The text layout SQLAlchemy stores and reads back as a datetime.
    return sa.type_coerce(sa.func.strftime("%Y-%m-%d %H:00:00.000000", column), column.type)


def quarter_hour(column, dialect: str):
    """A timestamp truncated to its quarter hour (every zone's offset is whole quarter hours)."""
    if dialect == "postgresql":
        return sa.func.date_bin(sa.text("interval '15 minutes'"), column, sa.text("timestamptz '2000-01-01 00:00+00'"))
    minute = sa.cast(sa.func.strftime("%M", column), sa.Integer) / 15 * 15
    text = sa.func.printf("%s:%02d:00.000000", sa.func.strftime("%Y-%m-%d %H", column), minute)
    return sa.type_coerce(text, column.type)


def day_text(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def skip_reason(column, dialect: str):
    """A skipped message's reason as KPIs count it. A frequency cap's names the message that
    won the slot, in parentheses: counted without them, every cap is one bucket
    ("frequency_cap: sms per_day 1"), not one per winner."""
    cut = (sa.func.strpos if dialect == "postgresql" else sa.func.instr)(column, " (")
    return sa.case(
        (sa.and_(column.like(f"{REASON_PREFIX}%"), cut > 0), sa.func.substr(column, 1, cut - 1)),
        else_=sa.func.coalesce(column, "unspecified"),
    )


def capped_count(reasons: dict[str, int]) -> int:
    """How many of the skipped messages a frequency cap skipped, from their counts per reason."""
    return sum(n for reason, n in reasons.items() if reason.startswith(REASON_PREFIX))


def plus_days(column, days: int, dialect: str):
    if dialect == "postgresql":
        return column + sa.func.make_interval(0, 0, 0, days)
    # Same text layout SQLAlchemy stores ('YYYY-MM-DD HH:MM:SS.fff'), so text order is time order.
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", column, f"{days:+d} days")


def start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def split_by_whole_days(since: datetime | None, until: datetime | None):
    """[since, until) as whole UTC days (read from the rollups) and the parts of days at
    either end (counted from the raw rows, or from an hourly rollup): ((first_day, end_day)
    or None, [(start, end), ...]). None as a bound means unbounded."""
    return _split_by_whole(since, until, start_of_day, timedelta(days=1))


def split_by_whole_hours(since: datetime, until: datetime):
    """[since, until) as whole UTC hours and the minutes at either end, as `split_by_whole_days`."""
    return _split_by_whole(since, until, start_of_hour, timedelta(hours=1))


def _split_by_whole(since: datetime | None, until: datetime | None, floor, unit: timedelta):
    first = None if since is None else floor(since + unit - timedelta.resolution)
    end = None if until is None else floor(until)
    if first is not None and end is not None and first >= end:
        return None, [(since, until)]
    edges = []
    if since is not None and since < first:
        edges.append((since, first))
    if until is not None and end < until:
        edges.append((end, until))
    return (first, end), edges


def json_text(column, key: str):
    return column[key].as_string()


def json_number(column, key: str, dialect: str):
    """A JSON property as a number: JSON numbers, and strings that are plain decimals
    ("80.00"); anything else is NULL rather than an error that would fail the whole query."""
    text = json_text(column, key)
    if dialect == "postgresql":
        return sa.case((text.op("~")(r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"), sa.cast(text, sa.Numeric())), else_=None)
    kind = sa.func.json_type(column, f"$.{key}")
    return sa.case(
        (kind.in_(("integer", "real")), sa.func.json_extract(column, f"$.{key}")),
        (
            sa.and_(
                kind == "text",
                sa.func.trim(text).op("GLOB")("[0-9]*"),
                sa.not_(sa.func.trim(text).op("GLOB")("*[^0-9.]*")),
            ),
            sa.cast(text, sa.Float),
        ),
        else_=None,
    )


def counting(condition) -> sa.ColumnElement:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END): a conditional count both databases run."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


async def without_jit(session) -> None:
    """PostgreSQL's JIT compiler fires on these queries' cost estimates and spends more time
    compiling (~100 ms) than the queries take to run; off for the rest of the transaction."""
    if is_postgresql(session):
        await session.exec(sa.text("SET LOCAL jit = off"))
