"""Segment's calls (Identify, Track, Page, Screen, Group, Alias) and Batch, validated field by field.

Errors carry the path of the offending field (`batch[3].timestamp`, `traits.email`), which
FastAPI turns into a 422 that says exactly what to fix. Every Segment call type is accepted
(docs/api.md, "Segment compatibility"), with `userId`, `anonymousId` or both; other
Segment fields (`integrations`, `sentAt`, ...) are accepted and ignored, so a CDP can
forward its payloads unchanged. Free-form values (properties, traits, context) must be
storable JSON on every database: no NaN, no NUL, at most `MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from orchestrator.storage.json_values import check_storable, check_text, unstorable
from orchestrator.templating.locales import normalize_locale
from orchestrator.vocabulary import bare_number

Text = Annotated[str, AfterValidator(check_text)]
UserId = Annotated[Text, Field(min_length=1, max_length=255)]
MessageId = Annotated[Text, Field(min_length=1, max_length=255)]
Name = Annotated[Text, Field(min_length=1, max_length=255)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_storable)]


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


def consent_flag(value: Any) -> Any:
    """Booleans, or the strings "true" / "false": a consent is never guessed from "maybe" or 1."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None or isinstance(value, bool):
        return value
    raise ValueError('a consent trait is true or false (a JSON boolean, or the string "true" or "false")')


ConsentFlag = Annotated[bool | None, BeforeValidator(consent_flag)]


def as_utc(value: datetime | None) -> datetime | None:
    if value is not None and not 1900 <= value.year <= 2999:  # beyond, moving it to UTC or adding a wait overflows
        raise ValueError("must be between the years 1900 and 2999")
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO-8601 parsers accept.
    return value.astimezone(timezone.utc) if value is not None else None


class Traits(BaseModel):
    """Known traits are checked; any other trait is kept as sent."""

    model_config = ConfigDict(extra="allow")

    email: Annotated[str, AfterValidator(normalize_email)] | None = None
    phone: Annotated[str, AfterValidator(normalize_phone)] | None = None
    whatsapp: Annotated[str, AfterValidator(normalize_phone)] | None = None
    locale: Annotated[str, AfterValidator(check_locale)] | None = None
    timezone: Annotated[str, AfterValidator(check_timezone)] | None = None
    # Consent traits become ledger records (customers/consent.py): only a clear yes or no.
    sms_opt_in: ConsentFlag = None
    whatsapp_opt_in: ConsentFlag = None
    email_opt_out: ConsentFlag = None

    @model_validator(mode="after")
    def _storable_extras(self) -> Traits:
        problem = unstorable(self.__pydantic_extra__ or {})
        if problem:
            raise ValueError(problem)
        return self


class SegmentCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: UserId | None = None
    anonymousId: UserId | None = None
    messageId: MessageId | None = None
    timestamp: datetime | None = None
    context: JsonObject | None = None

    _utc = field_validator("timestamp")(lambda cls, v: as_utc(v))

    @model_validator(mode="after")
    def _someone(self) -> SegmentCall:
        if self.userId is None and self.anonymousId is None:  # an error at `userId`, where a client looks first
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("missing", "userId or anonymousId is required"),
                        loc=("userId",),
                        input=None,
                    )
                ],
            )
        return self


class TrackCall(SegmentCall):
    type: Literal["track"] = "track"
    event: Name
    properties: JsonObject = Field(default_factory=dict)
    # A page's call that cannot prove its userId (events/site_identity.py): stored and counted
    # as analytics, but no journey reacts to it and no segment counts it. Set by the service,
    # never read from the body.
    _unverified: bool = PrivateAttr(default=False)

    @property
    def unverified(self) -> bool:
        return self._unverified

    def mark_unverified(self) -> None:
        self._unverified = True


class IdentifyCall(SegmentCall):
    type: Literal["identify"] = "identify"
    traits: Traits = Field(default_factory=Traits)
    # Traits stored but not applied to the customer: set by the service, never read from the
    # body (a page's call that cannot prove its userId, events/site_identity.py).
    _withheld_traits: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def withheld_traits(self) -> frozenset[str]:
        return self._withheld_traits

    def withhold(self, traits: frozenset[str]) -> None:
        self._withheld_traits = traits


class PageCall(SegmentCall):
    """A page view (web); `screen` is the same for apps. Stored as events for web sessions."""

    type: Literal["page"] = "page"
    name: Name | None = None
    category: Name | None = None
    properties: JsonObject = Field(default_factory=dict)


class ScreenCall(PageCall):
    type: Literal["screen"] = "screen"  # type: ignore[assignment]


class GroupCall(SegmentCall):
    type: Literal["group"] = "group"
    groupId: UserId
    traits: JsonObject = Field(default_factory=dict)


class AliasCall(SegmentCall):
    """`previousId` (usually an anonymousId) is the same person as `userId`."""

    type: Literal["alias"] = "alias"
    userId: UserId  # type: ignore[assignment]
    previousId: UserId


AnyCall = TrackCall | IdentifyCall | PageCall | ScreenCall | GroupCall | AliasCall
SegmentMessage = Annotated[AnyCall, Field(discriminator="type")]


def batch_model(max_events: int) -> type[BaseModel]:
    """The batch size limit is configuration, so the model is built from it."""

    class BatchCall(BaseModel):
        model_config = ConfigDict(extra="ignore")
        batch: list[SegmentMessage] = Field(min_length=1, max_length=max_events)

    return BatchCall
