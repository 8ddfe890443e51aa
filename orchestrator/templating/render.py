"""Render a template for one customer, in their locale, or say exactly why not.

Whatever goes wrong inside a template (a missing variable, a string formatted as a number,
a division by zero, a render over its budget) becomes a `RenderError`: the caller fails that
one message with the reason and carries on with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError

from orchestrator.templating.budget import RenderBudgetExceeded, render_within
from orchestrator.templating.store import TemplateStore


class RenderError(Exception):
    """The reason is stored on the message; the worker carries on.

    `detail` is what went wrong without naming the template (e.g. "TypeError: must be real
    number, not str"), for callers that name the template and step themselves."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    locale: str
    body: str
    subject: str | None = None
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def describe_error(error: BaseException) -> str:
    """What a marketer can act on: the error's kind and its message (which may quote
    customers' data: without NUL, which PostgreSQL cannot store)."""
    if isinstance(error, RenderBudgetExceeded):
        text = f"render budget exceeded: {error}"
    elif isinstance(error, SecurityError):
        text = f"tried something unsafe: {error}"
    elif isinstance(error, TemplateError):
        text = error.message or str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text.replace("\x00", "")


def render_message(store: TemplateStore, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMessage:
    template = store.get(name)
    if template is None:
        raise RenderError(f"template '{name}' does not exist")
    variant = template.variant_for(locale, store.default_locale)
    if variant is None:
        raise RenderError(f"template '{name}' has no variant for '{locale}' nor the default '{store.default_locale}'")
    budget = store.budget
    try:
        return RenderedMessage(
            template=name,
            locale=variant.locale,
            body=render_within(variant.body, context, budget).strip(),
            subject=render_within(variant.subject, context, budget).strip() if variant.subject else None,
            html=render_within(variant.html, context, budget) if variant.html else None,
            metadata=dict(variant.metadata),
        )
    # Any error at all: templates run marketers' expressions on customers' data, and one bad
    # value must fail one message, not the worker's round (MemoryError and RecursionError too).
    except Exception as error:
        detail = describe_error(error)
        raise RenderError(f"template '{name}' ({variant.locale}): {detail}", detail) from None


def page_words(
    store: TemplateStore, name: str, locale: str | None, fallback: dict[str, str], body_key: str, default_locale: str
) -> dict[str, str]:
    """A web page's words from a template, like every customer-facing text: the subject is the
    title, the body goes under `body_key`, the front matter gives the rest. `fallback` (plain
    English) keeps the page working if the template was deleted."""
    template = store.get(name)
    variant = template.variant_for(locale, default_locale) if template else None
    if variant is None:
        return dict(fallback)
    words = {key: str(value) for key, value in variant.metadata.items()}
    title = variant.subject.render() if variant.subject else fallback["title"]
    return {**fallback, **words, "title": title, body_key: variant.body.render().strip(), "lang": variant.locale}
