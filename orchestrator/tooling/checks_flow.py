"""Checks on a journey's control flow that the schema cannot express.

Each check is here because the engine's rules make the pattern a mistake, not a matter of
taste (see docs/journeys.md, "Marketer tooling"):
- a step after one that always ends the enrollment never runs (error);
- an `if` whose condition reads nothing is constant: one branch never runs (warning, as
  `if: "false"` is a common way to switch a branch off);
- a `wait_for` on an event listed in `exit_on` never wakes: the engine applies exit rules
  first, so the event ends the enrollment instead (error);
- `has_event('X')` with X in `exit_on` is always false while the enrollment runs (warning);
- a condition reading a name nothing provides fails every enrollment that reaches it; the
  trigger condition sees only `customer` and `event` (error);
- `consented('fax')`: not a channel, and the consent rules treat an unknown channel as
  allowed (error);
- a `wait` with nothing after it only delays the end of the enrollment, which also keeps
  the customer from re-entering (warning).
"""

from __future__ import annotations

from orchestrator.declared import readable_key
from orchestrator.engine.interpreter import Facts
from orchestrator.journeys.compiler import _default_id
from orchestrator.journeys.format import ExitStep, IfStep, WaitForStep, WaitStep
from orchestrator.tooling.expressions import calls, constant_value, names_in_expression, parse_expression
from orchestrator.tooling.findings import ERROR, WARNING, Finding
from orchestrator.tooling.sources import JourneySource, StepRef

# What the engine gives conditions, asked of the engine itself so the two never drift apart.
STEP_NAMES = set(Facts(customer={}, event={}).expression_context())
TRIGGER_NAMES = {"customer", "event"}  # engine.enrollments evaluates the trigger condition with these only
from orchestrator.vocabulary import CHANNELS  # noqa: E402  (kept beside its one use)


def check_flow(journey: JourneySource) -> list[Finding]:
    findings: list[Finding] = []
    definition = journey.loaded.definition
    _check_block(journey, definition.steps, ("steps",), findings)
    if definition.trigger.condition:
        findings += _check_condition(
            journey,
            definition.trigger.condition,
            ("trigger", "condition"),
            TRIGGER_NAMES,
            "the trigger condition sees only customer and event",
            "evaluating it would fail the API request of every trigger event",
        )
    exit_on = set(definition.exit_on)
    for ref in journey.steps():
        step = ref.step
        if isinstance(step, IfStep):
            findings += _check_condition(
                journey,
                step.if_,
                ref.location + ("if",),
                STEP_NAMES,
                f"conditions see {_names(STEP_NAMES)}",
                "the condition would fail every enrollment that reaches it",
            )
            findings += _check_has_event(journey, ref, exit_on)
        elif isinstance(step, WaitForStep) and step.wait_for.event in exit_on:
            findings.append(
                _finding(
                    journey,
                    ERROR,
                    ref.location + ("wait_for", "event"),
                    f"waits for '{step.wait_for.event}', which is in exit_on: that event ends the "
                    f"enrollment instead, so on_event never runs",
                )
            )
        elif isinstance(step, WaitStep) and journey.compiled.nodes[ref.id].next is None:
            findings.append(
                _finding(
                    journey,
                    WARNING,
                    ref.location + ("wait",),
                    "nothing follows this wait: it only delays the end of the enrollment "
                    "(and re-entry) by its duration",
                )
            )
    return findings


def _finding(journey: JourneySource, severity: str, location: tuple, message: str) -> Finding:
    return Finding(severity, str(journey.path), journey.line(location), readable_key(location), message)


def _always_ends(step) -> bool:
    """True when control never gets past this step (every path exits)."""
    if isinstance(step, ExitStep):
        return True
    if isinstance(step, IfStep):
        constant = constant_value(step.if_)
        if constant is not None:
            return _block_ends(step.then if constant else step.else_)
        return _block_ends(step.then) and _block_ends(step.else_)
    if isinstance(step, WaitForStep):
        return _block_ends(step.wait_for.on_event) and _block_ends(step.wait_for.on_timeout)
    return False


def _block_ends(steps: list) -> bool:
    return any(_always_ends(step) for step in steps)


def _check_block(journey: JourneySource, steps: list, location: tuple, findings: list[Finding]) -> None:
    ender = None
    for position, step in enumerate(steps):
        here = location + (position,)
        if ender is not None:
            step_id = step.id or _default_id(here)
            later = len(steps) - position - 1
            also = f" (nor the {later} step{'s' if later > 1 else ''} after it)" if later else ""
            findings.append(
                _finding(
                    journey,
                    ERROR,
                    here,
                    f"step '{step_id}' can never run{also}: step '{ender}' before it always ends the enrollment",
                )
            )
            return
        if isinstance(step, IfStep):
            constant = constant_value(step.if_)
            if constant is not None:
                dead = "else" if constant else "then"
                findings.append(
                    _finding(
                        journey,
                        WARNING,
                        here + ("if",),
                        f"the condition is always {'true' if constant else 'false'}: the {dead} branch never runs",
                    )
                )
            _check_block(journey, step.then, here + ("then",), findings)
            _check_block(journey, step.else_, here + ("else",), findings)
        elif isinstance(step, WaitForStep):
            _check_block(journey, step.wait_for.on_event, here + ("wait_for", "on_event"), findings)
            _check_block(journey, step.wait_for.on_timeout, here + ("wait_for", "on_timeout"), findings)
        if _always_ends(step):
            ender = step.id or _default_id(here)


def _check_condition(
    journey: JourneySource, source: str, location: tuple, allowed: set[str], sees: str, consequence: str
) -> list[Finding]:
    findings = []
    for name in names_in_expression(source):
        if name not in allowed:
            findings.append(_finding(journey, ERROR, location, f"'{name}' is not defined: {sees}; {consequence}"))
    for call in calls(parse_expression(source), {"consented"}):
        if call.argument is not None and call.argument not in CHANNELS:
            findings.append(
                _finding(
                    journey,
                    ERROR,
                    location,
                    f"{call.source}: not a channel (email, sms, whatsapp); an unknown channel reads as consented",
                )
            )
    return findings


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names))


def _check_has_event(journey: JourneySource, ref: StepRef, exit_on: set[str]) -> list[Finding]:
    return [
        _finding(
            journey,
            WARNING,
            ref.location + ("if",),
            f"{call.source} is always false here: '{call.argument}' is in exit_on, so it ends the enrollment "
            f"before any later step runs",
        )
        for call in calls(parse_expression(ref.step.if_), {"has_event"})
        if call.argument in exit_on
    ]
