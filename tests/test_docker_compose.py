"""docker-compose.yml and the Dockerfile, checked against the code: CI cannot run Docker, so
this is what stops a renamed command, module or setting from breaking `docker compose up`."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import uvicorn
import yaml
from pydantic import AliasChoices

from orchestrator.cli import build_parser
from orchestrator.config import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OUR_IMAGE = "orchestrator:local"
CHECKED_VARIABLES = re.compile(r"^(ORCHESTRATOR_|DATABASE_URL$|TWILIO_|SENDGRID_)")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def setting_names() -> set[str]:
    """Every environment variable Settings reads."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(choice for choice in field.validation_alias.choices if isinstance(choice, str))
        else:
            names.add(f"ORCHESTRATOR_{field_name.upper()}")
    return names


def environment(service: dict) -> dict[str, str]:
    """As the container sees it, `${VAR:-default}` taken at its default."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: INTERPOLATION.sub(lambda match: match.group(2) or "", str(value)) for name, value in raw.items()}


def command_words(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def ours(name: str) -> bool:
    return SERVICES[name].get("image") == OUR_IMAGE


def test_the_stack_has_every_service():
    assert {"postgres", "redis", "mailpit", "fake-twilio", "migrate", "api", "worker"} <= set(SERVICES)
    assert all("build" in SERVICES[name] for name in SERVICES if ours(name))


@pytest.mark.parametrize("name", [name for name in SERVICES if ours(name)])
def test_each_command_is_one_our_image_can_run(name, monkeypatch, collector_restored):
    words = command_words(SERVICES[name]["command"])
    if words[0] == "orchestrator":
        try:
            build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(words)}` is not a valid orchestrator command")
    else:
        assert words[:2] == ["python", "-m"], f"{name}: unexpected command {words}"
        module = importlib.import_module(words[2])
        # Parse the arguments the way the module does, without serving anything. A fake's
        # `main` also tunes the garbage collector for a process of its own: `collector_restored`
        # gives this process its collector back.
        served = []
        monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
        try:
            module.main(words[3:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(words)}` has arguments the module does not take")
        assert served, f"{name}: python -m {words[2]} served nothing"


def test_the_services_depend_on_what_they_need():
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert command_words(SERVICES[name]["command"])[:2] == ["orchestrator", name]
    for name, service in SERVICES.items():
        for needed, requirement in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on a missing service {needed}"
            condition = requirement["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[needed], (
                    f"{name} waits for {needed} to be healthy; it has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert SERVICES[needed].get("restart") == "no", f"{needed} must run once for {name} to wait on it"


def test_infrastructure_healthchecks_ask_the_right_question():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert SERVICES["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "/health/ready" in " ".join(SERVICES["api"]["healthcheck"]["test"])


def test_the_api_healthcheck_route_exists():
    from orchestrator.api.app import create_app

    assert "/health/ready" in create_app(Settings(), run_worker=False).openapi()["paths"]


def test_workers_can_be_scaled():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker


@pytest.mark.parametrize("name", [name for name in SERVICES if ours(name)])
def test_every_variable_is_a_setting_and_parses(name, monkeypatch):
    variables = {key: value for key, value in environment(SERVICES[name]).items() if CHECKED_VARIABLES.match(key)}
    unknown = set(variables) - setting_names()
    assert not unknown, f"{name}: Settings reads no {sorted(unknown)}"
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    Settings()  # values of the wrong type or choice fail here


def test_the_stack_points_at_its_own_infrastructure():
    settings_by_name = environment(SERVICES["worker"])
    assert (
        settings_by_name["DATABASE_URL"].startswith("postgresql://")
        and "@postgres:" in settings_by_name["DATABASE_URL"]
    )
    assert settings_by_name["ORCHESTRATOR_AUTO_MIGRATE"] == "false"
    assert settings_by_name["ORCHESTRATOR_RATE_LIMIT_STORAGE"] == "redis://redis:6379"
    assert settings_by_name["ORCHESTRATOR_EMAIL_PROVIDER"] == "smtp"
    assert settings_by_name["ORCHESTRATOR_SMTP_HOST"] == "mailpit"
    assert settings_by_name["ORCHESTRATOR_TWILIO_API_BASE_URL"] == "http://fake-twilio:8025"
    assert settings_by_name["ORCHESTRATOR_PUBLIC_BASE_URL"] == "http://api:8000"
    # No constant: unless someone exports their own, the service generates one (and keeps it in PostgreSQL).
    assert settings_by_name["ORCHESTRATOR_SECRET_KEY"] == ""
    assert Settings(secret_key=settings_by_name["ORCHESTRATOR_SECRET_KEY"]).secret_key is None  # empty is unset


def test_the_published_api_requires_keys_and_the_fake_uses_the_services_token():
    """The API is published on a port, so it never runs open; the fake Twilio reads the auth
    token the service keeps in the database, after the migrations created its table."""
    for name in ("api", "worker"):
        assert environment(SERVICES[name])["ORCHESTRATOR_REQUIRE_API_KEYS"] == "true"
    fake = SERVICES["fake-twilio"]
    assert "--credentials-from-database" in command_words(fake["command"])
    assert fake["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_installs_the_package_and_runs_a_real_command():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert any(kind == "RUN" and re.search(r"\bpip install \.(\s|$)", rest) for kind, rest in instructions)

    ignored = {line.strip().rstrip("/") for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()}
    for kind, rest in instructions:
        if kind == "COPY":
            *sources, _target = shlex.split(rest)
            for source in sources:
                assert (PROJECT_ROOT / source).exists() and source not in ignored, (
                    f"COPY {source}: not in the build context"
                )
        if kind == "ENV":
            for assignment in shlex.split(rest):
                name = assignment.split("=", 1)[0]
                assert not CHECKED_VARIABLES.match(name) or name in setting_names(), f"ENV {name} is no setting"

    [command] = [yaml.safe_load(rest) for kind, rest in instructions if kind == "CMD"]
    assert command[0] == "orchestrator"
    build_parser().parse_args(command[1:])


def test_baked_in_paths_exist_in_the_image():
    """The image installs the package, so journeys, templates and the caps file are found through these."""
    copied = {shlex.split(rest)[-1].rstrip("/") for kind, rest in dockerfile_instructions() if kind == "COPY"}
    paths = [
        assignment.split("=", 1)[1]
        for kind, rest in dockerfile_instructions()
        if kind == "ENV"
        for assignment in shlex.split(rest)
        if assignment.endswith(("_DIR=/app/journeys", "_DIR=/app/templates"))
    ]
    assert sorted(Path(path).name for path in paths) == ["journeys", "templates"]
    assert {"./journeys", "./templates", "./policies"} <= copied
    caps = [a for kind, rest in dockerfile_instructions() if kind == "ENV" for a in shlex.split(rest)]
    assert "ORCHESTRATOR_FREQUENCY_CAPS_FILE=/app/policies/frequency.yaml" in caps
