"""`orchestrator preview`: render one template as a customer would get it, and say what it costs.

Sample data comes from a vars file (`customer: {userId, traits}`, `event: {...}`, `vars:
{...}`); the send step of a journey that uses the template gives the default channel and
`vars`, so `orchestrator preview abandoned-cart-sms` works without any file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from orchestrator.channels.base import Channel
from orchestrator.config import Settings, get_settings
from orchestrator.delivery.short_links import measured_body, web_urls_only
from orchestrator.engine.facts import customer_view
from orchestrator.engine.messages import render_variables
from orchestrator.journeys.format import Send, SendStep
from orchestrator.journeys.loader import JourneyLoadError
from orchestrator.storage.models import Customer
from orchestrator.templating.render import RenderError, render_message
from orchestrator.templating.sms import GSM7_EXTENSION_CHARACTERS, is_gsm7, measure_sms
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.inputs import InputError, override_locale, parse_customer, read_document
from orchestrator.tooling.sources import journey_files, read_journey

SAMPLE_USER_ID = "sample-customer"
MAX_SMS_CHARACTERS = 1600  # Twilio refuses longer bodies; most carriers cap concatenation near 10 parts
SHOWN_CHARACTERS = 10


@dataclass
class Preview:
    template: str
    requested_locale: str | None
    locale: str
    channel: str | None
    body: str
    subject: str | None = None
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    variables_from: str | None = None
    sms: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


class PreviewError(Exception):
    pass


def journey_send(journeys_dir: Path, template: str) -> tuple[SendStep, str] | None:
    """The first send step using this template, with where it is (for the defaults)."""
    for path in journey_files(journeys_dir):
        try:
            journey = read_journey(path)
        except JourneyLoadError:
            continue
        for ref in journey.steps():
            if isinstance(ref.step, SendStep) and ref.step.send.template == template:
                return ref.step, f"step {ref.id}, {path}:{journey.line(ref.location)}"
    return None


def load_sample(path: Path | None) -> tuple[Customer, dict[str, Any], dict[str, Any] | None]:
    if path is None:
        return Customer(id=1, user_id=SAMPLE_USER_ID, traits={}), {}, None
    document = read_document(path)
    data = document.data or {}
    if not isinstance(data, dict):
        raise document.error((), "a vars file is a mapping: customer, event, vars")
    unknown = set(data) - {"customer", "event", "vars"}
    if "userId" in data:  # a customer file as simulate takes it
        return parse_customer(document), {}, None
    if unknown:
        raise document.error((sorted(unknown)[0],), "unknown key (expected customer, event, vars)")
    customer = (
        parse_customer(document, ("customer",))
        if "customer" in data
        else Customer(id=1, user_id=SAMPLE_USER_ID, traits={})
    )
    for key in ("event", "vars"):
        if key in data and not isinstance(data[key], dict):
            raise document.error((key,), "must be a mapping of names to values")
    return customer, dict(data.get("event") or {}), data.get("vars")


def preview(
    store: TemplateStore,
    name: str,
    *,
    locale: str | None = None,
    vars_file: Path | None = None,
    channel: Channel | None = None,
    journeys_dir: Path | None = None,
    link_settings: Settings | None = None,
    send: tuple[Send, str] | None = None,
) -> Preview:
    """`send` is the journey step to preview the template for, with where it is; without it,
    the first step in `journeys_dir` that sends the template gives the channel and `vars`."""
    if store.get(name) is None:
        problems = [str(p) for p in store.problems if Path(p.file).parts[-2:-1] == (name,) or Path(p.file).name == name]
        detail = "; ".join(problems) if problems else f"no folder {store.directory / name}"
        raise PreviewError(f"template '{name}' cannot be loaded: {detail}")
    customer, event, variables = load_sample(vars_file)
    if locale:
        override_locale(customer, locale)
    if send is None and journeys_dir:
        found = journey_send(journeys_dir, name)
        send = (found[0].send, found[1]) if found else None
    origin = None
    if variables is None and send:
        variables, origin = dict(send[0].vars), send[1]
    channel = channel or (send[0].channel if send else None)
    context = {"customer": customer_view(customer), "event": event}
    try:
        rendered_vars = render_variables(variables or {}, context)
        rendered = render_message(store, name, customer.locale, {**context, **rendered_vars})
    except (RenderError, TemplateError) as error:
        hint = " (give sample values with --vars FILE: customer, event, vars)" if "undefined" in str(error) else ""
        raise PreviewError(f"{error}{hint}") from None
    metadata = dict(rendered.metadata)
    if isinstance(metadata.get("content_variables"), dict):  # as engine.messages.prepare_message renders them
        metadata["content_variables"] = render_variables(metadata["content_variables"], {**context, **rendered_vars})
    # Measured as it will be sent: URLs of marketing SMS/WhatsApp at their short-link length.
    marketing = not (send and send[0].transactional)
    body = measured_body(
        rendered.body, link_settings or get_settings(), channel=channel.value if channel else "", marketing=marketing
    )
    result = Preview(
        name,
        customer.locale,
        rendered.locale,
        channel.value if channel else None,
        body,
        rendered.subject,
        web_urls_only(rendered.html),
        metadata,
        rendered_vars,
        origin,
    )
    if customer.locale and rendered.locale != customer.locale:
        result.warnings.append(f"no '{customer.locale}' variant: rendered the '{rendered.locale}' one")
    if channel == Channel.sms:
        result.sms, sms_warnings = measure(body)
        result.warnings += sms_warnings
        budget = metadata.get("max_segments")
        if isinstance(budget, int) and result.sms["segments"] > budget:
            result.warnings.append(f"{result.sms['segments']} segments: over the template's max_segments of {budget}")
    if channel == Channel.email and not rendered.subject:
        result.warnings.append("no subject: add `subject:` front matter for e-mail")
    return result


def measure(body: str) -> tuple[dict[str, Any], list[str]]:
    measured = measure_sms(body)
    sms = {
        "encoding": measured.encoding,
        "segments": measured.segments,
        "characters": measured.length,
        "units": measured.units,
    }
    warnings = []
    if measured.encoding == "UCS-2":
        outside = [c for c in dict.fromkeys(body) if not is_gsm7(c)]
        shown = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in outside[:SHOWN_CHARACTERS])
        more = f" and {len(outside) - SHOWN_CHARACTERS} more" if len(outside) > SHOWN_CHARACTERS else ""
        warnings.append(
            f"UCS-2 (70 characters a segment, 67 when split) because of {len(outside)} character"
            f"{'s' if len(outside) != 1 else ''} outside GSM-7: {shown}{more}"
        )
    escaped = sorted({c for c in body if c in GSM7_EXTENSION_CHARACTERS})
    if escaped and measured.encoding == "GSM-7":
        warnings.append(f"{' '.join(escaped)} count{'s' if len(escaped) == 1 else ''} as two GSM-7 characters")
    if measured.segments > 1:
        warnings.append(f"{measured.segments} segments: billed as {measured.segments} messages")
    if measured.length > MAX_SMS_CHARACTERS:
        warnings.append(f"{measured.length} characters: over {MAX_SMS_CHARACTERS}, which providers refuse")
    return sms, warnings


def format_preview(result: Preview) -> str:
    asked = (
        f" (asked for {result.requested_locale})"
        if result.requested_locale and result.requested_locale != result.locale
        else ""
    )
    lines = [
        f"template {result.template}, locale {result.locale}{asked}, channel {result.channel or '(unknown: use --channel)'}"
    ]
    if result.variables:
        shown = ", ".join(f"{k}={v!r}" for k, v in result.variables.items())
        lines.append(f"vars: {shown}" + (f" (from {result.variables_from})" if result.variables_from else ""))
    if result.subject is not None:
        lines += ["", f"subject: {result.subject}"]
    lines += ["", "body:", *[f"  {line}" for line in result.body.splitlines()]]
    if result.html:
        lines += ["", "html:", *[f"  {line}" for line in result.html.splitlines()]]
    if result.metadata:
        lines += ["", f"metadata: {json.dumps(result.metadata, ensure_ascii=False)}"]
    if result.sms:
        s = result.sms
        lines += [
            "",
            f"sms: {s['encoding']}, {s['segments']} segment{'s' if s['segments'] != 1 else ''}, "
            f"{s['characters']} characters ({s['units']} {'septets' if s['encoding'] == 'GSM-7' else 'UTF-16 units'})",
        ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def preview_json(result: Preview) -> str:
    return json.dumps(result.__dict__, indent=2, ensure_ascii=False, default=str) + "\n"


__all__ = ["InputError", "Preview", "PreviewError", "format_preview", "preview", "preview_json"]
