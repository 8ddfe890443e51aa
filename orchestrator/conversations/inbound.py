"""An SMS or WhatsApp message from a customer: keyword, journey reply, FAQ or a person.

In one transaction: the message is stored once (unique provider id), keywords change
consent, anything else joins the customer's conversation, wakes journeys waiting for a
reply (recording an NPS score when asked for one), gets an automated answer when a rule
matches, or waits for an agent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.conversations.agent import conversational_reply_refusal
from orchestrator.conversations.keywords import REPLY_TEMPLATES, Keyword, classify, keyword_locale
from orchestrator.conversations.nps import nps_score
from orchestrator.customers.consent import OPTED_IN, OPTED_OUT, load_permissions, record_consent
from orchestrator.customers.identity import customer_ids, lock_customers
from orchestrator.customers.timezones import infer_timezone
from orchestrator.engine.enrollments import react_to_event
from orchestrator.runtime import Runtime
from orchestrator.storage.feedback_models import Conversation, InboundMessage, NpsResponse
from orchestrator.storage.models import Customer, Event, Message
from orchestrator.storage.queries import insert_ignoring_conflict
from orchestrator.templating.render import RenderError, render_message
from orchestrator.vocabulary import Channel, MessageStatus, SendKey

log = logging.getLogger("orchestrator.inbound")

WHATSAPP_WINDOW = timedelta(hours=24)
REPLY_EVENT = "reply"


@dataclass(frozen=True)
class Inbound:
    provider_message_id: str
    channel: str  # sms | whatsapp
    from_number: str  # E.164, without the whatsapp: prefix
    to_number: str
    body: str


@dataclass(frozen=True)
class InboundOutcome:
    reply: str | None
    handled_by: str | None
    duplicate: bool = False
    customer_id: int | None = None
    conversation_id: int | None = None


async def sender(session: AsyncSession, number: str, now: datetime) -> Customer:
    """The customer with this number, locked; a stranger becomes a customer named by it."""
    known = (
        await session.exec(
            select(Customer.user_id).where(or_(Customer.phone == number, Customer.whatsapp == number)).limit(1)
        )
    ).first()
    user_id = known or number
    await customer_ids(session, {user_id}, now)  # creates the stranger
    customer = (await lock_customers(session, {user_id}))[user_id]
    if customer.phone is None and customer.whatsapp is None:
        customer.phone = number
        infer_timezone(customer)  # a stranger's number is all we know of where they are
    return customer


async def conversation_for(session: AsyncSession, customer: Customer, channel: str, now: datetime) -> Conversation:
    await insert_ignoring_conflict(
        session,
        Conversation,
        dict(customer_id=customer.id, channel=channel, status="open", last_message_at=now, created_at=now),
        ["customer_id", "channel"],
    )
    return (
        await session.exec(
            select(Conversation)
            .where(Conversation.customer_id == customer.id, Conversation.channel == channel)
            .with_for_update()
        )
    ).one()


async def receive_inbound(session: AsyncSession, runtime: Runtime, inbound: Inbound) -> InboundOutcome:
    now = runtime.clock.now()
    settings = runtime.settings
    customer = await sender(session, inbound.from_number, now)
    keyword = classify(inbound.body, settings)
    row_id = await insert_ignoring_conflict(
        session,
        InboundMessage,
        dict(
            provider_message_id=inbound.provider_message_id,
            customer_id=customer.id,
            channel=inbound.channel,
            from_address=inbound.from_number,
            to_address=inbound.to_number,
            body=inbound.body,
            keyword=keyword.value if keyword else None,
            received_at=now,
        ),
        ["provider_message_id"],
    )
    if row_id is None:
        return InboundOutcome(None, None, duplicate=True, customer_id=customer.id)
    row = await session.get(InboundMessage, row_id)
    if inbound.channel == Channel.whatsapp:
        customer.whatsapp_window_until = now + WHATSAPP_WINDOW  # any message opens the session

    if keyword is not None:
        row.handled_by = "keyword"
        evidence = {"body": inbound.body, "message_sid": inbound.provider_message_id, "from": inbound.from_number}
        if keyword is not Keyword.help:
            status = OPTED_OUT if keyword is Keyword.opt_out else OPTED_IN
            await record_consent(
                session, customer.id, inbound.channel, status, f"{inbound.channel}_keyword", now, evidence
            )
        return InboundOutcome(
            _keyword_reply(runtime, keyword, customer, inbound.body), "keyword", customer_id=customer.id
        )

    conversation = await conversation_for(session, customer, inbound.channel, now)
    row.conversation_id = conversation.id
    conversation.last_inbound_at = conversation.last_message_at = now
    handled_by, reply = await _answer(session, runtime, customer, conversation, inbound, row, now)
    row.handled_by = handled_by
    conversation.status = "waiting_for_agent" if handled_by is None else "open"
    return InboundOutcome(reply, handled_by, customer_id=customer.id, conversation_id=conversation.id)


def _keyword_reply(runtime: Runtime, keyword: Keyword, customer: Customer, body: str) -> str | None:
    """The confirmation or help text, in the customer's locale, else in the keyword's language."""
    locale = customer.locale or keyword_locale(body)
    try:
        return render_message(
            runtime.templates, REPLY_TEMPLATES[keyword], locale, {"customer": {"locale": locale}}
        ).body
    except RenderError as error:  # the consent is recorded all the same; only the text is missing
        log.error("no reply to the %s keyword: %s", keyword.value, error)
        return None


async def _answer(
    session: AsyncSession,
    runtime: Runtime,
    customer: Customer,
    conversation: Conversation,
    inbound: Inbound,
    row: InboundMessage,
    now: datetime,
) -> tuple[str | None, str | None]:
    score = nps_score(inbound.body)
    properties = {"body": inbound.body, "channel": inbound.channel, "score": score}
    event_id = await insert_ignoring_conflict(
        session,
        Event,
        dict(
            message_id=f"inbound:{inbound.provider_message_id}",
            customer_id=customer.id,
            type="inbound",
            name=REPLY_EVENT,
            properties=properties,
            timestamp=now,
            received_at=now,
        ),
        ["message_id"],
    )
    reaction = await react_to_event(
        session,
        runtime,
        customer,
        Event(
            id=event_id,
            name=REPLY_EVENT,
            properties=properties,
            customer_id=customer.id,
            type="inbound",
            message_id=f"inbound:{inbound.provider_message_id}",
            timestamp=now,
            received_at=now,
        ),
    )
    answered_survey = False
    for enrollment, node in reaction.woken:
        if node.nps and score is not None:
            session.add(
                NpsResponse(
                    customer_id=customer.id,
                    enrollment_id=enrollment.id,
                    journey_id=enrollment.journey_id,
                    inbound_message_id=row.id,
                    score=score,
                    received_at=now,
                )
            )
        answered_survey = answered_survey or node.nps
    if reaction.woken:  # a survey answer with no score in it is said so, not silently dropped
        return ("nps_no_score" if answered_survey and score is None else "journey"), None
    rule = runtime.auto_replies.match(inbound.body, customer.locale, runtime.settings.default_locale)
    if rule is None:
        return None, None
    permissions = (await load_permissions(session, [customer], runtime.settings.erasure_key))[customer.id]
    if conversational_reply_refusal(Channel(inbound.channel), permissions, now):
        return None, None  # the same rule as for agents: after STOP, not even an automatic answer
    try:
        rendered = render_message(
            runtime.templates, rule.template, customer.locale, {"customer": {"locale": customer.locale}}
        )
    except RenderError:
        return None, None  # a broken rule must not silence the customer: a person will answer
    session.add(
        Message(
            send_key=SendKey.auto_reply(inbound.provider_message_id),
            customer_id=customer.id,
            channel=inbound.channel,
            provider="twilio-twiml",
            template=rule.template,
            locale=rendered.locale,
            to_address=inbound.from_number,
            body=rendered.body,
            marketing=False,
            status=MessageStatus.sent,
            status_reason=f"auto reply: {rule.name}",
            conversation_id=conversation.id,
            created_at=now,
            sent_at=now,
            updated_at=now,
            template_metadata={},
        )
    )
    return "auto_reply", rendered.body
