"""Static look at the Jinja expressions and templates marketers write.

Used by `validate` (names a condition or template uses that nothing provides, conditions
that are constants) and by `simulate` (why a branch was taken).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from orchestrator.journeys.expressions import evaluate
from orchestrator.templating.store import text_environment

JINJA_GLOBALS = frozenset(text_environment.globals)
_GUARDING_FILTERS = {"default", "d"}
_GUARDING_TESTS = {"defined", "undefined"}


def parse_expression(source: str) -> nodes.Expr:
    template = text_environment.parse("{{ " + source + " }}")
    return template.body[0].nodes[0]


def find_all(node: nodes.Node, types) -> list[nodes.Node]:
    """Like `node.find_all`, but the node itself counts too."""
    return ([node] if isinstance(node, types) else []) + list(node.find_all(types))


@dataclass(frozen=True)
class Call:
    function: str
    argument: Any  # the literal first argument, or None when it is not a literal
    source: str


def calls(expression: nodes.Node, names: set[str]) -> list[Call]:
    """`has_event('Order Completed')`, `consented('sms')`: calls of these functions."""
    found = []
    for call in find_all(expression, nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in names:
            argument = call.args[0].value if call.args and isinstance(call.args[0], nodes.Const) else None
            shown = repr(argument) if argument is not None else "…"
            found.append(Call(call.node.name, argument, f"{call.node.name}({shown})"))
    return found


def constant_value(source: str) -> bool | None:
    """The truth of a condition that reads nothing (`true`, `1 == 2`), else None."""
    expression = parse_expression(source)
    if find_all(expression, (nodes.Name, nodes.Call)):
        return None
    try:
        return evaluate(source, {})
    except Exception:
        return None


def undeclared_names(ast: nodes.Template) -> dict[str, int]:
    """Top-level names a template or expression reads but never sets, with the first line
    reading each. Names only read through `| default(...)` or `is defined` are optional by
    design and left out; so are Jinja's globals (`range`, `dict`, ...)."""
    undeclared = meta.find_undeclared_variables(ast)  # Jinja's own scoping: loop vars, set, macros
    guarded: set[str] = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        operand = node.node
        optional = node.name in (_GUARDING_FILTERS if isinstance(node, nodes.Filter) else _GUARDING_TESTS)
        if optional and isinstance(operand, nodes.Name):
            guarded.add(operand.name)
    first_use: dict[str, int] = {}
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load" or name.name not in undeclared or name.name in guarded or name.name in JINJA_GLOBALS:
            continue
        first_use.setdefault(name.name, name.lineno)
    return first_use


def names_in_expression(source: str) -> dict[str, int]:
    return undeclared_names(text_environment.parse("{{ " + source + " }}"))


def names_in_template(source: str) -> dict[str, int] | None:
    """None when the source does not parse (the template store reports that error)."""
    try:
        return undeclared_names(text_environment.parse(source))
    except TemplateSyntaxError:
        return None


def lookups(expression: nodes.Node, roots: set[str]) -> list[str]:
    """`customer.vip`, `event.cart_value`: the outermost attribute chains on these roots."""
    found: list[str] = []

    def chain(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Name):
            return node.name if node.name in roots else None
        if isinstance(node, nodes.Getattr):
            inner = chain(node.node)
            return f"{inner}.{node.attr}" if inner else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            inner = chain(node.node)
            return f"{inner}[{node.arg.value!r}]" if inner else None
        return None

    def visit(node: nodes.Node) -> None:
        text = chain(node)
        if text and ("." in text or "[" in text):
            found.append(text)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(expression)
    return list(dict.fromkeys(found))


def explain(source: str, context: dict[str, Any]) -> list[str]:
    """What a condition read, as `has_event('Order Completed') = true`, for the simulator."""
    expression = parse_expression(source)
    parts = [c.source for c in calls(expression, {"has_event", "consented"}) if c.argument is not None]
    parts += lookups(expression, {"customer", "event", "awaited", "reply"})
    facts = []
    for part in dict.fromkeys(parts):
        try:
            shown = _show(_compiled_value(part, context))
        except Exception as error:  # the condition itself fails; the simulator reports that
            shown = f"error ({error})"
        facts.append(f"{part} = {shown}")
    return facts


def _compiled_value(source: str, context: dict[str, Any]) -> Any:
    from orchestrator.journeys.expressions import _compiled

    return _compiled(source)(**context)


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
