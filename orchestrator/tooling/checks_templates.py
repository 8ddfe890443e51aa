"""Checks on templates, alone and as the journeys' send steps use them.

- syntax errors and unreadable front matter, with template file and line (the template
  store finds them when it compiles);
- every template needs a variant in the default locale: it is the last step of the locale
  fallback, so without it some customers get no message (error); a template lacking a
  locale that other templates have is a warning (those customers get the default locale);
- a send naming a template folder that does not exist (error);
- a template reading a top-level name that its sends never provide: templates see
  `customer`, `event` and the send's `vars`, and a missing name fails the message (error).
  Names read only through `| default(...)` or `is defined` are optional and accepted;
- `vars` strings are Jinja too and see only `customer` and `event` (error);
- an e-mail send whose template variant has no subject (warning);
- loops that can run past the render budget: a loop inside a loop, or a loop over
  `range(N)` with N above a thousand (warning: the budget fails such messages at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from jinja2 import TemplateSyntaxError, nodes

from orchestrator.channels.base import Channel
from orchestrator.declared import readable_key
from orchestrator.journeys.format import SendStep
from orchestrator.templating.locales import normalize_locale
from orchestrator.templating.store import TemplateStore, split_front_matter, text_environment
from orchestrator.tooling.expressions import names_in_template
from orchestrator.tooling.findings import ERROR, WARNING, Finding
from orchestrator.tooling.sources import JourneySource

RENDER_CONTEXT = ("customer", "event")
# A loop over more items than this is worth a second look (a message has a few hundred words).
LARGE_RANGE = 1000


@dataclass(frozen=True)
class SourcePiece:
    """One compiled part of a variant: its file, its text and how far into the file it starts."""

    file: str
    text: str
    line_offset: int


def disk_locales(folder: Path) -> set[str]:
    return {normalize_locale(path.stem) for path in folder.glob("*.txt")}


def template_pieces(folder: Path) -> list[SourcePiece]:
    pieces = []
    for text_file in sorted(folder.glob("*.txt")):
        text = text_file.read_text(encoding="utf-8")
        try:
            metadata, body, offset = split_front_matter(text)
        except (ValueError, yaml.YAMLError):
            continue  # reported by the store
        pieces.append(SourcePiece(str(text_file), body, offset))
        header = text.splitlines()[:offset]
        if metadata.get("subject"):
            pieces.append(SourcePiece(str(text_file), str(metadata["subject"]), _line_of(header, "subject:") - 1))
        # WhatsApp content variables are rendered like vars, with the send's context.
        variables = metadata.get("content_variables")
        for value in variables.values() if isinstance(variables, dict) else []:
            if isinstance(value, str):
                pieces.append(SourcePiece(str(text_file), value, _line_of(header, value) - 1))
        html_file = text_file.with_suffix(".html")
        if html_file.exists():
            pieces.append(SourcePiece(str(html_file), html_file.read_text(encoding="utf-8"), 0))
    return pieces


def _line_of(lines: list[str], needle: str) -> int:
    return next((n for n, line in enumerate(lines, 1) if needle in line), 1)


def check_store(store: TemplateStore) -> list[Finding]:
    findings = [Finding(ERROR, p.file, p.line, "", p.message) for p in store.problems]
    if not store.directory.is_dir():
        return [Finding(ERROR, str(store.directory), None, "", "templates directory does not exist")]
    folders = sorted(p for p in store.directory.iterdir() if p.is_dir())
    locales = {folder: disk_locales(folder) for folder in folders}
    everywhere = set().union(*locales.values()) if locales else set()
    default = normalize_locale(store.default_locale)
    for folder in folders:
        for piece in template_pieces(folder):
            for line, message in loop_problems(piece.text, piece.line_offset):
                findings.append(Finding(WARNING, piece.file, line, "", message))
    for folder, have in locales.items():
        if not have:
            continue  # "no <locale>.txt variant" is already a store problem
        if default not in have:
            findings.append(
                Finding(
                    ERROR,
                    str(folder),
                    None,
                    "",
                    f"no '{default}' variant ({default}.txt): the default locale ends every "
                    f"fallback, so customers in a locale without a variant get no message",
                )
            )
        for locale in sorted(everywhere - have - {default}):
            findings.append(
                Finding(
                    WARNING,
                    str(folder),
                    None,
                    "",
                    f"no '{locale}' variant ({locale}.txt), which other templates have: "
                    f"customers in {locale} get '{default}'",
                )
            )
    return findings


def loop_problems(source: str, line_offset: int = 0) -> list[tuple[int, str]]:
    """(file line, message) for loops that can outrun the render budget: nested loops, and
    loops over `range(...)` with a constant argument above LARGE_RANGE."""
    try:
        tree = text_environment.parse(source)
    except TemplateSyntaxError:
        return []  # reported by the store
    problems = []
    for loop in tree.find_all(nodes.For):
        size = _constant_range_size(loop.iter)
        if size is not None and size > LARGE_RANGE:
            problems.append(
                (
                    loop.lineno + line_offset,
                    f"loop over range({size:,}): loops this long run into the render budget, "
                    f"and the message fails; loop over the data itself",
                )
            )
        inner = next(
            (
                n
                for body in (loop.body, loop.else_)
                for node in body
                for n in ([node] if isinstance(node, nodes.For) else node.find_all(nodes.For))
            ),
            None,
        )
        if inner is not None:
            problems.append(
                (
                    inner.lineno + line_offset,
                    f"loop inside the loop of line {loop.lineno + line_offset}: nested loops multiply, "
                    f"can run into the render budget, and the message fails",
                )
            )
    return problems


def _constant_range_size(iterable: nodes.Node) -> int | None:
    if not (
        isinstance(iterable, nodes.Call) and isinstance(iterable.node, nodes.Name) and iterable.node.name == "range"
    ):
        return None
    try:
        arguments = [argument.as_const() for argument in iterable.args]
    except nodes.Impossible:
        return None
    if not arguments or not all(isinstance(a, int) for a in arguments):
        return None
    try:
        return len(range(*arguments))
    except (ValueError, OverflowError):
        return None


def check_sends(journey: JourneySource, store: TemplateStore) -> list[Finding]:
    findings: list[Finding] = []
    for ref in journey.steps():
        if not isinstance(ref.step, SendStep):
            continue
        send, here = ref.step.send, ref.location + ("send",)

        def add(severity: str, location: tuple, message: str) -> None:
            findings.append(
                Finding(severity, str(journey.path), journey.line(location), readable_key(location), message)
            )

        for name, value in send.vars.items():
            for problem in _vars_string_problems(value):
                add(ERROR, here + ("vars", name), problem)
        folder = store.directory / send.template
        if not folder.is_dir():
            add(ERROR, here + ("template",), f"template '{send.template}' does not exist: no folder {folder}")
            continue
        allowed = set(RENDER_CONTEXT) | set(send.vars)
        missing: dict[str, list[str]] = {}
        for piece in template_pieces(folder):
            for name, line in (names_in_template(piece.text) or {}).items():
                if name not in allowed:
                    missing.setdefault(name, []).append(f"{piece.file}:{line + piece.line_offset}")
        provided = ", ".join(sorted(send.vars)) or "none"
        for name, places in sorted(missing.items()):
            add(
                ERROR,
                here + ("template",),
                f"template '{send.template}' uses '{name}' ({', '.join(dict.fromkeys(places))}), which this send "
                f"never provides: templates see customer, event and the send's vars ({provided})",
            )
        template = store.get(send.template)
        if template and Channel.email in (send.channel, send.fallback):
            lacking = sorted(v.locale for v in template.variants.values() if v.subject is None)
            if lacking:
                add(
                    WARNING,
                    here + ("template",),
                    f"template '{send.template}' has no subject in {', '.join(lacking)}: e-mail without a subject "
                    f"(add `subject:` front matter)",
                )
    return findings


def _vars_string_problems(value: object) -> list[str]:
    if not isinstance(value, str) or "{" not in value:
        return []  # the engine renders only strings with Jinja in them
    try:
        names = names_in_template(value)
        text_environment.parse(value)
    except TemplateSyntaxError as error:
        return [f"template syntax: {error.message}"]
    return [
        f"'{name}' is not defined: vars strings see only customer and event"
        for name in (names or {})
        if name not in RENDER_CONTEXT
    ]
