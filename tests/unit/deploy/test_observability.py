"""Alerts, dashboards and deployment settings name only what the services really have:
every `tickwire_*` metric in deploy/ is registered by a service, and every `TICKWIRE_*`
variable set in docker-compose.yml or the Kubernetes manifests is a field of that
service's settings class. A renamed metric or setting fails here, not in production."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic_settings import BaseSettings

import tickwire.gateway.metrics
import tickwire.ingest.metrics
import tickwire.observability.http
import tickwire.processor.metrics
from tickwire.gateway.settings import GatewaySettings
from tickwire.ingest.settings import IngestSettings
from tickwire.processor.settings import ProcessorSettings

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "processor": ProcessorSettings,
    "gateway": GatewaySettings,
}
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")

# imported for their side effect: registering every metric the services export
_REGISTERING = (
    tickwire.gateway.metrics,
    tickwire.ingest.metrics,
    tickwire.processor.metrics,
    tickwire.observability.http,
)


def _exported() -> set[str]:
    names = set()
    for collector in REGISTRY.collect():
        names.add(collector.name)
        names.add(collector.name + "_total")
    return names


def _named_metrics(text: str) -> set[str]:
    found = set()
    for name in re.findall(r"\btickwire_[a-z0-9_]+", text):
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        found.add(name)
    return found


def test_alert_rules_are_well_formed_and_name_real_metrics() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}
        assert rule["labels"]["severity"] in {"page", "ticket"}
    missing = _named_metrics(ALERTS.read_text()) - _exported()
    assert not missing, f"alerts name metrics no service exports: {sorted(missing)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_query_real_metrics(path: Path) -> None:
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for panel in dash["panels"] for t in panel["targets"]]
    assert exprs
    missing = _named_metrics("\n".join(exprs)) - _exported()
    assert not missing, f"{path.name} queries metrics no service exports: {sorted(missing)}"


def _env_of(container_env: list[dict[str, Any]] | dict[str, Any]) -> set[str]:
    if isinstance(container_env, dict):
        return {k for k in container_env if k.startswith("TICKWIRE_")}
    return {e["name"] for e in container_env if e["name"].startswith("TICKWIRE_")}


def _known(service: str) -> set[str]:
    return {f"TICKWIRE_{name.upper()}" for name in SETTINGS[service].model_fields}


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in SETTINGS:
        unknown = _env_of(compose["services"][service]["environment"]) - _known(service)
        assert not unknown, f"{service}: {sorted(unknown)} are not settings"


def test_kubernetes_sets_only_real_settings() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "k8s" / "config.yaml").read_text())
    shared = set(config["data"])
    for service in SETTINGS:
        for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / f"{service}.yaml").read_text()):
            if doc and doc["kind"] in {"Deployment", "StatefulSet"}:
                (container,) = doc["spec"]["template"]["spec"]["containers"]
                unknown = (_env_of(container.get("env", [])) | shared) - _known(service)
                assert not unknown, f"{service}: {sorted(unknown)} are not settings"
