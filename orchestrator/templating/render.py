"""Render a template for one customer, in their locale, or say exactly why not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError

from orchestrator.templating.store import TemplateStore


class RenderError(Exception):
    """The reason is stored on the message; the worker carries on."""


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    locale: str
    body: str
    subject: str | None = None
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def render_message(store: TemplateStore, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMessage:
    template = store.get(name)
    if template is None:
        raise RenderError(f"template '{name}' does not exist")
    variant = template.variant_for(locale, store.default_locale)
    if variant is None:
        raise RenderError(f"template '{name}' has no variant for '{locale}' nor the default '{store.default_locale}'")
    try:
        return RenderedMessage(
            template=name,
            locale=variant.locale,
            body=variant.body.render(context).strip(),
            subject=variant.subject.render(context).strip() if variant.subject else None,
            html=variant.html.render(context) if variant.html else None,
            metadata=dict(variant.metadata),
        )
    except SecurityError as error:
        raise RenderError(f"template '{name}' ({variant.locale}) tried something unsafe: {error}") from None
    except TemplateError as error:
        raise RenderError(f"template '{name}' ({variant.locale}): {error.message or error}") from None
