"""The marketer tooling subcommands of `orchestrator`: validate, simulate, test, preview.

Exit codes: 0 all good (warnings allowed), 1 problems found (validation errors, failing
scenarios, a template that does not render), 2 unusable input (a file that cannot be read
or parsed, an unknown journey).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator.config import get_settings
from orchestrator.vocabulary import CHANNELS

OK, PROBLEMS, BAD_INPUT = 0, 1, 2


def _shown(path: Path) -> Path:
    """Relative to the working directory when inside it, so messages name files as people see them."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _directories(args: argparse.Namespace) -> tuple[Path, Path, str]:
    settings = get_settings()
    journeys = Path(args.journeys) if getattr(args, "journeys", None) else _shown(settings.journeys_dir)
    templates = Path(args.templates) if getattr(args, "templates", None) else _shown(settings.templates_dir)
    return journeys, templates, settings.default_locale


def _frequency_policy():
    """The configured caps, which simulations apply as the dispatcher does."""
    from orchestrator.policies.frequency import load_frequency_policy

    return load_frequency_policy(_shown(get_settings().frequency_caps_file))


def _fail(messages: list[str] | str) -> int:
    for message in [messages] if isinstance(messages, str) else messages:
        print(message, file=sys.stderr)
    return BAD_INPUT


def run_validate(args: argparse.Namespace) -> int:
    from orchestrator.tooling.findings import format_human, format_json, has_errors
    from orchestrator.tooling.validate import validate

    journeys, templates, locale = _directories(args)
    settings = get_settings()
    report = validate(
        [Path(p) for p in args.paths],
        journeys,
        templates,
        locale,
        reports_dir=_shown(settings.reports_dir),
        segments_dir=_shown(settings.segments_dir),
        link_settings=settings,
        broadcasts_dir=_shown(settings.broadcasts_dir),
        frequency_file=_shown(settings.frequency_caps_file),
    )
    output = format_json(report.findings) if args.format == "json" else format_human(report.findings, report.summary)
    sys.stdout.write(output)
    if report.unusable_input:  # the README's exit codes: 2 is input that cannot be used at all
        return BAD_INPUT
    return PROBLEMS if has_errors(report.findings) else OK


def _start(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_simulate(args: argparse.Namespace) -> int:
    from orchestrator.declared import FileLoadError
    from orchestrator.journeys.durations import parse_duration
    from orchestrator.templating.store import TemplateStore
    from orchestrator.tooling.inputs import DEFAULT_START, InputError, parse_customer, parse_events, read_document
    from orchestrator.tooling.simulate import simulate, simulation_link_settings
    from orchestrator.tooling.sources import find_journey
    from orchestrator.tooling.transcript import format_json, format_timeline

    journeys, templates, locale = _directories(args)
    try:
        journey = find_journey(args.journey, journeys)
        start = _start(args.start) or DEFAULT_START
        horizon = parse_duration(args.horizon)
        customer = parse_customer(read_document(Path(args.customer)), locale=args.locale)
        events = parse_events(read_document(Path(args.events)), start)
        frequency = _frequency_policy()
    except FileLoadError as error:  # the journey's or the caps file's
        return _fail([str(e) for e in error.errors])
    except InputError as error:
        return _fail(error.messages)
    except ValueError as error:
        return _fail(f"error: {error}")
    store = TemplateStore.load(templates, locale)
    result = simulate(
        journey, store, customer, events, start, horizon, simulation_link_settings(get_settings()), frequency
    )
    sys.stdout.write(format_json(result) if args.format == "json" else format_timeline(result))
    return OK


def run_test(args: argparse.Namespace) -> int:
    from orchestrator.declared import FileLoadError
    from orchestrator.templating.store import TemplateStore
    from orchestrator.tooling.audience_playback import AudienceScenarios
    from orchestrator.tooling.scenarios import ScenarioRunner, scenario_files
    from orchestrator.tooling.simulate import simulation_link_settings
    from orchestrator.tooling.transcript import format_happenings, format_timeline

    journeys, templates, locale = _directories(args)
    settings = get_settings()
    default_dirs = [journeys, _shown(settings.segments_dir), _shown(settings.broadcasts_dir)]
    scenario_dirs = [d / "scenarios" for d in default_dirs if (d / "scenarios").is_dir()]
    files = scenario_files([Path(p) for p in args.paths] or scenario_dirs or [journeys / "scenarios"])
    if not files:
        return _fail("no scenario files found")
    try:
        frequency = _frequency_policy()
    except FileLoadError as error:
        return _fail([str(e) for e in error.errors])
    # Segments and broadcasts run on the service itself, over a scratch database (never DATABASE_URL).
    audiences = AudienceScenarios(settings.model_copy(update=dict(journeys_dir=journeys, templates_dir=templates)))
    runner = ScenarioRunner(
        journeys,
        TemplateStore.load(templates, locale),
        simulation_link_settings(settings),
        frequency,
        audiences,
    )
    try:
        results = [runner.run(path) for path in files]
    finally:
        audiences.close()
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "scenario": r.name,
                        "file": str(r.path),
                        "passed": r.passed,
                        "error": r.error,
                        "diff": r.diff,
                        "timeline": _timeline_json(r) if args.show_timeline else None,
                    }
                    for r in results
                ],
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
        return PROBLEMS if failed else OK
    for result in results:
        about = f": {result.description.strip()}" if result.description else ""
        print(f"{'PASS' if result.passed else 'FAIL'} {result.name}{about}")
        if result.error:
            print("\n".join(f"    {line}" for line in result.error.splitlines()))
        if result.diff:
            print("\n".join(f"    {line}" for line in result.diff))
        if not result.passed and args.show_timeline:
            if result.simulation:
                print("\n".join(f"    {line}" for line in format_timeline(result.simulation).splitlines()))
            elif result.happenings:
                print("\n".join(f"    {line}" for line in format_happenings(result.happenings).splitlines()))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return PROBLEMS if failed else OK


def _timeline_json(result) -> Any:
    """A scenario's timeline for `--format json`: a journey run's, or a segment or broadcast
    scenario's list of happenings."""
    from orchestrator.tooling.transcript import happenings_json, timeline_json

    if result.simulation:
        return timeline_json(result.simulation)
    return happenings_json(result.happenings) if result.happenings else None


def run_preview(args: argparse.Namespace) -> int:
    from orchestrator.channels.base import Channel
    from orchestrator.templating.store import TemplateStore
    from orchestrator.tooling.inputs import InputError
    from orchestrator.tooling.preview import PreviewError, format_preview, preview, preview_json

    journeys, templates, locale = _directories(args)
    store = TemplateStore.load(templates, locale)
    try:
        result = preview(
            store,
            args.template,
            locale=args.locale,
            vars_file=Path(args.vars) if args.vars else None,
            channel=Channel(args.channel) if args.channel else None,
            journeys_dir=journeys,
        )
    except InputError as error:
        return _fail(error.messages)
    except PreviewError as error:
        print(f"error: {error}", file=sys.stderr)
        return PROBLEMS
    sys.stdout.write(preview_json(result) if args.format == "json" else format_preview(result))
    return OK


def _wrap(text: str) -> str:
    return textwrap.fill(text, 88)


def _common(parser: argparse.ArgumentParser, *, journeys: bool = True) -> None:
    if journeys:
        parser.add_argument("--journeys", metavar="DIR", help="journeys directory (default: ORCHESTRATOR_JOURNEYS_DIR)")
    parser.add_argument("--templates", metavar="DIR", help="templates directory (default: ORCHESTRATOR_TEMPLATES_DIR)")
    parser.add_argument("--format", choices=["human", "json"], default="human", help="output format (default: human)")


def add_tooling_commands(commands: argparse._SubParsersAction) -> None:
    formatter = argparse.RawDescriptionHelpFormatter

    validate = commands.add_parser(
        "validate",
        help="check journeys and templates without starting anything",
        formatter_class=formatter,
        description=_wrap(
            "Check journey files and templates: schema errors, unknown templates, missing locale variants, "
            "template syntax, variables a template needs that the journey never provides, unreachable steps, "
            "waits that can never wake. Exit 1 on any error (warnings alone exit 0)."
        ),
        epilog="PATH: a journey file, a directory of journeys, or a templates directory.\n"
        "With no PATH: the configured journeys and templates directories.",
    )
    validate.add_argument("paths", nargs="*", metavar="PATH")
    _common(validate, journeys=False)
    validate.set_defaults(handler=run_validate)

    simulate = commands.add_parser(
        "simulate",
        help="run one journey for one customer on a simulated clock, in memory",
        formatter_class=formatter,
        description=_wrap(
            "Run JOURNEY for the customer in FILE against timed events, with no database and no provider, "
            "and print the timeline: steps, waits and when they resume, branches and why, every message "
            "rendered (SMS encoding and segments), skips and their reasons, exits and conversions."
        ),
        epilog="customer FILE (YAML or JSON):  userId: ann\n"
        "                               traits: {email: ann@example.com, locale: fr}\n"
        "events FILE:  - {at: 0s, event: Signed Up}\n"
        "              - {at: 2d, event: Order Completed, properties: {revenue: 42}}\n"
        "              - {at: 3d, traits: {sms_opt_in: true}}   # an identify call\n"
        "`at` is an offset from --start (0s, 30m, 1h30m, 2d) or an ISO-8601 time.",
    )
    simulate.add_argument("journey", metavar="JOURNEY", help="journey id, or path to a journey file")
    simulate.add_argument("--customer", required=True, metavar="FILE", help="the customer: userId and traits")
    simulate.add_argument("--events", required=True, metavar="FILE", help="the customer's events, in time")
    simulate.add_argument("--locale", help="override the customer's locale, e.g. fr or zh-Hant")
    simulate.add_argument("--start", metavar="ISO", help="when offsets count from (default 2026-03-02T17:00Z)")
    simulate.add_argument(
        "--horizon",
        default="30d",
        metavar="DURATION",
        help="how long after the last event to keep running (default 30d)",
    )
    _common(simulate)
    simulate.set_defaults(handler=run_simulate)

    test = commands.add_parser(
        "test",
        help="run scenario files and compare with their expected outcome",
        formatter_class=formatter,
        description=_wrap(
            "Run each scenario (a customer, timed events, the expected sends, skips and final status) "
            "through the simulator; print PASS or FAIL with a diff of expected and actual. Exit 1 if any "
            "scenario fails. Scenarios of a segment or a broadcast (several customers, membership at "
            "moments, who gets which message when) run the service's own code on a scratch SQLite "
            "database, never DATABASE_URL."
        ),
        epilog="PATH: scenario files or directories (default: the scenarios/ folders of the journeys,\n"
        "segments and broadcasts directories).",
    )
    test.add_argument("paths", nargs="*", metavar="PATH")
    test.add_argument("--show-timeline", action="store_true", help="print the timeline of failing scenarios")
    _common(test)
    test.set_defaults(handler=run_test)

    preview = commands.add_parser(
        "preview",
        help="render one template and measure it (SMS encoding, segments)",
        formatter_class=formatter,
        description=_wrap(
            "Render TEMPLATE in a locale with sample data and print subject, body and HTML; for SMS also "
            "the encoding, segment count and warnings (more than one segment, UCS-2 and the characters "
            "causing it, over 1600 characters)."
        ),
        epilog="vars FILE:  customer: {userId: ann, traits: {first_name: Ann}}\n"
        "            event: {order_id: A-1}\n"
        "            vars: {discount_code: SPRING}\n"
        "Without --vars, channel and vars come from the first journey step sending TEMPLATE.",
    )
    preview.add_argument("template", metavar="TEMPLATE", help="template name (a folder of the templates directory)")
    preview.add_argument("--locale", help="render for this locale, e.g. zh-Hant (default: the default locale)")
    preview.add_argument("--vars", metavar="FILE", help="sample customer, event and vars (YAML or JSON)")
    preview.add_argument("--channel", choices=CHANNELS, help="the channel (default: from the journey)")
    _common(preview)
    preview.set_defaults(handler=run_preview)
