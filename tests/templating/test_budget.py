"""The render budget: runaway templates stop themselves and fail their message (issue 14, item 2)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from jinja2 import StrictUndefined
from sqlmodel import select

from orchestrator.engine.worker import advance_due_enrollments
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.loader import parse_journey
from orchestrator.storage.models import Message
from orchestrator.templating.budget import (
    BudgetedSandbox,
    RenderBudget,
    RenderBudgetExceeded,
    compile_template,
    render_within,
)
from orchestrator.templating.render import RenderError, render_message
from orchestrator.templating.store import TemplateStore, text_environment

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done"
SMALL = RenderBudget(max_seconds=0.05, max_chars=1000)


def render_in_thread(source: str, context: dict, budget: RenderBudget) -> BaseException | str:
    """Render on a thread so a broken budget shows up as a failed test, not a hung run."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(render_within(compile_template(text_environment, source), context, budget))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert outcome, "the render did not stop"
    return outcome[0]


@pytest.mark.parametrize(
    "source",
    [
        NESTED_LOOPS,
        # Over a prepared list: no call, no attribute access, no output inside the loops.
        "{% set xs = range(100000)|list %}{% for i in xs %}{% for j in xs %}{% endfor %}{% endfor %}",
        # Inside a macro: its frames are template code too.
        "{% macro spin() %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        "{% endmacro %}{{ spin() }}",
        # No loop at all: a macro calling itself twice per level makes 2**40 calls.
        "{% macro twice(n) %}{% if n %}{{ twice(n - 1) }}{{ twice(n - 1) }}{% endif %}{% endmacro %}{{ twice(40) }}",
    ],
)
def test_a_runaway_loop_stops_at_the_time_budget(source):
    outcome = render_in_thread(source, {}, SMALL)
    assert isinstance(outcome, RenderBudgetExceeded)
    assert str(outcome) == "rendering took longer than the budget of 50 ms"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}word {% endfor %}",
        # Printed inside a macro, which hands its text back only when it returns.
        "{% macro words() %}{% for i in range(100000) %}{{ event.word }}{% endfor %}{% endmacro %}{{ words() }}",
        "{% macro words() %}{% for i in range(100000) %}{% if i %}word {% endif %}{% endfor %}{% endmacro %}{{ words() }}",
        "{{ event.huge }}",
    ],
)
def test_output_stops_at_the_size_budget(source):
    outcome = render_in_thread(source, {"event": {"word": "word ", "huge": "x" * 1001}}, SMALL)
    assert isinstance(outcome, RenderBudgetExceeded)
    assert str(outcome) == "output is over the budget of 1,000 characters"


@pytest.mark.parametrize(
    "source, reason",
    [
        (
            "{{ 'x' * 1000000000 }}",
            "repeating something of length 1 1,000,000,000 times is over the budget of 1,000 characters",
        ),
        (
            "{{ [1, 2] * 1000000 }}",
            "repeating something of length 2 1,000,000 times is over the budget of 1,000 characters",
        ),
        ("{{ 9 ** 999999 }}", "9 ** 999999 is too large a number"),
    ],
)
def test_one_huge_operation_is_refused_before_it_runs(source, reason):
    outcome = render_in_thread(source, {}, SMALL)
    assert isinstance(outcome, RenderBudgetExceeded)
    assert str(outcome) == reason


def test_ordinary_templates_render_as_before():
    loops = compile_template(text_environment, "{% for item in items %}{{ item|upper }} {{ 2 * 3 }} {% endfor %}")
    plain = compile_template(text_environment, "Hi {{ name }}, {{ '%.2f'|format(total) }} {{ 2 ** 10 }}")
    assert render_within(loops, {"items": ["a", "b"]}, SMALL) == "A 6 B 6 "
    assert render_within(plain, {"name": "Ann", "total": 8}, SMALL) == "Hi Ann, 8.00 1024"
    with_else = compile_template(
        text_environment,
        "{% for x in xs %}{{ loop.index }}/{{ loop.length }}{% if loop.last %}.{% endif %}{% else %}none{% endfor %}",
    )
    assert render_within(with_else, {"xs": "abc"}, SMALL) == "1/32/33/3."
    assert render_within(with_else, {"xs": []}, SMALL) == "none"


def test_a_template_store_renders_with_its_own_budget(tmp_path):
    (tmp_path / "spin").mkdir()
    (tmp_path / "spin" / "en.txt").write_text("{% for i in range(5000) %}ab{% endfor %}")
    store = TemplateStore.load(tmp_path, budget=RenderBudget(max_seconds=5, max_chars=100))
    with pytest.raises(RenderError) as raised:
        render_message(store, "spin", "en", {})
    assert raised.value.detail == "render budget exceeded: output is over the budget of 100 characters"
    assert isinstance(text_environment, BudgetedSandbox) and text_environment.undefined is StrictUndefined


def test_a_template_cannot_take_over_the_loop_guard(tmp_path):
    (tmp_path / "sly").mkdir()
    (tmp_path / "sly" / "en.txt").write_text("{% set _budgeted_loop = range %}{% for i in range(10) %}{% endfor %}")
    store = TemplateStore.load(tmp_path)
    [problem] = store.problems
    assert problem.message == "template syntax: '_budgeted_loop' is a reserved name"


@pytest.fixture
def notes():
    """A filter `note` recording each render as it starts (filters must exist at compile time)."""
    seen: list = []
    text_environment.filters["note"] = lambda value: seen.append(value) or ""
    yield seen
    del text_environment.filters["note"]


async def test_the_worker_fails_over_budget_messages_and_lets_the_event_loop_run(runtime, tmp_path, notes):
    runtime.templates.budget = SMALL
    folder = tmp_path / "spin-sms"
    folder.mkdir()
    (folder / "en.txt").write_text("{{ event.n|note }}" + NESTED_LOOPS)
    runtime.templates.templates.update(TemplateStore.load(tmp_path).templates)
    runtime.catalog.add_current(
        parse_journey(
            "id: spin\ntrigger: {event: Spun}\nsteps:\n  - id: spin\n    send: {channel: sms, template: spin-sms}\n",
            tmp_path / "spin.yaml",
        )
    )
    calls = []
    for n in range(3):
        calls += [
            IdentifyCall(userId=f"u{n}", traits={"phone": f"+1415555000{n}", "sms_opt_in": True}),
            TrackCall(userId=f"u{n}", event="Spun", properties={"n": n}),
        ]
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, calls)
    seen_by_ticker: list[int] = []

    async def ticker() -> None:
        while True:
            seen_by_ticker.append(len(notes))
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        assert (await advance_due_enrollments(runtime))[0] == 3
    finally:
        ticking.cancel()

    async with runtime.sessions() as session:
        stored = (await session.exec(select(Message))).all()
    assert [m.status for m in stored] == ["failed"] * 3
    assert {m.status_reason for m in stored} == {
        "template spin-sms (step spin): render budget exceeded: rendering took longer than the budget of 50 ms"
    }
    # The loop ran other tasks between two renders of the same round, not only around it.
    assert any(0 < seen < 3 for seen in seen_by_ticker), seen_by_ticker
