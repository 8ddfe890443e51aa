"""The documentation keeps up with the code: every setting is in the configuration table,
and every relative link in the Markdown docs leads to a file (and heading) that exists."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from orchestrator.config import PROJECT_ROOT, Settings

CONFIGURATION_PAGE = PROJECT_ROOT / "docs" / "operations.md"
CONFIGURATION_HEADING = "## Configuration"


def documented_pages() -> list[Path]:
    pages = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "BENCHMARKS.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    return [page for page in pages if page.exists()]


def environment_names(settings_class: type[BaseSettings]) -> dict[str, list[str]]:
    """Each field's environment variable names, the one to document first, as pydantic-settings
    reads them: the validation alias (or its choices) when there is one, else prefix + name."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            names[field_name] = [alias]
        else:
            names[field_name] = [f"{prefix}{field_name}".upper()]
    return names


def section(markdown: str, heading: str) -> str:
    """From `heading` to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines()
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def table_variables(markdown: str) -> set[str]:
    """Variable names written in backticks in the first column of the tables."""
    names: set[str] = set()
    for line in markdown.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]))
    return names


def missing_settings(settings_class: type[BaseSettings], table: str) -> list[str]:
    documented = table_variables(table)
    return [names[0] for names in environment_names(settings_class).values() if names[0] not in documented]


def unknown_variables(settings_class: type[BaseSettings], table: str) -> list[str]:
    known = {name for names in environment_names(settings_class).values() for name in names}
    return sorted(table_variables(table) - known)


def configuration_table() -> str:
    return section(CONFIGURATION_PAGE.read_text(encoding="utf-8"), CONFIGURATION_HEADING)


def test_every_setting_is_in_the_configuration_table():
    assert missing_settings(Settings, configuration_table()) == []


def test_the_configuration_table_names_only_real_settings():
    assert unknown_variables(Settings, configuration_table()) == []


def test_the_checks_catch_a_missing_and_a_stale_variable():
    table = "\n".join(f"| `{names[0]}` | x |" for names in environment_names(Settings).values())
    assert missing_settings(Settings, table) == []
    without_secret = table.replace("| `ORCHESTRATOR_SECRET_KEY` | x |", "")
    assert missing_settings(Settings, without_secret) == ["ORCHESTRATOR_SECRET_KEY"]
    assert unknown_variables(Settings, table + "\n| `ORCHESTRATOR_NO_SUCH_SETTING` | x |") == [
        "ORCHESTRATOR_NO_SUCH_SETTING"
    ]


def test_environment_names_follow_pydantic_settings(monkeypatch):
    # The names the test derives are the names the settings class really reads.
    for field_name, names in environment_names(Settings).items():
        if Settings.model_fields[field_name].annotation not in (str, str | None):
            continue
        for name in names:
            monkeypatch.setenv(name, "from-the-environment")
            assert getattr(Settings(), field_name) == "from-the-environment", name
            monkeypatch.delenv(name)


# Links: [text](target) outside code, and <https://...> autolinks (ignored: not relative).
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = "".join(ch for ch in text if ch in "-_ " or unicodedata.category(ch)[0] in "LNM")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in FENCE.sub("", markdown).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def broken_links(page: Path) -> list[str]:
    markdown = page.read_text(encoding="utf-8")
    problems = []
    for target in LINK.findall(FENCE.sub("", markdown)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        path = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not path.exists():
            problems.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{fragment} in {path.name}")
    return problems


@pytest.mark.parametrize("page", documented_pages(), ids=lambda page: str(page.relative_to(PROJECT_ROOT)))
def test_relative_links_lead_somewhere(page):
    assert broken_links(page) == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading: with punctuation\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-code-heading-with-punctuation) [gone](missing.md) "
        "[bad](other.md#nowhere) [web](https://example.com/x)\n"
        "```\n[in code](not-checked.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nowhere: no heading #nowhere in other.md"]


def test_the_readme_is_for_newcomers():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    # What ./test.sh does to the machine is said before the command is shown.
    assert readme.index("restarts the machine's PostgreSQL") < readme.index("```sh\n./test.sh\n```")
    assert "ORCHESTRATOR_TEST_RESTART_POSTGRES=1" in readme
