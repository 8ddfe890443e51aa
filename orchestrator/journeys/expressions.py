"""Conditions marketers write, evaluated in Jinja2's sandbox so they cannot run code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Chainable: `customer.address.city` on a customer without an address reads as empty
# instead of failing the enrollment.
_environment = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)


def check_expression(source: str | None) -> str | None:
    """Validate syntax at load time; the error names what is wrong."""
    if source is None:
        return None
    try:
        _compiled(source)
    except TemplateSyntaxError as error:
        raise ValueError(f"invalid expression {source!r}: {error.message}") from None
    return source


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Callable[..., Any]:
    # Missing attributes are falsy rather than errors: `customer.traits.vip` on a
    # customer without that trait simply reads as false.
    return _environment.compile_expression(source, undefined_to_none=True)


def evaluate(source: str, context: Mapping[str, Any]) -> bool:
    return bool(_compiled(source)(**context))
