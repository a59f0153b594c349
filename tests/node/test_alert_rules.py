"""The monitoring that ships with the compose testnet names only series a node exports: every
metric in docker/prometheus-alerts.yml and in the Grafana dashboard exists in
``learnchain.node.telemetry.metrics``, so renaming a metric cannot silently blind an operator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from learnchain.node.telemetry.metrics import Metrics

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SERIES = re.compile(r"\blearnchain_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def get_exported_series() -> set[str]:
    """Every series name a node's registry can export, children or not."""
    names: set[str] = set()
    for family in Metrics("chain").registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def read_alert_rules() -> list[dict[str, Any]]:
    """The rules of docker/prometheus-alerts.yml."""
    document = yaml.safe_load((DOCKER / "prometheus-alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_names_only_exported_series_and_says_what_is_wrong() -> None:
    exported = get_exported_series()
    rules = read_alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("Learnchain")
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        unknown = set(SERIES.findall(rule["expr"])) - exported
        assert not unknown, f"{rule['alert']} names series no node exports: {sorted(unknown)}"


def test_prometheus_loads_the_alert_rules_the_compose_file_mounts() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert f"./prometheus-alerts.yml:{config['rule_files'][0]}:ro" in mounts


def test_every_dashboard_panel_names_only_exported_series() -> None:
    exported = get_exported_series()
    for path in (DOCKER / "grafana" / "dashboards").glob("*.json"):
        named = set(SERIES.findall(json.dumps(json.loads(path.read_text()))))
        assert named, path
        assert named <= exported, f"{path.name}: {sorted(named - exported)}"


def test_a_renamed_metric_would_be_caught() -> None:
    assert "learnchain_consensus_height" in get_exported_series()
    assert "learnchain_consensus_heights" not in get_exported_series()
