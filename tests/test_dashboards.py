"""Dashboard JSON: fixed uids, one datasource uid, a query on every panel, known metrics only."""

from __future__ import annotations

import pytest

from cardiostream.metrics import exposed_names
from cardiostream.settings import Settings
from dashboards.catalog import (
    all_metric_names,
    load_dashboards,
    metric_names,
    panel_queries,
    panels,
    variable_queries,
)

EXPECTED_UIDS = {"ward_overview": "cardiostream-ward-overview",
                 "pipeline_health": "cardiostream-pipeline-health"}
# Series Prometheus itself synthesises for every scrape target.
PROMETHEUS_BUILTINS = {"up"}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return load_dashboards()


def test_fixed_uids(dashboards: dict[str, dict]) -> None:
    assert {stem: d["uid"] for stem, d in dashboards.items()} == EXPECTED_UIDS
    for dash in dashboards.values():
        assert dash.get("id") is None, "a stored id would make the API refuse the upsert"


def test_every_datasource_is_the_fixed_uid(dashboards: dict[str, dict]) -> None:
    uid = Settings().grafana.datasource_uid
    for dash in dashboards.values():
        for panel in panels(dash):
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, (panel["title"], target["refId"])
        for var in dash["templating"]["list"]:
            assert var["datasource"]["uid"] == uid, var["name"]


def test_every_panel_has_a_query(dashboards: dict[str, dict]) -> None:
    for dash in dashboards.values():
        ids = [p["id"] for p in panels(dash)]
        assert len(ids) == len(set(ids)), f"{dash['uid']}: duplicate panel ids"
        for panel in panels(dash):
            assert panel["targets"], f"{dash['uid']} / {panel['title']}: no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{panel['title']} {target['refId']}: empty expr"
                assert metric_names(target["expr"]), f"{panel['title']}: selects no metric"


def test_queries_use_only_catalogued_metrics(dashboards: dict[str, dict]) -> None:
    unknown = all_metric_names(dashboards) - exposed_names() - PROMETHEUS_BUILTINS
    assert not unknown, f"dashboards query metrics not defined in cardiostream.metrics: {unknown}"


@pytest.mark.parametrize(("stem", "words"), [
    ("ward_overview", ["patients", "heart rate", "rhythm", "signal quality", "active alarms",
                       "alarm timeline"]),
    ("pipeline_health", ["per second", "lag per partition", "p50 / p95 / p99", "batch size",
                         "dead letters", "heartbeat"]),
])
def test_required_panels_present(dashboards: dict[str, dict], stem: str,
                                 words: list[str]) -> None:
    titles = " | ".join(p["title"].lower() for p in panels(dashboards[stem]))
    missing = [w for w in words if w not in titles]
    assert not missing, f"{stem} lacks panels for {missing}: {titles}"


def test_latency_panel_has_three_quantiles(dashboards: dict[str, dict]) -> None:
    exprs = [q.expr for q in panel_queries(dashboards["pipeline_health"])
             if "e2e_latency" in q.expr]
    assert sorted(e.split(",")[0] for e in exprs) == [
        "histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"]


def test_variable_queries_name_metrics(dashboards: dict[str, dict]) -> None:
    queries = list(variable_queries(dashboards["ward_overview"]))
    assert [metric_names(q) for q in queries] == [{"cardiostream_patient_heart_rate_bpm"}]


@pytest.mark.parametrize(("expr", "names"), [
    ("up", {"up"}),
    ('sum by (le, stage) (rate(a_bucket{x="rate(b)"}[5m]))', {"a_bucket"}),
    ("time() - max by (component, instance) (hb_seconds)", {"hb_seconds"}),
    ("sum(rate(s_sum[1m])) / sum(rate(s_count[1m]))", {"s_sum", "s_count"}),
    ("count by (rhythm) (r == 1) or on (device_id) vector(0)", {"r"}),
    ("label_values(m_total{job=\"j\"}, device_id)", {"m_total"}),
    ("histogram_quantile(0.99, sum without (instance) (rate(h_bucket[$__rate_interval])))",
     {"h_bucket"}),
])
def test_metric_names_oracle(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


CORE_PANEL_TYPES = {"stat", "timeseries", "bargauge", "gauge", "table", "piechart",
                    "state-timeline", "status-history", "text", "row"}


def test_panels_are_core_types_on_a_non_overlapping_24_column_grid(
        dashboards: dict[str, dict]) -> None:
    for dash in dashboards.values():
        cells: dict[tuple[int, int], str] = {}
        for panel in panels(dash):
            assert panel["type"] in CORE_PANEL_TYPES, f"{panel['title']}: {panel['type']}"
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, panel["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{panel['title']} overlaps {other}"
