"""Turn a journey's send step into a message row: choose the channel, check consent and
address, render the template in the customer's locale, and measure SMS segments.

A message that cannot go out is still recorded (skipped or failed, with the reason), so
nothing disappears silently. Templates run marketers' expressions on customers' data: any
error while rendering fails that one message, never the worker's round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from orchestrator.channels.base import Channel
from orchestrator.clock import utc
from orchestrator.config import Settings
from orchestrator.customers.consent import SendPermissions, marketing_refusal
from orchestrator.delivery.short_links import apply_links, web_urls_only
from orchestrator.engine.facts import customer_view
from orchestrator.journeys.compiler import Node
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.templating.budget import RenderBudget, compile_template, render_within
from orchestrator.templating.control_chars import clean_body, clean_header
from orchestrator.templating.render import RenderError, describe_error, render_message
from orchestrator.templating.sms import measure_sms
from orchestrator.templating.store import TemplateStore, text_environment
from orchestrator.vocabulary import MessageStatus, SendKey

ProviderNames = Callable[[Channel], str]


DEFAULT_RENDER_BUDGET = RenderBudget()  # frozen: one instance serves every call


def address_for(customer: Customer, channel: Channel) -> str | None:
    if channel == Channel.email:
        return customer.email
    if channel == Channel.whatsapp:
        return customer.whatsapp or customer.phone
    return customer.phone


def refusal_reason(
    customer: Customer, permissions: SendPermissions, channel: Channel, transactional: bool
) -> str | None:
    address = address_for(customer, channel)
    if not address:
        return f"no {channel.value} address"
    if (channel.value, address) in permissions.suppressed:
        return f"address suppressed ({channel.value})"
    if (channel.value, address) in permissions.erased:  # even transactional: the person asked to be forgotten
        return f"address erased on request ({channel.value})"
    if transactional:
        return None
    return marketing_refusal(channel.value, permissions.consents.get(channel.value))


def choose_channel(
    customer: Customer, permissions: SendPermissions, node: Node, forced: Channel | None = None
) -> tuple[Channel, str | None]:
    """The step's channel, or its fallback when the primary is not allowed."""
    send = node.send
    if forced is not None:
        return forced, refusal_reason(customer, permissions, forced, send.transactional)
    reason = refusal_reason(customer, permissions, send.channel, send.transactional)
    if reason and send.fallback and refusal_reason(customer, permissions, send.fallback, send.transactional) is None:
        return send.fallback, None
    return send.channel, reason


def whatsapp_window_refusal(permissions: SendPermissions, metadata: dict[str, Any], now: datetime) -> str | None:
    """Outside the 24 hours after the customer's last WhatsApp message, only approved
    templates (a `content_sid` in the template's front matter) may be sent."""
    if metadata.get("content_sid"):
        return None
    window = permissions.whatsapp_window_until
    if window is not None and utc(window) > now:
        return None
    return "outside the WhatsApp 24-hour window and the template has no approved content_sid"


@lru_cache(maxsize=4096)
def _variable_template(source: str):
    return compile_template(text_environment, source)


def render_variables(
    variables: dict[str, Any], context: dict[str, Any], budget: RenderBudget = DEFAULT_RENDER_BUDGET
) -> dict[str, Any]:
    """String variables may themselves use Jinja (`"{{ event.cart_url }}?utm=sms"`); what
    they render to may reach a provider field (WhatsApp content variables), so it is cleaned."""
    return {
        key: clean_body(render_within(_variable_template(value), context, budget))
        if isinstance(value, str) and "{" in value
        else value
        for key, value in variables.items()
    }


@dataclass(slots=True)
class MessageDraft:
    """A message row not yet stored. Plain attributes, no ORM or validation machinery:
    a worker prepares thousands of these per second and inserts them in bulk."""

    send_key: str
    customer_id: int
    channel: str
    status: str
    created_at: datetime
    updated_at: datetime
    enrollment_id: int | None = None
    journey_id: str | None = None
    journey_version: str | None = None
    step_id: str | None = None
    provider: str | None = None
    template: str | None = None
    locale: str | None = None
    to_address: str | None = None
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    template_metadata: dict[str, Any] = field(default_factory=dict)
    marketing: bool = True
    priority: int = 0
    fallback_channel: str | None = None
    status_reason: str | None = None
    encoding: str | None = None
    segments: int | None = None
    next_attempt_at: datetime | None = None
    tracked_links: int | None = None

    def as_row(self) -> dict[str, Any]:
        """The row as the bulk INSERT takes it. Every value must be storable: the worker
        inserts a whole round's messages in one statement, and one row PostgreSQL refuses
        (a NUL in a text column) or a JSON encoder chokes on (a YAML date among a step's
        vars) would abort the round for everyone, round after round."""
        row = {name: getattr(self, name) for name in self.__slots__}
        for name, value in row.items():
            if type(value) is str and "\x00" in value:
                row[name] = value.replace("\x00", "")
        row["template_metadata"] = storable_json(row["template_metadata"])
        return row


def storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """`value` as both databases store it: JSON types only (dates as ISO text), no NUL."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # not JSON (a date, a set, NaN): the odd values as text
        return _json_safe(value)
    return _json_safe(value) if "\\u0000" in text else value


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return _json_safe(str(value))


def prepare_message(
    templates: TemplateStore,
    providers: ProviderNames,
    enrollment: Enrollment,
    customer: Customer,
    node: Node,
    now: datetime,
    *,
    fallback_for: Message | None = None,
    permissions: SendPermissions | None = None,
    link_settings: Settings | None = None,
    priority: int = 0,
) -> MessageDraft:
    """Pure apart from its arguments: the simulator calls it with in-memory rows.

    `permissions` defaults to consent read from the customer's traits (for simulation).
    `link_settings` turns URLs of marketing SMS/WhatsApp into tracked short links
    (`delivery.short_links`); without it they go out as written.

    `fallback_for` is a message of this step that failed permanently: the new one goes out
    on its fallback channel under a send key of its own.

    `priority` is the journey's (`priority:`): who wins a frequency cap's last slot.
    """
    send = node.send
    permissions = permissions or SendPermissions.from_traits(customer.traits)
    forced = Channel(fallback_for.fallback_channel) if fallback_for else None
    channel, refusal = choose_channel(customer, permissions, node, forced)
    message = MessageDraft(
        send_key=SendKey.fallback(fallback_for.send_key)
        if fallback_for
        else SendKey.journey_step(enrollment.id, node.id),
        fallback_channel=send.fallback.value
        if send.fallback and channel == send.channel and not fallback_for
        else None,
        enrollment_id=enrollment.id,
        customer_id=customer.id,
        journey_id=enrollment.journey_id,
        journey_version=enrollment.journey_version,
        step_id=node.id,
        channel=channel.value,
        provider=providers(channel),
        template=send.template,
        to_address=address_for(customer, channel),
        marketing=not send.transactional,
        priority=priority,
        status=MessageStatus.queued,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
    )
    if enrollment.holdout:
        refusal = "holdout group"
    if refusal:
        message.status, message.status_reason = MessageStatus.skipped, refusal
        return message
    try:
        _render_into(message, templates, send.template, send.vars, enrollment, customer, link_settings)
    except Exception as error:  # whatever the template or the data did, only this message fails
        detail = error.detail if isinstance(error, RenderError) else describe_error(error)
        _fail_render(message, f"template {send.template} (step {node.id}): {detail}")
        return message
    metadata = message.template_metadata
    if channel == Channel.whatsapp and (refusal := whatsapp_window_refusal(permissions, metadata, now)):
        message.status, message.status_reason = MessageStatus.skipped, refusal
        return message
    if channel == Channel.sms:
        measure = measure_sms(message.body)
        message.encoding, message.segments = measure.encoding, measure.segments
    return message


def _render_into(
    message: MessageDraft,
    templates: TemplateStore,
    name: str,
    send_vars: dict[str, Any],
    enrollment: Enrollment,
    customer: Customer,
    link_settings: Settings | None = None,
) -> None:
    """Render the step's template onto `message`, cleaned of control characters from
    customers' data (see templating/control_chars.py), its URLs shortened where
    `delivery.short_links` says so."""
    context = {"customer": customer_view(customer), "event": dict(enrollment.context)}
    variables = render_variables(send_vars, context, templates.budget)
    rendered = render_message(templates, name, customer.locale, {**context, **variables})
    metadata = dict(rendered.metadata)
    if isinstance(metadata.get("content_variables"), dict):
        metadata["content_variables"] = render_variables(
            metadata["content_variables"], {**context, **variables}, templates.budget
        )
    message.locale = rendered.locale
    message.subject = clean_header(rendered.subject) if rendered.subject is not None else None
    message.body, links = apply_links(
        clean_body(rendered.body),
        link_settings,
        channel=message.channel,
        marketing=message.marketing,
        enrollment_id=enrollment.id,
        send_key=message.send_key,
    )
    message.html = web_urls_only(clean_body(rendered.html)) if rendered.html is not None else None
    if links:
        metadata["links"], message.tracked_links = [link.as_metadata() for link in links], len(links)
    message.template_metadata = {**metadata, "variables": variables}


def _fail_render(message: MessageDraft, reason: str) -> None:
    message.status, message.status_reason = MessageStatus.failed, reason
    message.locale = message.subject = message.body = message.html = None
    message.template_metadata = {}
