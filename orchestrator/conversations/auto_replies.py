"""Automated answers to frequent questions, so customers get one at any hour.

Rules live in a YAML file (`templates/auto-replies.yaml` by default):

    rules:
      - name: opening-hours
        keywords: [HOURS, HORAIRES, HORARIO, 營業時間]   # any one word of the message
        pattern: "(?i)\\b(open|opening)\\b"            # or a regular expression
        locales: [en, fr]                               # optional: only for these customers
        template: auto-reply-hours                      # rendered in the customer's locale

The first matching rule answers; an unmatched message waits for an agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.templating.locales import locale_chain


@dataclass(frozen=True)
class AutoReplyRule:
    name: str
    template: str
    keywords: frozenset[str] = frozenset()
    pattern: re.Pattern | None = None
    locales: tuple[str, ...] = ()

    def matches(self, body: str, locale: str | None, default_locale: str) -> bool:
        if self.locales and not set(locale_chain(locale, default_locale)) & set(self.locales):
            return False
        words = {w.strip(".,!?;:¿¡。！？").casefold() for w in body.split()}
        if self.keywords and words & self.keywords:
            return True
        return bool(self.pattern and self.pattern.search(body))


@dataclass
class AutoReplies:
    rules: list[AutoReplyRule] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> AutoReplies:
        if not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rules = []
        for position, raw in enumerate(data.get("rules", [])):
            if "template" not in raw or not (raw.get("keywords") or raw.get("pattern")):
                raise ValueError(f"{path}: rules[{position}] needs a template and keywords or a pattern")
            rules.append(
                AutoReplyRule(
                    name=raw.get("name", f"rule-{position + 1}"),
                    template=raw["template"],
                    keywords=frozenset(k.casefold() for k in raw.get("keywords", [])),
                    pattern=re.compile(raw["pattern"]) if raw.get("pattern") else None,
                    locales=tuple(raw.get("locales", [])),
                )
            )
        return cls(rules)

    def match(self, body: str, locale: str | None, default_locale: str) -> AutoReplyRule | None:
        return next((rule for rule in self.rules if rule.matches(body, locale, default_locale)), None)
