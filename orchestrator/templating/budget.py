"""A render budget: a marketer's template cannot hang the process or fill its memory.

The API and the worker share one event loop in `serve`, and rendering is synchronous, so a
template with nested `range(100000)` loops used to freeze everything (health, SIGTERM).
Python cannot stop another thread, so the render stops itself. At compile time every
`{% for %}` is rewritten to iterate through `_budgeted_loop`, which counts iterations; the
sandbox's `call` counts calls (macros, so recursion too); and the environment's `finalize`
counts every printed value. While a render runs:

- time: every few hundred iterations or calls, the CPU time of the rendering thread is
  compared with the budget (CPU, not wall time: a busy machine pausing the process must
  not fail messages). One built-in call that is slow by itself is not interrupted; the
  checks on output and on `*` and `**` keep those small;
- output: printed values, plus each loop's own literal text per iteration, are added up
  as they are produced (inside macros too), and the render stops past the budget;
- repetition: `*` and `**` are checked before they run, so `'x' * 10**9` or `9 ** 999999`
  (one C operation each, which nothing could interrupt) are refused.

A template without loops costs a counter update per printed value and never reads the
clock (docs/hardening.md has the measurements).
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

# The name loops are rewritten to call; templates may not assign it.
_LOOP_GUARD = "_budgeted_loop"
# Iterations or calls between two looks at the clock (a thread's CPU clock is a system call).
_TICKS_PER_CLOCK_CHECK = 256


@dataclass(frozen=True)
class RenderBudget:
    """Limits per rendered text (body, subject, HTML part or string variable)."""

    max_seconds: float = 0.2
    max_chars: int = 250_000


class RenderBudgetExceeded(Exception):
    """The template ran past its budget; the reason says which limit."""


class _RenderWatch:
    """The running render's budget: what it has spent so far."""

    __slots__ = ("budget", "cpu_started", "ticks", "chars")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget, self.cpu_started, self.ticks, self.chars = budget, None, 0, 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % _TICKS_PER_CLOCK_CHECK == 0:
            self.check_time()

    def check_time(self) -> None:
        # The clock starts at the first check: the few hundred steps before it cost next to
        # nothing, and most renders never get there, so they never read the clock at all.
        now = time.thread_time()
        if self.cpu_started is None:
            self.cpu_started = now
        elif now - self.cpu_started > self.budget.max_seconds:
            raise RenderBudgetExceeded(f"rendering took longer than the budget of {_seconds(self.budget.max_seconds)}")

    def add_output(self, chars: int) -> None:
        self.chars += chars
        if self.chars > self.budget.max_chars:
            raise RenderBudgetExceeded(f"output is over the budget of {self.budget.max_chars:,} characters")

    def iterate(self, iterable: Iterable[Any], literal_chars: int) -> Iterator[Any]:
        for item in iterable:
            self.tick()
            if literal_chars:
                self.add_output(literal_chars)
            yield item


_active_watch: ContextVar[_RenderWatch | None] = ContextVar("render_watch", default=None)


def _budgeted_loop(iterable: Iterable[Any], literal_chars: int) -> Iterable[Any]:
    watch = _active_watch.get()
    return iterable if watch is None else watch.iterate(iterable, literal_chars)


def _count_output(value: Any) -> Any:
    """`finalize`: sees every printed value, in macros too, before it is turned into text."""
    watch = _active_watch.get()
    if watch is not None and not isinstance(value, (int, float)):
        watch.add_output(len(value) if isinstance(value, str) else len(str(value)))
    return value


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox, counting what a render spends (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, finalize=_count_output, **kwargs)
        self.globals[_LOOP_GUARD] = _budgeted_loop

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as the sandbox names it
        watch = _active_watch.get()
        if watch is not None:
            watch.tick()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            watch = _active_watch.get()
            limit = (watch.budget if watch else RenderBudget()).max_chars
            _check_repetition(left, right, limit)
            _check_repetition(right, left, limit)
            return operator.mul(left, right)
        _check_power(left, right)
        return operator.pow(left, right)


def _check_repetition(sequence: Any, count: Any, limit: int) -> None:
    if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > limit:
        raise RenderBudgetExceeded(
            f"repeating something of length {len(sequence):,} {count:,} times is over "
            f"the budget of {limit:,} characters"
        )


def _check_power(base: Any, exponent: Any) -> None:
    """Integer powers grow without bound and take one uninterruptible C call; 2**1024 is plenty."""
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and exponent > 0
        and exponent * math.log2(abs(base)) > 1024
    ):
        raise RenderBudgetExceeded(f"{base} ** {exponent} is too large a number")


def compile_template(environment: SandboxedEnvironment, source: str) -> Template:
    """Compile with every loop counted: `{% for x in xs %}` iterates `_budgeted_loop(xs, n)`,
    n being the literal text the loop's body adds per iteration."""
    tree = environment.parse(source)
    for name in tree.find_all(nodes.Name):
        if name.name == _LOOP_GUARD and name.ctx != "load":
            raise TemplateSyntaxError(f"'{_LOOP_GUARD}' is a reserved name", name.lineno)
    for loop in list(tree.find_all(nodes.For)):
        literal_chars = nodes.Const(_literal_chars(loop.body), lineno=loop.lineno)
        loop.iter = nodes.Call(
            nodes.Name(_LOOP_GUARD, "load", lineno=loop.lineno),
            [loop.iter, literal_chars],
            [],
            None,
            None,
            lineno=loop.lineno,
        )
    tree.set_environment(environment)
    return environment.from_string(tree)


def _literal_chars(body: list[nodes.Node]) -> int:
    """Literal text in a loop's body, not counting nested loops (they count their own)."""
    total = 0
    for node in body:
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, nodes.For):
            total += _literal_chars(list(node.iter_child_nodes()))
    return total


def render_within(template: Template, context: Mapping[str, Any], budget: RenderBudget) -> str:
    """Render `template`, raising `RenderBudgetExceeded` once it runs out of time or output."""
    watch = _RenderWatch(budget)
    token = _active_watch.set(watch)
    try:
        text = template.render(context)
    finally:
        _active_watch.reset(token)
    if watch.cpu_started is not None:
        watch.check_time()  # the last steps' time
    if len(text) > budget.max_chars:
        raise RenderBudgetExceeded(f"output is over the budget of {budget.max_chars:,} characters")
    return text


def _seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"
