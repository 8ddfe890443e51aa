"""Message templates: `templates/<name>/<locale>.txt` (+ optional `<locale>.html`).

A `.txt` file may start with YAML front matter between `---` lines holding the subject and
provider metadata (e.g. a WhatsApp `content_sid`). Everything compiles at load time so a
syntax error is reported with its file and line before any customer is affected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from orchestrator.templating.app_links import app_link
from orchestrator.templating.budget import BudgetedSandbox, RenderBudget, compile_template
from orchestrator.templating.locales import locale_chain, normalize_locale

# Marketers' templates run in the sandbox; a missing variable is an error, never a blank.
text_environment = BudgetedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
html_environment = BudgetedSandbox(undefined=StrictUndefined, autoescape=True)
for _environment in (text_environment, html_environment):
    _environment.globals["app_link"] = app_link  # a link into the app with a web fallback (docs/links.md)


@dataclass(frozen=True)
class TemplateProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass
class LocaleVariant:
    locale: str
    body: Template
    subject: Template | None = None
    html: Template | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_files: list[str] = field(default_factory=list)


@dataclass
class MessageTemplate:
    name: str
    variants: dict[str, LocaleVariant] = field(default_factory=dict)

    def variant_for(self, locale: str | None, default_locale: str) -> LocaleVariant | None:
        for candidate in locale_chain(locale, default_locale):
            if candidate in self.variants:
                return self.variants[candidate]
        return None


def split_front_matter(text: str) -> tuple[dict[str, Any], str, int]:
    """Returns (front matter, body, number of lines before the body)."""
    if not text.startswith("---\n"):
        return {}, text, 0
    end = text.find("\n---\n", 4)
    if end == -1:
        raise ValueError("front matter opened with --- but never closed")
    header = text[4:end]
    data = yaml.safe_load(header) or {}
    if not isinstance(data, dict):
        raise ValueError("front matter must be a YAML mapping (subject: ..., content_sid: ...)")
    return data, text[end + 5 :], header.count("\n") + 3


class TemplateStore:
    def __init__(self, directory: Path, default_locale: str = "en", budget: RenderBudget | None = None) -> None:
        self.directory = directory
        self.default_locale = default_locale
        self.budget = budget or RenderBudget()
        self.templates: dict[str, MessageTemplate] = {}
        self.problems: list[TemplateProblem] = []

    @classmethod
    def load(cls, directory: Path, default_locale: str = "en", budget: RenderBudget | None = None) -> TemplateStore:
        store = cls(directory, default_locale, budget)
        if directory.is_dir():
            for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
                store._load_template(folder)
        return store

    def get(self, name: str) -> MessageTemplate | None:
        return self.templates.get(name)

    def _load_template(self, folder: Path) -> None:
        template = MessageTemplate(folder.name)
        problems_before = len(self.problems)
        for text_file in sorted(folder.glob("*.txt")):
            variant = self._load_variant(text_file)
            if variant is not None:
                template.variants[variant.locale] = variant
        if template.variants:
            self.templates[template.name] = template
        elif len(self.problems) == problems_before:
            self.problems.append(TemplateProblem(str(folder), None, "no <locale>.txt variant"))

    def _load_variant(self, text_file: Path) -> LocaleVariant | None:
        name = str(text_file)
        try:
            metadata, body, offset = split_front_matter(text_file.read_text(encoding="utf-8"))
        except (ValueError, yaml.YAMLError) as error:
            self.problems.append(TemplateProblem(name, 1, str(error)))
            return None
        locale = normalize_locale(text_file.stem)
        try:
            subject = metadata.pop("subject", None)
            variant = LocaleVariant(
                locale=locale,
                body=self._compile(text_environment, body, name, offset),
                subject=self._compile(text_environment, str(subject), name, 1) if subject else None,
                metadata=metadata,
                source_files=[name],
            )
            html_file = text_file.with_suffix(".html")
            if html_file.exists():
                variant.html = self._compile(html_environment, html_file.read_text(encoding="utf-8"), str(html_file), 0)
                variant.source_files.append(str(html_file))
        except _CompileProblem as problem:
            self.problems.append(problem.problem)
            return None
        return variant

    @staticmethod
    def _compile(environment: SandboxedEnvironment, source: str, name: str, line_offset: int) -> Template:
        try:
            return compile_template(environment, source)
        except TemplateSyntaxError as error:
            raise _CompileProblem(
                TemplateProblem(name, (error.lineno or 0) + line_offset, f"template syntax: {error.message}")
            ) from None


class _CompileProblem(Exception):
    def __init__(self, problem: TemplateProblem) -> None:
        self.problem = problem
