"""A broadcast as the journey machinery sees it: a one-step journey named
`broadcast:<id>` whose step `send` is the broadcast's message.

Borrowing the journey's shape is what lets a broadcast message be rendered, consent-checked
and given its fallback channel by the very code that does it for journeys
(`engine.messages.prepare_message`, `engine.fallback`), lets goal events convert and be
credited like journey conversions (`engine.enrollments`, `delivery.conversions`), and lets
every KPI that scopes by journey (`kpis`, holdout lift) scope by broadcast unchanged. Each
recipient gets a finished enrollment in that journey (its holdout group and goal window);
nothing ever triggers it, since it is never anyone's current version.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.broadcasts.format import BroadcastFile
from orchestrator.journeys.compiler import CompiledJourney, compile_journey
from orchestrator.journeys.format import JourneyFile
from orchestrator.storage.broadcast_models import Broadcast

JOURNEY_PREFIX = "broadcast:"
SEND_STEP = "send"
# Never ingested: a broadcast is started by its schedule, not an event.
NO_TRIGGER = "Broadcast Started (never triggers)"


def broadcast_journey_id(broadcast_id: str) -> str:
    return JOURNEY_PREFIX + broadcast_id


def broadcast_of_journey(journey_id: str | None) -> str | None:
    return journey_id.removeprefix(JOURNEY_PREFIX) if journey_id and journey_id.startswith(JOURNEY_PREFIX) else None


def as_journey(definition: BroadcastFile, version: str) -> CompiledJourney:
    journey = JourneyFile.model_validate(
        {
            "id": definition.id,  # a valid journey id; renamed below into the broadcasts' own namespace
            "name": definition.name,
            "trigger": {"event": NO_TRIGGER},
            "steps": [
                {
                    "id": SEND_STEP,
                    "send": {
                        "channel": definition.channel,
                        "template": definition.template,
                        "vars": definition.vars,
                        "transactional": not definition.marketing,
                        "fallback": definition.fallback,
                    },
                }
            ],
            "goal": definition.goal.model_dump() if definition.goal else None,
            "holdout": definition.holdout * 100,  # journeys count in percent
            "priority": definition.priority,  # on every message: who wins a frequency cap's slot
            "quiet_hours": "off",  # the schedule is the broadcast's own choice of hour
        }
    )
    return compile_journey(journey.model_copy(update={"id": broadcast_journey_id(definition.id)}), version)


async def add_started_broadcasts(session, catalog) -> None:
    """Make every broadcast that has recipients known to this process's catalog, so its
    fallbacks and goal conversions find their journey (called by `refresh_catalog`)."""
    b = Broadcast.__table__.c
    started = (await session.exec(sa.select(b.id, b.version).where(b.snapshot_at.is_not(None)))).all()
    missing = [i for i, version in started if catalog.version(broadcast_journey_id(i), version) is None]
    if not missing:
        return
    for row in (await session.exec(sa.select(b.version, b.source).where(b.id.in_(missing)))).all():
        catalog.add_compiled(as_journey(BroadcastFile.model_validate(row.source), row.version))
