"""`orchestrator demo`: the whole product in a minute.

Starts the service (API + worker, bundled fake Twilio and SendGrid) on a simulated clock,
then plays the launch journeys for a few thousand synthetic customers through the real HTTP
API: sign-ups, abandoned carts, orders (some before the reminder, some after it), STOP
replies, e-mail engagement reported the way SendGrid reports it, deliveries and NPS
answers. Status callbacks come from the fake Twilio, signed, to our webhooks. At the end it
prints the KPI table per journey and channel, as `GET /v1/kpis` computes it, with a legend,
the holdout lift of each journey, and where the database is kept.

Quiet by default (a progress bar, then the results): the request logs of the service and
its clients would bury the table. `--verbose` shows them.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from orchestrator.channels.configure import twilio_auth_token
from orchestrator.config import Settings
from orchestrator.fakes.sendgrid_events import signed_headers
from orchestrator.fakes.server import free_port, serve_in_thread

LOCALES = ["en", "fr", "es", "zh-Hant"]
ZONES = ["Europe/Paris", "America/New_York", "Asia/Taipei", "America/Mexico_City"]
START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # a Monday morning
HOUR = 3600
STAGES = 8  # clock advances in `Demo.play`, for the progress bar
SETTLE_SECONDS = 60  # the longest the demo waits for the last status callbacks


class Progress:
    """One line that fills as the demo plays (a line per stage when not on a terminal)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stdout

    def step(self, label: str) -> None:
        self.done += 1
        filled = round(20 * self.done / self.total)
        line = f"  [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} {label}"
        if self.stream.isatty():
            self.stream.write("\r" + line.ljust(100)[:100] + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Demo:
    def __init__(self, api: httpx.Client, settings: Settings, customers: int, seed: int) -> None:
        self.api, self.settings, self.count, self.rng = api, settings, customers, random.Random(seed)
        self.ids = [f"demo-{i}" for i in range(customers)]
        self.phones: dict[str, str] = {}
        self.progress = Progress(STAGES)

    def batch(self, calls: list[dict]) -> None:
        for first in range(0, len(calls), 500):
            response = self.api.post("/v1/batch", json={"batch": calls[first : first + 500]})
            response.raise_for_status()

    def advance(self, seconds: float, label: str) -> None:
        self.api.post("/v1/admin/clock/advance", json={"seconds": seconds}, timeout=600).raise_for_status()
        jump = f"+{seconds / 60:g} min" if seconds < HOUR else f"+{seconds / HOUR:g} h"
        self.progress.step(f"{jump}  {label}")

    def inbound(self, user_id: str, body: str, n: int) -> None:
        url = self.settings.public_base_url + "/webhooks/twilio/inbound"
        form = {
            "MessageSid": f"SM{n:032x}",  # Twilio's shape, or the webhook refuses it "AccountSid": "AC" + "0" * 32, "From": self.phones[user_id],
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        signature = RequestValidator(twilio_auth_token(self.settings)).compute_signature(url, form)
        self.api.post("/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})

    def sign_up(self) -> None:
        calls = []
        for i, user in enumerate(self.ids):
            self.phones[user] = f"+1{415 + i // 9000:03d}555{1000 + i % 9000:04d}"
            traits = {
                "email": f"{user}@example.com",
                "phone": self.phones[user],
                "first_name": f"Client {i}",
                "locale": self.rng.choice(LOCALES),
                "timezone": self.rng.choice(ZONES),
                "sms_opt_in": self.rng.random() < 0.7,
                "whatsapp_opt_in": self.rng.random() < 0.3,
            }
            calls += [
                {"type": "identify", "userId": user, "traits": traits},
                {"type": "track", "userId": user, "event": "Signed Up", "messageId": f"signup-{user}"},
            ]
        self.batch(calls)

    def email_engagement(self) -> None:
        """What SendGrid's Event Webhook would report for the welcome e-mails."""
        events, offset = [], 0
        while True:
            page = self.api.get(
                "/v1/messages",
                params={
                    "channel": "email",
                    "limit": 500,  # sent or delivered
                    "offset": offset,
                },
            ).json()
            for message in page["items"]:
                roll = self.rng.random()
                kinds = ["delivered"] + (["open"] if roll < 0.45 else []) + (["click"] if roll < 0.12 else [])
                if roll > 0.985:
                    kinds = ["bounce"]
                events += [
                    {
                        "email": message["to_address"],
                        "event": kind,
                        "send_key": message["send_key"],
                        "sg_event_id": f"{message['send_key']}-{kind}",
                        "timestamp": int(time.time()),
                        "sg_message_id": f"{message['provider_message_id']}.demo",
                        "type": "bounce",
                    }
                    for kind in kinds
                ]
            offset += 500
            if offset >= page["total"]:
                break
        for first in range(0, len(events), 1000):
            # Signed with the bundled fake SendGrid's key, as the fake signs its own events.
            body = json.dumps(events[first : first + 1000]).encode()
            self.api.post(
                "/webhooks/sendgrid/events",
                content=body,
                headers=signed_headers(self.settings.fake_sendgrid_signing_key, body, int(time.time())),
            )

    def play(self) -> None:
        print(f"Playing the launch journeys for {self.count} customers on simulated time:")
        self.sign_up()
        self.advance(60, "welcome e-mails sent")
        self.email_engagement()
        carts = [u for u in self.ids if self.rng.random() < 0.5]
        self.batch(
            [{"type": "track", "userId": u, "event": "Cart Abandoned", "properties": {"cart_value": 80}} for u in carts]
        )
        early = [u for u in carts if self.rng.random() < 0.15]
        self.advance(0.5 * HOUR, f"{len(carts)} carts abandoned")
        self.order(early)
        self.advance(13 * HOUR, "cart reminders by SMS (quiet hours respected per time zone)")
        reminded = [u for u in carts if u not in set(early)]
        for n, user in enumerate(u for u in reminded if self.rng.random() < 0.05):
            self.inbound(user, "STOP", n)
        late = [u for u in reminded if self.rng.random() < 0.2]
        self.advance(5 * HOUR, "STOP replies")
        self.order(late)
        buyers = early + late + [u for u in self.ids if u not in set(carts) and self.rng.random() < 0.1]
        self.order([u for u in buyers if u not in set(early + late)])
        self.advance(3 * 24 * HOUR, "post-purchase follow-ups (WhatsApp or e-mail)")
        self.batch([{"type": "track", "userId": u, "event": "Order Delivered"} for u in buyers])
        self.advance(7 * 24 * HOUR, "NPS questions by SMS")
        for n, user in enumerate(buyers):
            if self.rng.random() < 0.6:
                self.inbound(user, str(self.rng.choice([10, 10, 9, 9, 8, 7, 6, 3, 9, 10])), 100000 + n)
        self.advance(HOUR, "NPS answers")
        self.email_engagement()  # the post-purchase e-mails too (replayed events count once)
        self.settle()
        # KPI reads only read: the worker's rollup refresh, due after any advance, counts
        # these last webhooks in.
        self.advance(60, "KPI rollups refreshed")

    def settle(self) -> None:
        """Wait for the fake Twilio's last status callbacks: until no SMS or WhatsApp message is
        left at `sent`, or nothing changed for a while."""
        deadline, last, unchanged_since = time.monotonic() + SETTLE_SECONDS, None, time.monotonic()
        while time.monotonic() < deadline:
            waiting = sum(
                self.api.get("/v1/messages", params={"channel": channel, "status": "sent", "limit": 1}).json()["total"]
                for channel in ("sms", "whatsapp")
            )
            if waiting == 0 or time.monotonic() - unchanged_since > 20:  # a loaded machine delays callbacks
                return
            if waiting != last:
                last, unchanged_since = waiting, time.monotonic()
            time.sleep(0.5)

    def order(self, users: list[str]) -> None:
        self.batch(
            [
                {
                    "type": "track",
                    "userId": u,
                    "event": "Order Completed",
                    "messageId": f"order-{u}",
                    "properties": {
                        "order_id": f"order-{u}",
                        "revenue": round(self.rng.uniform(20, 180), 2),
                        "currency": "USD",
                    },
                }
                for u in users
            ]
        )


def kpi_table(report: dict) -> str:
    columns = [
        ("journey", "journey", "{}"),
        ("channel", "channel", "{}"),
        ("sent", "sent", "{}"),
        ("delivered", "delivery_rate", "{:.1f}%"),
        ("open", "open_rate", "{:.1f}%"),
        ("click", "click_rate", "{:.1f}%"),
        ("reply", "reply_rate", "{:.1f}%"),
        ("opt-out", "opt_out_rate", "{:.1f}%"),
        ("conv.", "conversions", "{}"),
        ("conv. rate", "conversion_rate", "{:.1f}%"),
        ("revenue", "revenue", "{:,.2f}"),
        ("AOV", "average_order_value", "{:,.2f}"),
        ("cost", "cost", "{:,.2f}"),
        ("CPA", "cost_per_acquisition", "{:,.2f}"),
    ]
    lines = [[title for title, _, _ in columns]]
    for row in report["rows"]:
        lines.append([("-" if row.get(key) is None else fmt.format(row[key])) for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = "\n".join(
        "  ".join(cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines
    )
    customers = report.get("customers") or {}
    if customers:

        def shown(value, fmt="{:,.2f}"):
            return "-" if value is None else fmt.format(value)

        text += (
            f"\n\nCustomers: {customers.get('ordering_customers')} ordering, AOV {shown(customers.get('average_order_value'))}, "
            f"CLV {shown(customers.get('customer_lifetime_value'))}, retention "
            f"{shown(customers.get('retention_rate'), '{:.1f}%')}, NPS {shown(customers.get('nps'), '{:+.0f}')}"
        )
    return text


LEGEND = """\
sent: reached the provider; delivered: delivered / sent; open, click: of delivered e-mails;
reply, opt-out, conv. rate: replies, opt-outs, credited orders per recipient; conv.: orders
credited (last touch) to the journey's messages; revenue, AOV: of those orders; cost: the
provider's price (the fake Twilio prices SMS and WhatsApp; e-mail has none); CPA: cost / conv.;
'-': no denominator. Customers: CLV = AOV x orders per year x lifespan; retention: customers
active at the end of day 1 still active at the end (day 1 has no earlier customers to keep);
NPS: % promoters - % detractors."""


def lift_lines(lifts: list[dict]) -> list[str]:
    lines = []
    for lift in lifts:
        treatment, holdout = lift["treatment"], lift["holdout"]
        if not holdout["enrollments"]:
            lines.append(f"  {lift['journey']}: no holdout group (a journey's `holdout:` key sets one)")
            continue
        interval = "" if lift["ci_low"] is None else f" (95 % CI {lift['ci_low']:+.1f} to {lift['ci_high']:+.1f})"
        lines.append(
            f"  {lift['journey']}: {treatment['conversion_rate']:.1f}% of {treatment['enrollments']} messaged vs "
            f"{holdout['conversion_rate']:.1f}% of {holdout['enrollments']} held out: "
            f"lift {lift['lift']:+.1f} points{interval}"
        )
    return lines


QUIETED = ("", "httpx", "httpcore", "uvicorn", "uvicorn.access", "orchestrator", "apscheduler")


@contextmanager
def quiet_logs(verbose: bool) -> Iterator[None]:
    """The service, its worker and the clients log every request at INFO: thousands of lines.
    Only errors show while the demo plays; the levels are restored after it."""
    loggers = [logging.getLogger(name) for name in QUIETED]
    levels = [logger.level for logger in loggers]
    if not verbose:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def run_demo(
    customers: int = 2000,
    seed: int = 7,
    database_url: str | None = None,
    port: int | None = None,
    verbose: bool = False,
) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="orchestrator-demo-"))
    port = port or free_port()
    settings = Settings(
        database_url=database_url or f"sqlite:///{workdir / 'demo.db'}",
        port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        simulated_clock=True,
        simulated_clock_start=START.isoformat(),
        worker_poll_seconds=0.5,
    )
    from orchestrator.api.app import create_app

    started = time.monotonic()
    app = create_app(settings)
    with quiet_logs(verbose), serve_in_thread(app, port=port) as url, httpx.Client(base_url=url, timeout=120) as api:
        # The started service's settings carry the secrets it generated (the fakes' credentials).
        Demo(api, app.state.runtime.settings, customers, seed).play()
        report = api.get("/v1/kpis", params={"group_by": ["journey", "channel"], "include": "customers"}).json()
        # Retention needs customers active before its period (on day 0 there are none): from day 1 on.
        later = api.get("/v1/kpis", params={"include": "customers", "from": (START + timedelta(days=1)).isoformat()})
        report["customers"]["retention_rate"] = later.json()["customers"]["retention_rate"]
        journeys = sorted({row["journey"] for row in report["rows"] if row.get("journey")})
        lifts = [api.get("/v1/kpis", params={"journey": journey}).json()["lift"] for journey in journeys]
    table = kpi_table(report)
    lifts_text = "\n".join(lift_lines([lift for lift in lifts if lift]))
    print(
        f"\nKPIs per journey and channel (GET /v1/kpis?group_by=journey&group_by=channel), "
        f"{time.monotonic() - started:.0f} s:\n\n{table}\n\n{LEGEND}\n\n"
        f"Holdout lift (GET /v1/kpis?journey=...): goal reached, messaged vs held out\n{lifts_text}\n"
    )
    print(
        f"Database: {settings.database_url}. Open the API on it: DATABASE_URL={settings.database_url} "
        f"ORCHESTRATOR_SIMULATED_CLOCK=true ./serve.sh, then the console at http://127.0.0.1:8000/ "
        f"or the API docs at http://127.0.0.1:8000/docs"
    )
    return table + "\n" + lifts_text
