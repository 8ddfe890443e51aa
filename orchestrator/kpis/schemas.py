"""The shapes KPIs are answered in, with each figure's definition (shown in OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from orchestrator.clock import UtcDatetime

NULL_IF_NO_DENOMINATOR = " Null when the denominator is 0."


def _rate(formula: str) -> object:
    return Field(default=None, description=f"{formula}, percent.{NULL_IF_NO_DENOMINATOR}")


class KpiRow(BaseModel):
    journey: str | None = Field(default=None, description="Set when grouped by journey")
    step: str | None = Field(default=None, description="Set when grouped by step")
    channel: str | None = Field(default=None, description="Set when grouped by channel")
    template: str | None = Field(default=None, description="Set when grouped by template")
    day: str | None = Field(
        default=None, description="UTC day the messages were created (YYYY-MM-DD), when grouped by day"
    )
    messages: int = Field(description="Messages journey steps produced, whatever their status")
    sent: int = Field(description="Messages that reached the provider (`sent_at` set)")
    delivered: int = Field(
        description="Messages confirmed delivered (`delivered_at` set; an e-mail open or click counts)"
    )
    failed: int = Field(description="Messages `failed` or `undelivered`")
    skipped: int = Field(description="Messages not sent (no consent, no address, holdout group, ...)")
    skipped_by_reason: dict[str, int] = Field(
        description="Skipped messages per reason; a frequency cap's without the winning message it names"
    )
    capped: int = Field(
        description="Skipped messages a frequency cap skipped: the `frequency_cap: …` reasons (docs/frequency-caps.md)"
    )
    recipients: int = Field(
        description=(
            "Customers with a sent message, distinct per UTC day and step: a customer messaged by two steps, "
            "or on two days, counts once for each"
        )
    )
    delivery_rate: float | None = _rate("delivered / sent × 100")
    email_sent: int = Field(description="Sent e-mails")
    email_delivered: int = Field(description="Delivered e-mails: the denominator of open and click rates")
    opened: int = Field(description="Delivered e-mails opened at least once")
    open_rate: float | None = _rate("opened e-mails / delivered e-mails × 100")
    clickable: int = Field(
        description=(
            "Delivered messages with something to click: every delivered e-mail, and delivered SMS/WhatsApp "
            "messages carrying a tracked short link: the denominator of the click rate"
        )
    )
    clicked: int = Field(
        description=(
            "Clickable messages with at least one counted click (once per message however often clicked; "
            "link previews and scanners are not clicks)"
        )
    )
    click_rate: float | None = _rate(
        "clicked / clickable × 100 (click-through rate, per channel when grouped by channel)"
    )
    bounced: int = Field(description="Sent e-mails with a hard (`bounce`) or soft (`blocked`) bounce report")
    bounce_rate: float | None = _rate("bounced e-mails / sent e-mails × 100")
    replied: int = Field(
        description=(
            "Customers whose inbound message (STOP excluded) is credited to one of these messages: the last journey "
            "message sent to them on that channel in the 7 days before it"
        )
    )
    reply_rate: float | None = _rate("replied / recipients × 100")
    opted_out: int = Field(
        description=(
            "Customers whose opt-out record (any source: STOP, unsubscribe link, spam report, ...) is credited to one "
            "of these messages, as for replies"
        )
    )
    opt_out_rate: float | None = _rate("opted_out / recipients × 100")
    conversions: int = Field(description="Orders credited (last touch) to these messages")
    conversion_rate: float | None = _rate("conversions / recipients × 100")
    revenue: float = Field(description="Revenue of the credited orders")
    average_order_value: float | None = Field(
        default=None, description=f"revenue / credited orders with a revenue.{NULL_IF_NO_DENOMINATOR}"
    )
    cost: float | None = Field(default=None, description="Sum of provider prices; null when no message reported one")
    cost_per_acquisition: float | None = Field(default=None, description=f"cost / conversions.{NULL_IF_NO_DENOMINATOR}")
    return_on_spend: float | None = Field(
        default=None, description=f"revenue / cost (a ratio, 4.0 = four times the spend).{NULL_IF_NO_DENOMINATOR}"
    )


class CustomerKpis(BaseModel):
    since: UtcDatetime = Field(description="Period start: `from`, else 365 days before `until`")
    until: UtcDatetime = Field(description="Period end (exclusive): `to`, else now")
    orders: int = Field(description="`Order Completed` events in the period, one per order_id")
    ordering_customers: int = Field(description="Customers with an order in the period")
    revenue: float
    average_order_value: float | None = Field(default=None, description="AOV = revenue / orders with a revenue")
    purchase_frequency: float | None = Field(default=None, description="orders / ordering customers, in the period")
    purchase_frequency_per_year: float | None = Field(
        default=None, description="purchase frequency × 365 / days in the period"
    )
    lifespan_years: float = Field(description="Assumed customer lifespan (query `lifespan_years`)")
    customer_lifetime_value: float | None = Field(
        default=None, description="CLV = AOV × purchase frequency per year × lifespan years"
    )
    active_days: int = Field(description="A customer is active at a moment if they ordered in this many days before it")
    customers_at_start: int = Field(description="S: customers active at the period start")
    customers_at_end: int = Field(description="E: customers active at the period end")
    new_customers: int = Field(description="N: customers whose first order ever is in the period")
    retention_rate: float | None = _rate("(E − N) / S × 100")
    nps_responses: int
    promoters: int = Field(description="Answers 9-10")
    passives: int = Field(description="Answers 7-8")
    detractors: int = Field(description="Answers 0-6")
    nps: float | None = Field(
        default=None, description=f"% promoters − % detractors (−100 to 100).{NULL_IF_NO_DENOMINATOR}"
    )


class GroupConversion(BaseModel):
    enrollments: int
    converted: int = Field(description="Enrollments that reached the journey's goal within its window")
    conversion_rate: float | None = _rate("converted / enrollments × 100")


class HoldoutLift(BaseModel):
    journey: str
    treatment: GroupConversion
    holdout: GroupConversion
    lift: float | None = Field(default=None, description="treatment rate − holdout rate, percentage points")
    relative_lift: float | None = Field(default=None, description="lift / holdout rate × 100")
    ci_low: float | None = Field(
        default=None,
        description=(
            "95 % confidence interval of the lift (Agresti–Caffo: p̃ = (x+1)/(n+2) per group, "
            "(p̃_t − p̃_h) ± 1.96·√(p̃_t(1−p̃_t)/(n_t+2) + p̃_h(1−p̃_h)/(n_h+2))), percentage points"
        ),
    )
    ci_high: float | None = None
    significant: bool | None = Field(default=None, description="The interval excludes 0")


class FunnelStep(BaseModel):
    id: str
    kind: str = Field(description="wait, wait_for, if, send or exit")
    branch: str | None = Field(default=None, description="The parent step and branch this step is in")
    reached: int | None = Field(
        default=None,
        description=(
            "First step: entries; send step: enrollments with a message for it; exit step: enrollments that "
            "left with its reason; null for wait/wait_for/if steps, which leave no record once passed"
        ),
    )
    waiting: int = Field(description="Active enrollments whose next step is this one")
    channel: str | None = None
    template: str | None = None
    messages: int | None = None
    sent: int | None = None
    delivered: int | None = None
    delivery_rate: float | None = _rate("delivered / sent × 100")
    failed: int | None = None
    skipped: int | None = None
    skipped_by_reason: dict[str, int] | None = None
    capped: int | None = None
    conversions: int | None = Field(default=None, description="Orders credited to this step's messages")
    revenue: float | None = None
    exited: int | None = None


class ExitCount(BaseModel):
    status: str = Field(description="completed, exited or failed")
    reason: str | None
    count: int


class JourneyStats(BaseModel):
    journey: str
    version: str
    since: UtcDatetime | None
    until: UtcDatetime | None
    entered: int = Field(description="Enrollments that entered in the period (holdout included)")
    active: int
    goal_reached: int = Field(description="Enrollments that reached the goal in its window (holdout included)")
    conversions: int = Field(description="Orders credited to the journey's messages (holdout never earns credit)")
    revenue: float
    steps: list[FunnelStep]
    exits: list[ExitCount]
    lift: HoldoutLift


class SiteKpiRow(BaseModel):
    channel: str | None = Field(
        default=None,
        description=(
            "Set when grouped by channel: our channel (sms, whatsapp, email) for visits from our links, else "
            "utm_medium (else utm_source), `referral` for a referring site, `direct` for none"
        ),
    )
    journey: str | None = Field(
        default=None, description="Set when grouped by journey: the journey of the message credited; '' for none"
    )
    broadcast: str | None = Field(
        default=None, description="Set when grouped by broadcast: the broadcast of the message credited; '' for none"
    )
    source: str | None = Field(
        default=None,
        description="Set when grouped by source: utm_source, else the referrer's host, else `direct`",
    )
    day: str | None = Field(default=None, description="UTC day the visits started (YYYY-MM-DD), when grouped by day")
    visits: int = Field(
        description="Visits (sessions): one visitor's page/screen views less than the inactivity gap apart"
    )
    visitors: int = Field(
        description=(
            "Distinct visitors (customer, else anonymousId) over the whole range and group: a visitor seen on "
            "two days, or from two sources, counts once. Exact up to 512 visitors; beyond, a HyperLogLog "
            "estimate with a relative standard error of 1.6 % (within 3.2 % of the true count 19 times in 20)"
        )
    )
    bounces: int = Field(description="Visits of a single page or screen view")
    pages: int = Field(description="Page and screen views in the visits")
    seconds: int = Field(description="Total time on site: the sum of (last view − first view) over the visits")
    converted: int = Field(
        description=(
            "Visits converted: an `Order Completed` by the visitor during the visit or within the conversion window "
            "after its last view (each order converts at most one visit: the latest that started before it)"
        )
    )
    conversion_rate: float | None = _rate("site conversion rate: converted visits / visits × 100")
    bounce_rate: float | None = _rate("single-view visits / visits × 100")
    average_time_on_site: float | None = Field(
        default=None,
        description=f"seconds / visits, in seconds; a single-view visit counts as 0 s.{NULL_IF_NO_DENOMINATOR}",
    )
    pages_per_visit: float | None = Field(default=None, description=f"pages / visits.{NULL_IF_NO_DENOMINATOR}")
