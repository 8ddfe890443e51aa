"""Segment's Track / Identify / Batch payloads, validated field by field.

Errors carry the path of the offending field (`batch[3].timestamp`, `traits.email`), which
FastAPI turns into a 422 that says exactly what to fix. Unknown Segment fields
(`integrations`, `sentAt`, `context`, ...) are accepted and ignored, so a CDP can forward
its payloads unchanged.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from orchestrator.templating.locales import normalize_locale
from orchestrator.vocabulary import bare_number

UserId = Annotated[str, Field(min_length=1, max_length=255)]
MessageId = Annotated[str, Field(min_length=1, max_length=255)]


def normalize_email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"not a valid e-mail address: {error}") from None


def normalize_phone(value: str) -> str:
    """E.164, which every SMS and WhatsApp provider expects."""
    raw = bare_number(value).strip()
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number: write it in E.164 form, e.g. +14155550123") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number for its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_locale(value: str) -> str:
    tag = normalize_locale(value)
    if not all(part.isalnum() and 1 <= len(part) <= 8 for part in tag.split("-")):
        raise ValueError("not a locale tag, e.g. en, fr-CA, zh-Hant")
    return tag


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone, e.g. Europe/Paris") from None
    return value


def as_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Traits(BaseModel):
    """Known traits are checked; any other trait is kept as sent."""

    model_config = ConfigDict(extra="allow")

    email: Annotated[str, AfterValidator(normalize_email)] | None = None
    phone: Annotated[str, AfterValidator(normalize_phone)] | None = None
    whatsapp: Annotated[str, AfterValidator(normalize_phone)] | None = None
    locale: Annotated[str, AfterValidator(check_locale)] | None = None
    timezone: Annotated[str, AfterValidator(check_timezone)] | None = None


class SegmentCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: UserId
    messageId: MessageId | None = None
    timestamp: datetime | None = None

    _utc = field_validator("timestamp")(lambda cls, v: as_utc(v))


class TrackCall(SegmentCall):
    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(SegmentCall):
    type: Literal["identify"] = "identify"
    traits: Traits = Field(default_factory=Traits)


SegmentMessage = Annotated[TrackCall | IdentifyCall, Field(discriminator="type")]


def batch_model(max_events: int) -> type[BaseModel]:
    """The batch size limit is configuration, so the model is built from it."""

    class BatchCall(BaseModel):
        model_config = ConfigDict(extra="ignore")
        batch: list[SegmentMessage] = Field(min_length=1, max_length=max_events)

    return BatchCall
