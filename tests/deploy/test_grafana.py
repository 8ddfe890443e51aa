"""The Grafana dashboard and its provisioning, checked against the code: every series a panel
queries is one the service exports, and docker-compose mounts files that exist."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import PROJECT_ROOT

DASHBOARD = json.loads((PROJECT_ROOT / "deploy/grafana/dashboards/orchestrator.json").read_text())
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERIES = re.compile(r"\b(orchestrator_[a-z_]+)")
PROMQL_SUFFIXES = ("_bucket", "_total", "_count", "_sum")


def queried_series() -> set[str]:
    return {
        name for panel in DASHBOARD["panels"] for target in panel["targets"] for name in SERIES.findall(target["expr"])
    }


async def test_every_series_a_panel_queries_is_exported(client, drain):
    await client.post("/v1/identify", json={"userId": "ann", "traits": {"email": "ann@example.com"}})
    await client.post("/v1/track", json={"userId": "ann", "event": "Signed Up"})
    await drain()
    # Families, not samples: a labelled counter has no sample until its first increment.
    families = {family.name for family in text_string_to_metric_families((await client.get("/metrics")).text)}
    missing = {
        name
        for name in queried_series()
        if name not in families
        and not any(name.endswith(s) and name.removesuffix(s) in families for s in PROMQL_SUFFIXES)
    }
    assert queried_series() and not missing, f"the dashboard queries series the service does not export: {missing}"


def test_panels_have_unique_ids_and_use_the_provisioned_datasource():
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert {panel["datasource"]["uid"] for panel in DASHBOARD["panels"]} == {uid}


def test_compose_mounts_files_that_exist():
    for name in ("prometheus", "grafana"):
        for volume in COMPOSE["services"][name]["volumes"]:
            source = volume.split(":")[0]
            assert (PROJECT_ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    prometheus = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["api:8000"]
