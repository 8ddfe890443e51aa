"""Print a simulation: a timeline people read, or JSON a program reads."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.tooling.inputs import format_offset as offset
from orchestrator.tooling.simulate import SimulationResult
from orchestrator.vocabulary import MessageStatus

if TYPE_CHECKING:
    from orchestrator.tooling.audience_playback import Happening


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at.second else at.strftime("%Y-%m-%d %H:%M")


def format_timeline(result: SimulationResult) -> str:
    journey, customer = result.journey, result.customer
    lines = [
        f"journey {journey.id} ({journey.path}, version {journey.compiled.version})",
        f"customer {customer.user_id}, locale {customer.locale or '(none)'}",
        f"start {result.start.isoformat()}, horizon {result.horizon.isoformat()}",
        "",
    ]
    for entry in result.timeline:
        step = f"[{entry.step}] " if entry.step else ""
        lines.append(f"{offset(entry.at, result.start):>8}  {_time(entry.at)}  {entry.kind:<9} {step}{entry.detail}")
        if entry.message and entry.message["status"] == MessageStatus.queued:
            lines += _message_lines(entry.message)
    outcome = result.outcome()
    lines.append("")
    summary = f"outcome: {outcome['status']}"
    if outcome["exit_reason"]:
        summary += f" ({outcome['exit_reason']})"
    sends = [m for m in result.messages if m["status"] == MessageStatus.queued]
    skips = len(result.messages) - len(sends)
    summary += f"; {len(sends)} message{'s' if len(sends) != 1 else ''} sent, {skips} not sent"
    summary += "; converted" if outcome["converted"] else "; not converted"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def _message_lines(message: dict[str, Any]) -> list[str]:
    pad = " " * 30
    lines = []
    if message["subject"]:
        lines.append(f"{pad}subject: {message['subject']}")
    for paragraph in (message["body"] or "").splitlines() or [""]:
        wrapped = textwrap.wrap(paragraph, 88) or [""]
        lines += [f"{pad}| {part}" for part in wrapped]
    for link in message.get("links", []):
        app = f" (app first: {link['app']})" if link.get("app") else ""
        lines.append(f"{pad}link {link['index'] + 1} leads to {link['url']}{app}")
    if message["html"]:
        lines.append(f"{pad}html: {len(message['html'])} characters")
    return lines


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def timeline_json(result: SimulationResult) -> dict[str, Any]:
    return _plain(
        {
            "journey": result.journey.id,
            "version": result.journey.compiled.version,
            "customer": result.customer.user_id,
            "locale": result.customer.locale,
            "start": result.start,
            "horizon": result.horizon,
            "timeline": [
                {
                    "at": e.at,
                    "offset": offset(e.at, result.start),
                    "kind": e.kind,
                    "step": e.step,
                    "enrollment": e.enrollment,
                    "detail": e.detail,
                }
                for e in result.timeline
            ],
            "messages": [{**m, "offset": offset(m["at"], result.start)} for m in result.messages],
            "enrollments": [
                {
                    "enrollment": e.id,
                    "status": e.status,
                    "exit_reason": e.exit_reason,
                    "entered_at": e.entered_at,
                    "ended_at": e.ended_at,
                    "cursor": e.cursor,
                    "due_at": e.due_at,
                    "waiting_for": e.waiting_for,
                    "goal_deadline": e.goal_deadline,
                    "converted_at": e.converted_at,
                }
                for e in result.enrollments
            ],
            "outcome": result.outcome(),
        }
    )


def format_json(result: SimulationResult) -> str:
    return json.dumps(timeline_json(result), indent=2, ensure_ascii=False) + "\n"


def format_happenings(happenings: list[Happening]) -> str:
    """A segment or broadcast scenario's timeline: the calls it made, membership changes, the
    broadcast's state moves and every message, in time order (UTC)."""
    return "".join(f"{_time(h.at)} UTC  {h.kind:<9} {h.detail}\n" for h in happenings)


def happenings_json(happenings: list[Happening]) -> list[dict[str, Any]]:
    return [{"at": h.at.isoformat(), "kind": h.kind, "detail": h.detail} for h in happenings]
