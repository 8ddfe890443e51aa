"""Flatten a journey's step tree into nodes linked by `next`, addressed by step id.

An enrollment's cursor is a step id, so nesting (`if`/`wait_for` branches) needs no stack:
each node knows where control goes after it, and a branch's last node points to the step
after its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.journeys.format import (
    ExitStep,
    IfStep,
    JourneyFile,
    Send,
    SendStep,
    WaitForStep,
    WaitStep,
)


class CompileError(Exception):
    def __init__(self, location: tuple, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # wait | wait_for | if | send | exit
    next: str | None
    duration: timedelta | None = None  # wait, and wait_for's timeout
    event: str | None = None  # wait_for
    condition: str | None = None  # if
    branch_a: str | None = None  # if: then; wait_for: on_event
    branch_b: str | None = None  # if: else; wait_for: on_timeout
    send: Send | None = None
    exit_reason: str | None = None
    nps: bool = False  # wait_for: the awaited reply is an NPS score


@dataclass
class CompiledJourney:
    definition: JourneyFile
    version: str
    nodes: dict[str, Node] = field(default_factory=dict)
    first: str | None = None

    @property
    def id(self) -> str:
        return self.definition.id


def _default_id(location: tuple) -> str:
    # steps[2].then[0] → "3.then.1": 1-based, as a marketer counts.
    parts = [str(p + 1) if isinstance(p, int) else p for p in location[1:]]
    return ".".join(parts)


def compile_journey(definition: JourneyFile, version: str = "") -> CompiledJourney:
    journey = CompiledJourney(definition, version)
    journey.first = _compile_block(definition.steps, ("steps",), None, journey.nodes)
    return journey


def _compile_block(steps: list, location: tuple, after: str | None, nodes: dict[str, Node]) -> str | None:
    """Compile steps back to front so each node can name its successor."""
    ids = [step.id or _default_id(location + (i,)) for i, step in enumerate(steps)]
    for i, step_id in enumerate(ids):
        if step_id in nodes or ids.index(step_id) != i:
            raise CompileError(location + (i, "id"), f"step id '{step_id}' is used twice")
    following = after
    for i in range(len(steps) - 1, -1, -1):
        step, step_id, here = steps[i], ids[i], location + (i,)
        nodes[step_id] = _compile_step(step, step_id, here, following, nodes)
        following = step_id
    return following


def _compile_step(step, step_id: str, here: tuple, after: str | None, nodes: dict[str, Node]) -> Node:
    if isinstance(step, WaitStep):
        return Node(step_id, "wait", after, duration=step.wait)
    if isinstance(step, WaitForStep):
        spec = step.wait_for
        on_event = _compile_block(spec.on_event, here + ("wait_for", "on_event"), after, nodes)
        on_timeout = _compile_block(spec.on_timeout, here + ("wait_for", "on_timeout"), after, nodes)
        return Node(
            step_id,
            "wait_for",
            after,
            duration=spec.timeout,
            event=spec.event,
            branch_a=on_event,
            branch_b=on_timeout,
            nps=spec.nps,
        )
    if isinstance(step, IfStep):
        then = _compile_block(step.then, here + ("then",), after, nodes)
        otherwise = _compile_block(step.else_, here + ("else",), after, nodes)
        return Node(step_id, "if", after, condition=step.if_, branch_a=then, branch_b=otherwise)
    if isinstance(step, SendStep):
        return Node(step_id, "send", after, send=step.send)
    if isinstance(step, ExitStep):
        reason = step.exit if isinstance(step.exit, str) else "exit step"
        if step.exit is False:
            raise CompileError(here + ("exit",), "exit: false does nothing; remove the step")
        return Node(step_id, "exit", None, exit_reason=reason)
    raise CompileError(here, f"unknown step {type(step).__name__}")
