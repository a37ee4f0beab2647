"""The bridge's optional deployment parts: the compose profile and the kustomize
component are valid, probed and scraped, and set only settings the bridge has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tickwire.bridge.settings import BridgeSettings

ROOT = Path(__file__).resolve().parents[3]
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "rabbitmq-bridge"
KNOWN = {f"TICKWIRE_{name.upper()}" for name in BridgeSettings.model_fields}


def _documents() -> list[dict[str, Any]]:
    component = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    return [
        doc
        for name in component["resources"]
        for doc in yaml.safe_load_all((COMPONENT / name).read_text())
        if doc
    ]


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_component_manifest_is_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _bridge_container() -> dict[str, Any]:
    (bridge,) = [d for d in _documents() if d["kind"] == "Deployment"]
    pod = bridge["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    return dict(container)


def test_bridge_is_probed_and_sets_only_real_settings() -> None:
    container = _bridge_container()
    assert container["command"] == ["tickwire-bridge"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    names = {e["name"] for e in container["env"]}
    assert names - KNOWN == set()
    bindings = next(e["value"] for e in container["env"] if e["name"] == "TICKWIRE_BRIDGE_BINDINGS")
    settings = BridgeSettings.model_validate({"bridge_bindings": yaml.safe_load(bindings)})
    assert settings.bridge_bindings[0].queue == "tickwire.bridge"


def test_compose_profile_runs_the_bridge_with_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    bridge, rabbitmq = compose["services"]["bridge"], compose["services"]["rabbitmq"]
    assert bridge["profiles"] == rabbitmq["profiles"] == ["rabbitmq"]
    assert bridge["command"] == ["tickwire-bridge"]
    assert set(bridge["depends_on"]) >= {"kafka", "rabbitmq"}
    names = {k for k in bridge["environment"] if k.startswith("TICKWIRE_")}
    assert names - KNOWN == set()
