"""KPI cells counted from messages: one row per (UTC day, journey, step, channel,
template), exactly the rows of the `kpi_daily` / `kpi_daily_skips` rollups.

The rollup stores these for whole days; a query over part of a day counts the same cells
from messages directly, so both agree by construction.

Per cell:
- messages, sent (`sent_at` set: the provider has it), delivered (`delivered_at` set),
  failed (`failed`/`undelivered`), skipped, and e-mail's sent/delivered/opened;
- clickable: delivered messages that had something to click: every delivered e-mail, and
  delivered SMS/WhatsApp messages with at least one tracked short link (`tracked_links`);
  clicked: those with a counted click (`first_clicked_at`: a message counts once however
  often it is clicked, and link previews and scanners never set it, see docs/links.md);
- bounced: sent e-mails with a hard (`bounce`) or soft (`blocked`) bounce report;
- recipients: distinct customers with a sent message;
- replied / opted_out: distinct customers whose reply (STOP excluded) or opt-out record
  (any source) is credited to one of the cell's messages. Like orders, a response is
  credited to the last journey message sent to the customer on that channel before it,
  within RESPONSE_WINDOW: each reply or opt-out counts once, for one message;
- cost (sum of provider prices; `priced` counts the messages that had one);
- conversions, orders_with_revenue, revenue: orders credited to the cell's messages.

`enrollment_cells` does the same for `kpi_enrollments_daily`: enrollments and goals reached
per (UTC day of entry, journey, holdout group, status, exit reason).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.kpis.scope import calendar_day, counting, messages, plus_days, skip_reason
from orchestrator.storage.feedback_models import Consent, Conversion, InboundMessage, MessageStatusEvent
from orchestrator.storage.models import Enrollment
from orchestrator.vocabulary import Channel, MessageStatus

RESPONSE_WINDOW = timedelta(days=7)
FAILED_STATUSES = (MessageStatus.failed, MessageStatus.undelivered)
# SendGrid's hard bounce (`bounce`) and soft bounce (`blocked`) as webhooks/sendgrid.py records them.
BOUNCE_STATUSES = ("bounce", "blocked")
KEY_COLUMNS = ("day", "journey_id", "step_id", "channel", "template")
MEASURES = (
    "messages",
    "sent",
    "delivered",
    "failed",
    "skipped",
    "recipients",
    "email_sent",
    "email_delivered",
    "opened",
    "clickable",
    "clicked",
    "bounced",
    "replied",
    "opted_out",
    "priced",
    "cost",
    "conversions",
    "orders_with_revenue",
    "revenue",
)

conversions = Conversion.__table__
status_events = MessageStatusEvent.__table__
inbound = InboundMessage.__table__
consents = Consent.__table__
enrollments = Enrollment.__table__


def cell_keys(dialect: str) -> list:
    m = messages.c
    return [
        calendar_day(m.created_at, dialect).label("day"),
        m.journey_id.label("journey_id"),
        sa.func.coalesce(m.step_id, "").label("step_id"),
        m.channel.label("channel"),
        sa.func.coalesce(m.template, "").label("template"),
    ]


def _conversions_per_message(since: datetime | None) -> sa.Subquery:
    c = conversions.c
    query = sa.select(
        c.message_id,
        sa.func.count().label("orders"),
        sa.func.count(c.revenue).label("orders_with_revenue"),
        sa.func.sum(c.revenue).label("revenue"),
    ).group_by(c.message_id)
    if since is not None:  # an order is credited to a message sent before it
        query = query.where(c.converted_at >= since)
    return query.subquery("conversions_per_message")


def _responses_per_message(dialect: str, since: datetime | None) -> sa.Subquery:
    """message id → whether a reply / an opt-out was credited to it (last touch)."""
    replies = sa.select(
        inbound.c.customer_id,
        inbound.c.channel,
        inbound.c.received_at.label("at"),
        sa.literal(1).label("replied"),
        sa.literal(0).label("opted_out"),
    ).where(sa.or_(inbound.c.keyword.is_(None), inbound.c.keyword != "opt_out"))
    opt_outs = sa.select(
        consents.c.customer_id,
        consents.c.channel,
        consents.c.recorded_at.label("at"),
        sa.literal(0).label("replied"),
        sa.literal(1).label("opted_out"),
    ).where(consents.c.status == "opted_out")
    if since is not None:  # a response comes after the message it answers
        replies = replies.where(inbound.c.received_at >= since)
        opt_outs = opt_outs.where(consents.c.recorded_at >= since)
    response = sa.union_all(replies, opt_outs).subquery("responses")
    earlier = messages.alias("earlier")
    last_touch = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.customer_id == response.c.customer_id,
            earlier.c.channel == response.c.channel,
            earlier.c.journey_id.is_not(None),
            earlier.c.sent_at <= response.c.at,
            earlier.c.sent_at > plus_days(response.c.at, -RESPONSE_WINDOW.days, dialect),
        )
        .order_by(earlier.c.sent_at.desc(), earlier.c.id.desc())
        .limit(1)
        .correlate(response)
        .scalar_subquery()
    )
    credited = sa.select(last_touch.label("message_id"), response.c.replied, response.c.opted_out).subquery("credited")
    return (
        sa.select(
            credited.c.message_id,
            sa.func.max(credited.c.replied).label("replied"),
            sa.func.max(credited.c.opted_out).label("opted_out"),
        )
        .where(credited.c.message_id.is_not(None))
        .group_by(credited.c.message_id)
        .subquery("responses_per_message")
    )


def cell_totals(dialect: str, conditions: list, since: datetime | None) -> sa.Select:
    """The cells of the messages matching `conditions` (created at or after `since`)."""
    m = messages.c
    orders = _conversions_per_message(since)
    answers = _responses_per_message(dialect, since)
    sent, email = m.sent_at.is_not(None), m.channel == Channel.email
    email_delivered = sa.and_(email, m.delivered_at.is_not(None))
    # E-mail links are tracked by SendGrid or our SMTP redirects; SMS/WhatsApp only where a
    # short link was put in the body, so a message without links does not dilute the CTR.
    clickable = sa.and_(m.delivered_at.is_not(None), sa.or_(email, m.tracked_links > 0))
    bounce_reported = sa.exists().where(status_events.c.message_id == m.id, status_events.c.status.in_(BOUNCE_STATUSES))
    keys = cell_keys(dialect)
    return (
        sa.select(
            *keys,
            sa.func.count().label("messages"),
            counting(sent).label("sent"),
            counting(m.delivered_at.is_not(None)).label("delivered"),
            counting(m.status.in_(FAILED_STATUSES)).label("failed"),
            counting(m.status == MessageStatus.skipped).label("skipped"),
            sa.func.count(sa.distinct(sa.case((sent, m.customer_id)))).label("recipients"),
            counting(sa.and_(email, sent)).label("email_sent"),
            counting(email_delivered).label("email_delivered"),
            counting(sa.and_(email_delivered, m.first_opened_at.is_not(None))).label("opened"),
            counting(clickable).label("clickable"),
            counting(sa.and_(clickable, m.first_clicked_at.is_not(None))).label("clicked"),
            counting(sa.and_(email, sent, bounce_reported)).label("bounced"),
            sa.func.count(sa.distinct(sa.case((answers.c.replied == 1, m.customer_id)))).label("replied"),
            sa.func.count(sa.distinct(sa.case((answers.c.opted_out == 1, m.customer_id)))).label("opted_out"),
            sa.func.count(m.cost).label("priced"),
            sa.func.sum(m.cost).label("cost"),
            sa.func.coalesce(sa.func.sum(orders.c.orders), 0).label("conversions"),
            sa.func.coalesce(sa.func.sum(orders.c.orders_with_revenue), 0).label("orders_with_revenue"),
            sa.func.sum(orders.c.revenue).label("revenue"),
        )
        .select_from(
            messages.outerjoin(orders, orders.c.message_id == m.id).outerjoin(answers, answers.c.message_id == m.id)
        )
        .where(*conditions)
        .group_by(*keys)
    )


def skip_cells(dialect: str, conditions: list) -> sa.Select:
    m = messages.c
    keys = cell_keys(dialect)
    reason = skip_reason(m.status_reason, dialect).label("reason")
    return (
        sa.select(*keys, reason, sa.func.count().label("count"))
        .where(*conditions, m.status == MessageStatus.skipped)
        .group_by(*keys, reason)
    )


ENROLLMENT_KEY = ("day", "journey_id", "holdout", "status", "exit_reason")


def enrollment_cells(dialect: str, conditions: list) -> sa.Select:
    """Enrollments and goals reached per (UTC day of entry, journey, holdout group, status,
    exit reason or '')."""
    e = enrollments.c
    keys = [
        calendar_day(e.entered_at, dialect).label("day"),
        e.journey_id.label("journey_id"),
        e.holdout.label("holdout"),
        e.status.label("status"),
        sa.func.coalesce(e.exit_reason, "").label("exit_reason"),
    ]
    return (
        sa.select(*keys, sa.func.count().label("enrollments"), sa.func.count(e.converted_at).label("converted"))
        .where(*conditions)
        .group_by(*keys)
    )
