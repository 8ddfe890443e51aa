"""The container: everything the engine needs, built once from Settings and passed explicitly.

Only the container lives here, so any module may import it (for its type) without pulling in
what builds it; `orchestrator.startup` wires one up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from orchestrator.channels.ratelimit import SendRateLimiter
    from orchestrator.channels.registry import ChannelRegistry
    from orchestrator.clock import Clock
    from orchestrator.config import Settings
    from orchestrator.conversations.auto_replies import AutoReplies
    from orchestrator.journeys.catalog import JourneyCatalog
    from orchestrator.policies.frequency import FrequencyPolicy
    from orchestrator.reports.loader import ReportCatalog
    from orchestrator.segments.loader import SegmentCatalog
    from orchestrator.templating.store import TemplateStore


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalog: JourneyCatalog
    templates: TemplateStore
    channels: ChannelRegistry
    rate_limiter: SendRateLimiter
    auto_replies: AutoReplies
    reports: ReportCatalog
    segments: SegmentCatalog
    frequency: FrequencyPolicy  # caps on marketing sends (orchestrator/policies/frequency.py)

    async def aclose(self) -> None:
        await self.channels.aclose()
        await self.engine.dispose()
