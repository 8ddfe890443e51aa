"""Message KPIs per group: counts summed from the daily cells, ratios from `formulas`.

Definitions (each ratio is None when its denominator is 0; see `cells.py` for the counts):

- messages: every message a journey step produced (queued, sent, skipped, failed, ...)
- sent: reached the provider (`sent_at` is set), whatever happened next
- delivered: the provider (or an open/click) confirmed delivery (`delivered_at` is set)
- failed: status `failed` or `undelivered`; skipped: status `skipped` (by reason too);
  capped: skipped by a frequency cap (reasons `frequency_cap: …`, docs/frequency-caps.md)
- recipients: customers with a sent message, distinct per day and step: a customer
  messaged by two steps, or on two days, counts once for each (the cells are daily rollups;
  distinct counts over months of messages would take seconds)
- delivery rate = delivered / sent × 100
- open rate = opened e-mails / delivered e-mails × 100 (only e-mail reports opens)
- click-through rate = clicked / clickable × 100 on every channel, where clickable is
  delivered e-mails plus delivered SMS/WhatsApp messages carrying a tracked short link, and
  clicked those of them with at least one counted click (once per message; link previews
  and scanners excluded). Group by channel for e-mail's, SMS's and WhatsApp's own CTR.
- bounce rate = sent e-mails with a bounce report (hard or soft) / sent e-mails × 100
- reply rate = replied / recipients × 100 and opt-out rate = opted_out / recipients × 100,
  where a reply (STOP excluded) or an opt-out record (any source) is credited to the last
  journey message sent to the customer on that channel in the 7 days before it
- conversions: orders credited (last touch) to the group's messages; conversion rate =
  conversions / recipients × 100
- revenue: sum over those orders; average order value = revenue / orders with a revenue
- cost: sum of provider prices (None when no message reported one); cost per acquisition
  = cost / conversions; return on spend = revenue / cost
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.cells import MEASURES
from orchestrator.kpis.formulas import money, percent, ratio
from orchestrator.kpis.queries import all_keys, message_totals, skip_reasons
from orchestrator.kpis.scope import KpiScope, capped_count, without_jit

# The measures that are counts; cost and revenue are sums of money, read as floats below.
COUNTED_MEASURES = tuple(name for name in MEASURES if name not in ("cost", "revenue"))


def _number(value) -> int:
    return int(value or 0)


def kpi_row(group: dict[str, Any], totals: dict[str, Any], reasons: dict[str, int]) -> dict[str, Any]:
    n = {name: _number(totals.get(name)) for name in COUNTED_MEASURES}
    revenue = float(totals.get("revenue") or 0)
    cost = float(totals.get("cost") or 0) if n["priced"] else None
    return {
        **group,
        "messages": n["messages"],
        "sent": n["sent"],
        "delivered": n["delivered"],
        "failed": n["failed"],
        "skipped": n["skipped"],
        "skipped_by_reason": dict(sorted(reasons.items())),
        "capped": capped_count(reasons),
        "recipients": n["recipients"],
        "delivery_rate": percent(n["delivered"], n["sent"]),
        "email_sent": n["email_sent"],
        "email_delivered": n["email_delivered"],
        "opened": n["opened"],
        "open_rate": percent(n["opened"], n["email_delivered"]),
        "clickable": n["clickable"],
        "clicked": n["clicked"],
        "click_rate": percent(n["clicked"], n["clickable"]),
        "bounced": n["bounced"],
        "bounce_rate": percent(n["bounced"], n["email_sent"]),
        "replied": n["replied"],
        "reply_rate": percent(n["replied"], n["recipients"]),
        "opted_out": n["opted_out"],
        "opt_out_rate": percent(n["opted_out"], n["recipients"]),
        "conversions": n["conversions"],
        "conversion_rate": percent(n["conversions"], n["recipients"]),
        "revenue": money(revenue),
        "average_order_value": money(ratio(revenue, n["orders_with_revenue"], 6)),
        "cost": money(cost, 5),
        "cost_per_acquisition": money(ratio(cost, n["conversions"], 6), 4),
        "return_on_spend": ratio(revenue, cost),
    }


async def message_kpis(session: AsyncSession, scope: KpiScope) -> list[dict[str, Any]]:
    await without_jit(session)
    totals = await message_totals(session, scope)
    reasons = await skip_reasons(session, scope)
    keys = all_keys(totals, reasons) if scope.group_by else [()]
    return [kpi_row(dict(zip(scope.group_by, key)), totals.get(key, {}), reasons.get(key, {})) for key in keys]
