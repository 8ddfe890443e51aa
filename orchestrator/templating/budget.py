"""A render budget: a marketer's template cannot hang the process or fill its memory.

The API and the worker share one event loop in `serve`, and rendering is synchronous, so a
template with nested `range(100000)` loops used to freeze everything (health, SIGTERM).
Python cannot stop another thread, so the render stops itself:

- time: while a template that has loops or macros renders, a trace function watches the
  template's own frames (nothing else) and raises once the deadline has passed. Templates
  without loops or macros run straight through their text and are not traced at all, so
  the common case pays nothing (see docs/hardening.md for the measured cost);
- output: the text is produced chunk by chunk (`Template.generate`) and rendering stops
  once it is longer than the budget allows;
- repetition: `*` and `**` in templates are checked before they run, so `'x' * 10**9` or
  `9 ** 9 ** 9` (one C operation each, which no tracing can interrupt) are refused.
"""

from __future__ import annotations

import math
import operator
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes
from jinja2.sandbox import SandboxedEnvironment

# Jinja compiles every template it builds from a string under this file name; the trace
# function looks only at frames running such code.
_TEMPLATE_CODE_FILE = "<template>"
# Line events between two looks at the clock: perf_counter costs ~50 ns, a line ~30 ns.
_LINES_PER_CLOCK_CHECK = 256
# Attribute set on compiled templates that are straight-line code (no loop, no macro).
_STRAIGHT_LINE = "_orchestrator_straight_line"


@dataclass(frozen=True)
class RenderBudget:
    """Limits per rendered text (body, subject, HTML part or string variable)."""

    max_seconds: float = 0.25
    max_chars: int = 100_000


class RenderBudgetExceeded(Exception):
    """The template ran past its budget; the reason says which limit."""


# The budget of the render in progress, for the operator checks (which see no arguments of ours).
_active_budget: ContextVar[RenderBudget] = ContextVar("render_budget", default=RenderBudget())


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox with the repetition checks; the budget itself is applied by `render_within`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            limit = _active_budget.get().max_chars
            _check_repetition(left, right, limit)
            _check_repetition(right, left, limit)
            return operator.mul(left, right)
        _check_power(left, right)
        return operator.pow(left, right)


def _check_repetition(sequence: Any, count: Any, limit: int) -> None:
    if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > limit:
        raise RenderBudgetExceeded(f"repeating {len(sequence)} items {count:,} times is over the "
                                   f"budget of {limit:,} characters")


def _check_power(base: Any, exponent: Any) -> None:
    """Integer powers grow without bound and take one uninterruptible C call; 10**308 is plenty."""
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        if exponent * math.log2(abs(base)) > 1024:
            raise RenderBudgetExceeded(f"{base} ** {exponent} is too large a number")


def compile_template(environment: SandboxedEnvironment, source: str) -> Template:
    """Compile, remembering whether the template is straight-line code: only templates with
    loops or macros (recursion) can run long, and only those are traced while rendering."""
    tree = environment.parse(source)
    template = environment.from_string(tree)
    straight_line = next(tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock)), None) is None
    setattr(template, _STRAIGHT_LINE, straight_line)
    return template


def render_within(template: Template, context: Mapping[str, Any], budget: RenderBudget) -> str:
    """Render `template`, raising `RenderBudgetExceeded` once it runs out of time or output."""
    deadline = time.perf_counter() + budget.max_seconds
    token = _active_budget.set(budget)
    try:
        if getattr(template, _STRAIGHT_LINE, False):
            return _collect(template, context, budget, deadline)
        watch = _DeadlineWatch(deadline, budget.max_seconds)
        previous = sys.gettrace()  # a debugger's or coverage's tracer, put back afterwards
        sys.settrace(watch.on_call)
        try:
            return _collect(template, context, budget, deadline)
        finally:
            sys.settrace(previous)
    finally:
        _active_budget.reset(token)


def _collect(template: Template, context: Mapping[str, Any], budget: RenderBudget, deadline: float) -> str:
    parts, length = [], 0
    for chunk in template.generate(context):
        length += len(chunk)
        if length > budget.max_chars:
            raise RenderBudgetExceeded(f"output is over the budget of {budget.max_chars:,} characters")
        parts.append(chunk)
    if time.perf_counter() > deadline:  # e.g. one slow built-in call that no trace could stop
        raise RenderBudgetExceeded(f"rendering took longer than the budget of {_seconds(budget.max_seconds)}")
    return "".join(parts)


class _DeadlineWatch:
    """A trace function that follows only template frames and raises past the deadline.

    An exception raised by a trace function surfaces in the traced frame, at the line it
    was about to run, so the render unwinds like after any other template error."""

    __slots__ = ("deadline", "max_seconds", "lines")

    def __init__(self, deadline: float, max_seconds: float) -> None:
        self.deadline, self.max_seconds, self.lines = deadline, max_seconds, 0

    def on_call(self, frame, event: str, arg: Any):
        return self.on_line if frame.f_code.co_filename == _TEMPLATE_CODE_FILE else None

    def on_line(self, frame, event: str, arg: Any):
        self.lines += 1
        if self.lines % _LINES_PER_CLOCK_CHECK == 0 and time.perf_counter() > self.deadline:
            raise RenderBudgetExceeded(f"rendering took longer than the budget of {_seconds(self.max_seconds)}")
        return self.on_line


def _seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"
