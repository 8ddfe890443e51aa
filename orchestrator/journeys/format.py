"""The journey file format: what a marketer writes in `journeys/*.yaml`.

Pydantic models are the single definition: loading validates against them and the JSON
Schema editors use is generated from them. Steps are told apart by their one action key
(`wait`, `wait_for`, `if`, `send`, `exit`), which reads naturally in YAML.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.channels.base import Channel
from orchestrator.journeys.durations import Duration
from orchestrator.journeys.expressions import check_expression
from orchestrator.journeys.quiet_hours import QuietHours
from orchestrator.segments.format import SEGMENT_ID_PATTERN
from orchestrator.vocabulary import segment_entered_event, segment_left_event

STEP_KINDS = ("wait", "wait_for", "if", "send", "exit")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Expression = Annotated[str, Field(min_length=1, description="A sandboxed Jinja2 expression")]


class Trigger(Strict):
    event: str | None = Field(default=None, min_length=1, description="The Track event that enrolls a customer")
    segment_entered: str | None = Field(
        default=None,
        pattern=SEGMENT_ID_PATTERN,
        description="Enroll a customer when they enter this segment (segments/<id>.yaml) instead",
    )
    condition: Expression | None = None

    _check = field_validator("condition")(lambda cls, v: check_expression(v))

    @model_validator(mode="after")
    def _event_or_segment(self) -> Trigger:
        # An entry into a segment arrives as its own Track event, so the engine, the catalog
        # and the simulator all read `event`, whichever way the trigger was written.
        if self.segment_entered is not None:
            entered = segment_entered_event(self.segment_entered)
            if self.event not in (None, entered):
                raise ValueError("give event or segment_entered, not both")
            self.event = entered
        elif self.event is None:
            raise ValueError("a trigger needs event (a Track event) or segment_entered (a segment id)")
        return self


def _exit_rule(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"segment_left"} or not isinstance(value["segment_left"], str):
            raise ValueError("an exit rule is an event name, or {segment_left: <segment id>}")
        return segment_left_event(value["segment_left"])
    return value


# An event name, or `{segment_left: id}`: leaving the segment arrives as its own Track event.
ExitRule = Annotated[
    str,
    BeforeValidator(_exit_rule),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "description": "A Track event that ends an enrollment"},
                {
                    "type": "object",
                    "properties": {"segment_left": {"type": "string", "pattern": SEGMENT_ID_PATTERN}},
                    "required": ["segment_left"],
                    "additionalProperties": False,
                    "description": "Leaving this segment ends an enrollment",
                },
            ]
        }
    ),
]


class Goal(Strict):
    event: str = Field(min_length=1, description="The conversion event")
    within: Duration = Field(description="How long after entry the goal still counts")


class Reentry(Strict):
    """How often a customer may enter again once a previous run has ended.

    A customer is never in the same journey twice at the same time.
    """

    policy: Literal["never", "always", "after"] = "never"
    after: Duration | None = Field(default=None, description="Minimum time since the last entry")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `reentry: never`, `reentry: always` and `reentry: {after: 7d}` read best in YAML.
        if isinstance(value, str):
            return {"policy": value}
        if isinstance(value, dict) and "after" in value and "policy" not in value:
            return {"policy": "after", **value}
        return value

    @model_validator(mode="after")
    def _after_needs_duration(self) -> Reentry:
        if self.policy == "after" and self.after is None:
            raise ValueError("policy 'after' needs a duration in 'after', e.g. after: 7d")
        if self.policy != "after" and self.after is not None:
            raise ValueError("'after' only applies to policy 'after'")
        return self


class StepBase(Strict):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$", description="Stable step name")


class WaitStep(StepBase):
    wait: Duration


class WaitFor(Strict):
    event: str = Field(
        min_length=1, description="An event name, or `reply` for the customer's next SMS/WhatsApp message"
    )
    nps: bool = Field(default=False, description="The reply answers an NPS question: a 0-10 score is recorded")
    timeout: Duration
    on_event: list[Step] = Field(default_factory=list, description="Steps run when the event arrives")
    on_timeout: list[Step] = Field(default_factory=list, description="Steps run when the timeout passes")


class WaitForStep(StepBase):
    wait_for: WaitFor


class IfStep(StepBase):
    if_: Expression = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")

    _check = field_validator("if_")(lambda cls, v: check_expression(v))


class Send(Strict):
    channel: Channel
    template: str = Field(min_length=1, description="Template name: a folder under templates/")
    vars: dict[str, Any] = Field(default_factory=dict, description="Extra template variables")
    transactional: bool = Field(default=False, description="Transactional mail skips marketing consent")
    fallback: Channel | None = Field(default=None, description="Channel used when this one cannot be")


class SendStep(StepBase):
    send: Send


class ExitStep(StepBase):
    exit: str | bool = Field(description="Why the customer leaves here (text), or true")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [key for key in STEP_KINDS if key in value]
        return f"step:{kinds[0]}" if len(kinds) == 1 else None
    if isinstance(value, BaseModel):
        return next(f"step:{k}" for k in STEP_KINDS if hasattr(value, k) or hasattr(value, f"{k}_"))
    return None


Step = Annotated[
    Annotated[WaitStep, Tag("step:wait")]
    | Annotated[WaitForStep, Tag("step:wait_for")]
    | Annotated[IfStep, Tag("step:if")]
    | Annotated[SendStep, Tag("step:send")]
    | Annotated[ExitStep, Tag("step:exit")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of: wait, wait_for, if, send, exit",
    ),
]


class JourneyFile(Strict):
    schema_: str | None = Field(default=None, alias="$schema")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Defaults to the file name")
    name: str | None = None
    description: str | None = None
    trigger: Trigger
    steps: list[Step] = Field(min_length=1)
    exit_on: list[ExitRule] = Field(
        default_factory=list, description="Events that end an enrollment, or {segment_left: <segment id>}"
    )
    goal: Goal | None = None
    reentry: Reentry = Field(default_factory=Reentry)
    priority: int = Field(
        default=0,
        ge=-100,
        le=100,
        description=(
            "Who wins when a frequency cap has one slot left for several marketing sends (docs/frequency-caps.md): "
            "higher first; 0 is normal"
        ),
    )
    holdout: float = Field(
        default=0, ge=0, le=50, description="Percent of entrants held out (enrolled, never messaged) to measure lift"
    )
    quiet_hours: QuietHours = Field(
        default_factory=QuietHours,
        description="SMS/WhatsApp marketing waits out these local hours (default 21:00-08:00); `off` disables",
    )

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours_off(cls, value: Any) -> Any:
        return {"enabled": False} if value in (False, "off", "none") else value


WaitFor.model_rebuild()
IfStep.model_rebuild()
JourneyFile.model_rebuild()
