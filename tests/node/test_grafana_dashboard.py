"""The Grafana dashboard (docker/grafana) only asks for metrics a node exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from learnchain.node.telemetry.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards"


def exported_names() -> set[str]:
    metrics = Metrics("c")
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples}
        names.add(family.name)
        names |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")}
    return names


def test_every_metric_in_the_dashboard_is_exported() -> None:
    dashboard = json.loads((DASHBOARD / "learnchain.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in expressions for name in re.findall(r"learnchain_[a-z0-9_]+", e)}
    assert used, "the dashboard shows learnchain metrics"
    assert used <= exported_names(), used - exported_names()
