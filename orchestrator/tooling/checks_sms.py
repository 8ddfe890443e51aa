"""SMS length as `orchestrator validate` measures it, before anything is sent.

Every send step that can go out as an SMS or WhatsApp message (its channel or its fallback)
is rendered in every locale its template ships, exactly as `orchestrator preview` renders
it: the sample customer `sample-customer` (no traits but the locale), an empty event and the
step's own `vars`. Its links count at their longest short length under the configured base
URL (`delivery.short_links.measured_body`, the one the engine's `apply_links` will produce),
and `templating.sms.measure_sms` counts the segments. Above the variant's declared
`max_segments` is an error on the step. A variant with a budget that does not render with
the sample data is a warning (its budget goes unchecked; a real customer's data may well
render); without a budget, the other checks say why a variant does not render.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.channels.base import Channel
from orchestrator.config import Settings
from orchestrator.declared import readable_key
from orchestrator.journeys.format import SendStep
from orchestrator.templating.store import LocaleVariant, TemplateStore, split_front_matter
from orchestrator.tooling.findings import ERROR, WARNING, Finding
from orchestrator.tooling.preview import PreviewError, preview
from orchestrator.tooling.sources import JourneySource

BUDGET_KEY = "max_segments"


def check_sms_lengths(journey: JourneySource, store: TemplateStore, link_settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    for ref in journey.steps():
        if not isinstance(ref.step, SendStep):
            continue
        send = ref.step.send
        channels = {send.channel, send.fallback}
        template = store.get(send.template)
        if template is None or not channels & {Channel.sms, Channel.whatsapp}:
            continue  # a missing template is check_sends' finding
        location = ref.location + ("send", "template")
        where = (str(journey.path), journey.line(location), readable_key(location))
        origin = f"step {ref.id}, {journey.path}:{journey.line(ref.location)}"
        channel = Channel.sms if Channel.sms in channels else Channel.whatsapp
        for locale, variant in sorted(template.variants.items()):
            budget = variant.metadata.get(BUDGET_KEY)
            if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
                findings.append(_budget_finding(variant, f"must be a whole number of segments, got {budget!r}"))
                continue
            try:
                shown = preview(
                    store,
                    send.template,
                    locale=locale,
                    channel=channel,
                    send=(send, origin),
                    link_settings=link_settings,
                )
            except PreviewError as error:
                # Without a budget, other checks say why it fails (syntax, names never provided).
                if budget is not None:
                    message = (
                        f"step {ref.id}, locale {locale}: {BUDGET_KEY} not checked, no render with sample data: {error}"
                    )
                    findings.append(Finding(WARNING, *where, message))
                continue
            if shown.sms is None or budget is None:
                continue
            segments = shown.sms["segments"]
            if segments > budget:
                findings.append(
                    Finding(
                        ERROR,
                        *where,
                        f"step {ref.id}, locale {locale}: {segments} SMS segments ({shown.sms['encoding']}, "
                        f"{shown.sms['characters']} characters with links at their short length), over the budget of "
                        f"{budget} ({BUDGET_KEY} in {_budget_place(variant)})",
                    )
                )
    return findings


def _budget_line(variant: LocaleVariant) -> tuple[str, int | None]:
    file = variant.source_files[0]
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    _, _, offset = split_front_matter("\n".join(lines) + "\n")
    return file, next((n for n, line in enumerate(lines[:offset], 1) if line.startswith(f"{BUDGET_KEY}:")), None)


def _budget_place(variant: LocaleVariant) -> str:
    file, line = _budget_line(variant)
    return f"{file}:{line}" if line else file


def _budget_finding(variant: LocaleVariant, message: str) -> Finding:
    file, line = _budget_line(variant)
    return Finding(ERROR, file, line, BUDGET_KEY, message)
