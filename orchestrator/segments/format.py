"""The segment file format: what a marketer writes in `segments/*.yaml`.

A segment is one condition over a customer; conditions nest with `all`, `any` and `not`.
Each condition is told apart by its one key (`trait`, `consent`, `event`, ...), as journey
steps are. The pydantic models are the single definition: loading validates against them
and `segments/segment.schema.json` is generated from them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from orchestrator.journeys.durations import Duration
from orchestrator.vocabulary import Channel

CONDITION_KINDS = (
    "all",
    "any",
    "not",
    "trait",
    "consent",
    "event",
    "last_seen",
    "locale",
    "timezone",
    "journey",
    "converted",
)
CALENDAR_STARTS = ("start_of_year", "start_of_month", "start_of_week", "start_of_day")
SINCE_PATTERN = r"^(start_of_(year|month|week|day)|\d{4}-\d{2}-\d{2})$"
SEGMENT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# Names read inside JSON columns: plain words, so no name can reach into the JSON path syntax.
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Comparison(Strict):
    """A numeric comparison; every bound given must hold."""

    equals: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    greater_than: float | None = None
    less_than: float | None = None

    @model_validator(mode="after")
    def _one_bound_at_least(self) -> Comparison:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("give at least one of: equals, at_least, at_most, greater_than, less_than")
        return self


class Window(Strict):
    """When: the last `within` (a duration), or `since` a calendar start or a date (UTC)."""

    within: Duration | None = Field(default=None, description="e.g. 90d: the last 90 days, sliding")
    since: str | None = Field(
        default=None,
        pattern=SINCE_PATTERN,
        description="start_of_year, start_of_month, start_of_week, start_of_day (UTC) or a date YYYY-MM-DD",
    )

    @field_validator("since", mode="before")
    @classmethod
    def _yaml_date(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, date) else value  # YAML reads 2026-01-01 as a date

    @model_validator(mode="after")
    def _not_both(self) -> Window:
        if self.within is not None and self.since is not None:
            raise ValueError("give within or since, not both")
        if self.since and not self.since.startswith("start_of_"):
            date.fromisoformat(self.since)  # 2026-02-30 is not a date
        return self


class TraitTest(Strict):
    name: str = Field(pattern=KEY_PATTERN, description="The trait, as sent in identify calls")
    equals: str | float | bool | None = None
    in_: list[str | float | bool] | None = Field(default=None, alias="in", min_length=1)
    exists: bool | None = None
    compare: Comparison | None = Field(default=None, description="The trait as a number")

    @model_validator(mode="after")
    def _exactly_one_test(self) -> TraitTest:
        given = [k for k in ("equals", "in_", "exists", "compare") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a trait condition needs exactly one of: equals, in, exists, compare")
        return self


class ConsentTest(Strict):
    channel: Channel
    opted_in: bool = Field(
        default=True,
        description="true: marketing may go out on the channel now (SMS/WhatsApp: opted in; e-mail: not opted out)",
    )


class Aggregate(Strict):
    """The sum of a numeric property of the matching events."""

    property: str = Field(pattern=KEY_PATTERN, description="e.g. revenue")
    compare: Comparison


class EventTest(Window):
    name: str = Field(min_length=1, description="The Track event, e.g. Order Completed")
    count: Comparison | None = Field(default=None, description="How many times; default: at least once")
    sum: Aggregate | None = None

    @model_validator(mode="after")
    def _count_or_sum(self) -> EventTest:
        if self.count is not None and self.sum is not None:
            raise ValueError("give count or sum, not both (combine two conditions with all)")
        return self


class LastSeen(Strict):
    within: Duration | None = Field(default=None, description="Some event in the last ...")
    not_within: Duration | None = Field(default=None, description="No event in the last ... (never seen counts)")

    @model_validator(mode="after")
    def _exactly_one(self) -> LastSeen:
        if (self.within is None) == (self.not_within is None):
            raise ValueError("give exactly one of: within, not_within")
        return self


class TextTest(Strict):
    equals: str | None = None
    prefix: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> TextTest:
        if (self.equals is None) == (self.prefix is None):
            raise ValueError("give exactly one of: equals, prefix")
        return self


class JourneyTest(Window):
    id: str = Field(min_length=1, description="The journey id")
    converted: bool = Field(default=False, description="true: converted in it (reached its goal), not only entered")


class ConvertedTest(Window):
    journey: str | None = Field(default=None, description="Only conversions credited to this journey")


class AllOf(Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(Strict):
    any: list[Condition] = Field(min_length=1)


class NotOf(Strict):
    not_: Condition = Field(alias="not")


class Trait(Strict):
    trait: TraitTest


class Consent(Strict):
    consent: ConsentTest


class EventCondition(Strict):
    event: EventTest


class LastSeenCondition(Strict):
    last_seen: LastSeen


class Locale(Strict):
    locale: TextTest = Field(description="prefix is a language tag prefix: fr matches fr and fr-FR, not fro")


class Timezone(Strict):
    timezone: TextTest = Field(description="An IANA zone; prefix e.g. Europe/")


class Journey(Strict):
    journey: JourneyTest


class Converted(Strict):
    converted: ConvertedTest


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [key for key in CONDITION_KINDS if key in value]
        return f"when:{kinds[0]}" if len(kinds) == 1 else None
    if isinstance(value, BaseModel):
        return next(
            f"when:{k}" for k in CONDITION_KINDS if k in type(value).model_fields or f"{k}_" in type(value).model_fields
        )
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("when:all")]
    | Annotated[AnyOf, Tag("when:any")]
    | Annotated[NotOf, Tag("when:not")]
    | Annotated[Trait, Tag("when:trait")]
    | Annotated[Consent, Tag("when:consent")]
    | Annotated[EventCondition, Tag("when:event")]
    | Annotated[LastSeenCondition, Tag("when:last_seen")]
    | Annotated[Locale, Tag("when:locale")]
    | Annotated[Timezone, Tag("when:timezone")]
    | Annotated[Journey, Tag("when:journey")]
    | Annotated[Converted, Tag("when:converted")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="a condition needs exactly one of: " + ", ".join(CONDITION_KINDS),
    ),
]


class SegmentFile(Strict):
    schema_: str | None = Field(default=None, alias="$schema")
    id: str = Field(pattern=SEGMENT_ID_PATTERN, description="Defaults to the file name")
    name: str | None = None
    description: str | None = None
    where: Condition = Field(description="Who is in the segment")


AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
SegmentFile.model_rebuild()
