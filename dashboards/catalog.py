"""The dashboard definitions as data: load them, list their queries, name their metrics.

The JSON files under ``dashboards/definitions/`` are the source of truth (file
provisioning mounts them as they are; ``provision.py`` pushes them through the
HTTP API). Tests use :func:`metric_names` to prove that every series a panel
asks for is defined in ``cardiostream.metrics`` and exists in a live Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"

# PromQL words that look like metric names but are functions, operators or modifiers.
_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "inf", "nan", "atan2",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w(])(?!\s*\()")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)"
                           r"\s*(?:\{[^}]*\})?\s*,[^)]*\)")


class DashboardError(ValueError):
    """A dashboard file that is not valid JSON or lacks a required field (names the file)."""


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str


def load_dashboards(directory: Path = DEFINITIONS_DIR) -> dict[str, dict]:
    """Every ``*.json`` dashboard in ``directory``, keyed by file stem."""
    dashboards: dict[str, dict] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DashboardError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not doc.get("uid") or not doc.get("title"):
            raise DashboardError(f"{path}: a dashboard needs a fixed 'uid' and a 'title'")
        dashboards[path.stem] = doc
    if not dashboards:
        raise DashboardError(f"no dashboard JSON under {directory}")
    return dashboards


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict) -> Iterator[PanelQuery]:
    """Every PromQL expression of every panel target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield PanelQuery(dashboard["uid"], panel.get("title", ""), target.get("refId", ""),
                             target.get("expr", ""))


def variable_queries(dashboard: dict) -> Iterator[str]:
    """The query strings of templating variables (``label_values(metric, label)``)."""
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        yield query.get("query", "") if isinstance(query, dict) else str(query or "")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords removed).

    A pragmatic lexer for the queries we write, not a full PromQL parser: it
    drops strings, label matchers, ranges and grouping clauses, then keeps the
    identifiers that are not followed by ``(`` and are not PromQL words.
    """
    found = set(_LABEL_VALUES.findall(expr))
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _LABEL_VALUES.sub(" ", text)
    for name in _IDENT.findall(text):
        if name.lower() not in _PROMQL_WORDS:
            found.add(name)
    return found


def all_metric_names(dashboards: dict[str, dict]) -> set[str]:
    """Every metric name used by any panel or variable of ``dashboards``."""
    names: set[str] = set()
    for dashboard in dashboards.values():
        for query in panel_queries(dashboard):
            names |= metric_names(query.expr)
        for query in variable_queries(dashboard):
            names |= metric_names(query)
    return names
