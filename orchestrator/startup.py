"""Start-up wiring: build a `Runtime` from Settings (database, templates, channels, journeys)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import select

from orchestrator.auth.service_secrets import with_service_secrets
from orchestrator.broadcasts.loader import load_directory as broadcast_files
from orchestrator.broadcasts.loader import publish_files as publish_broadcast_files
from orchestrator.channels.configure import build_registry, configured_rates
from orchestrator.channels.ratelimit import SendRateLimiter
from orchestrator.channels.registry import ChannelRegistry
from orchestrator.clock import Clock, SimulatedClock
from orchestrator.config import Settings
from orchestrator.conversations.auto_replies import AutoReplies
from orchestrator.engine.simulated_time import resume_simulated_time
from orchestrator.journeys.catalog import JourneyCatalog
from orchestrator.journeys.live import ReloadResult, apply_reload, publish, refresh_catalog
from orchestrator.policies.frequency import load_frequency_policy
from orchestrator.reports.loader import load_reports
from orchestrator.runtime import Runtime
from orchestrator.segments.live import publish_segments
from orchestrator.segments.loader import load_segments
from orchestrator.storage.database import create_engine, session_factory
from orchestrator.storage.migrate import ensure_schema_current, upgrade_to_head
from orchestrator.storage.models import JourneyVersion
from orchestrator.templating.budget import RenderBudget
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.service_checks import load_checked_directory

log = logging.getLogger("orchestrator")


def make_clock(settings: Settings) -> Clock:
    if not settings.simulated_clock:
        return Clock()
    start = datetime.fromisoformat(settings.simulated_clock_start) if settings.simulated_clock_start else None
    return SimulatedClock(start)


async def load_journeys(runtime: Runtime) -> JourneyCatalog:
    """Load journey files at start-up, publish their versions, and compile every version an
    enrollment may still be on. A bad file is reported and skipped; the others load."""
    report = load_checked_directory(runtime.settings.journeys_dir, runtime.templates)
    catalog = JourneyCatalog(errors=report.errors)
    runtime.catalog = catalog
    async with runtime.sessions() as session, session.begin():
        await publish(session, report, runtime.clock.now())
        for row in (await session.exec(select(JourneyVersion))).all():
            try:
                catalog.add_version(row.journey_id, row.version, row.source)
            except Exception as error:  # an old version the current code can no longer read
                log.error("journey %s version %s cannot be compiled: %s", row.journey_id, row.version, error)
    for loaded in report.loaded:
        catalog.add_current(loaded)
    await refresh_catalog(runtime, force=True)
    for error in report.errors:
        log.error("journey not loaded: %s", error)
    log.info("journeys loaded: %s", ", ".join(f"{j.id}@{j.version}" for j in catalog.current.values()) or "none")
    return catalog


async def load_broadcasts(runtime: Runtime) -> None:
    """Broadcast files become (or update) drafts; a bad file is reported and skipped."""
    report = broadcast_files(runtime.settings.broadcasts_dir)
    async with runtime.sessions() as session, session.begin():
        await publish_broadcast_files(session, report, runtime.clock.now())
    for error in report.errors:
        log.error("broadcast not loaded: %s", error)


async def reload_journeys_and_segments(runtime: Runtime) -> ReloadResult:
    """`POST /v1/journeys/reload`, `POST /v1/segments/reload` and SIGHUP: the journey and
    segment files again, with the checks of start-up; any error refuses the whole reload."""
    journeys = load_checked_directory(runtime.settings.journeys_dir, runtime.templates)
    return await apply_reload(runtime, journeys, load_segments(runtime.settings.segments_dir))


async def build_runtime(
    settings: Settings, channels: ChannelRegistry | None = None, clock: Clock | None = None
) -> Runtime:
    # A broken caps file stops start-up: sending uncapped would break the promise silently.
    frequency = load_frequency_policy(settings.frequency_caps_file)
    engine = create_engine(settings.database_url)
    if settings.auto_migrate:
        await upgrade_to_head(engine)
    else:
        await ensure_schema_current(engine)
    sessions = session_factory(engine)
    try:
        # Before anything is built from them: adapters, the fakes and the webhooks share these.
        settings = await with_service_secrets(settings, sessions)
    except Exception:
        await engine.dispose()
        raise
    warn_about_webhook_verification(settings)
    budget = RenderBudget(max_seconds=settings.render_max_seconds, max_chars=settings.render_max_chars)
    templates = TemplateStore.load(settings.templates_dir, settings.default_locale, budget)
    for problem in templates.problems:
        log.error("template not loaded: %s", problem)
    log.info("templates loaded: %s", ", ".join(sorted(templates.templates)) or "none")
    channels = channels or build_registry(settings)
    runtime = Runtime(
        settings=settings,
        clock=clock or make_clock(settings),
        engine=engine,
        sessions=sessions,
        catalog=JourneyCatalog(),
        templates=templates,
        channels=channels,
        rate_limiter=SendRateLimiter(configured_rates(settings, channels), settings.rate_limit_storage),
        auto_replies=AutoReplies.load(settings.auto_replies_file),
        reports=load_reports(settings.reports_dir),
        segments=load_segments(settings.segments_dir),
        frequency=frequency,
    )
    await resume_simulated_time(runtime)
    async with runtime.sessions() as session, session.begin():  # before the journeys' first refresh reads them
        await publish_segments(session, runtime.segments, runtime.clock.now())
    runtime.catalog = await load_journeys(runtime)
    await load_broadcasts(runtime)
    for problem in runtime.reports.errors:
        log.error("report not loaded: %s", problem)
    for problem in runtime.segments.errors:
        log.error("segment not loaded: %s", problem)
    log.info("frequency caps: %s", ", ".join(str(c) for caps in frequency.caps.values() for c in caps) or "none")
    return runtime


def warn_about_webhook_verification(settings: Settings) -> None:
    if not settings.sendgrid_webhook_verify_signatures:
        log.warning(
            "ORCHESTRATOR_SENDGRID_WEBHOOK_VERIFY_SIGNATURES=false: anyone who can reach "
            "/webhooks/sendgrid/events can post delivery, bounce and unsubscribe events"
        )
    elif (
        settings.email_provider == "sendgrid"
        and not settings.uses_fake_sendgrid
        and not settings.sendgrid_webhook_public_key
    ):
        log.error(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: every SendGrid event webhook call will be refused "
            "(turn on the Signed Event Webhook in SendGrid and set its verification key)"
        )
