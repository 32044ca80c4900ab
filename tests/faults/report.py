"""Figures of the reliability suite: JSON written by the tests, Markdown tables rendered from it.

The tests merge their rows into ``docs/bench/reliability.json`` (one key per
section: ``faults``, ``flood``, ``overload``); ``python -m tests.faults.report``
renders them into ``docs/reliability.md`` between ``<!-- table: NAME -->`` and
``<!-- /table: NAME -->`` markers, so the tables hold only what a run measured.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from cardiostream.settings import REPO_ROOT

JSON_PATH = REPO_ROOT / "docs" / "bench" / "reliability.json"
DOC_PATH = REPO_ROOT / "docs" / "reliability.md"


def record(section: str, key: str, row: dict, path: Path = JSON_PATH) -> None:
    """Merge ``row`` under ``section.key`` with the time, host and command that made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.setdefault(section, {})[key] = {
        **row, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": f"{platform.node()} ({platform.processor() or platform.machine()})",
        "command": " ".join(["python", "-m", "pytest", *sys.argv[1:]])
        if "pytest" in sys.argv[0] else " ".join(sys.argv)}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


FAULT_COLUMNS = (("fault", "fault"), ("alarms_expected", "expected"),
                 ("alarms_received", "received"), ("alarms_duplicated", "duplicated"),
                 ("alarms_lost", "lost"), ("alarms_extra", "extra"),
                 ("beats_missing_after_warmup", "beats missing after warm-up"),
                 ("beats_missing_in_warmup", "beats missing in warm-up"),
                 ("fault_duration_s", "fault (s)"), ("recovery_s", "recovery (s)"),
                 ("crashes", "crashes"))


def _table(rows: list[dict], columns) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join("-" if r.get(k) is None else str(r.get(k)) for k, _ in columns)
            + " |" for r in rows]
    return "\n".join([head, rule, *body])


def render_faults(doc: dict) -> str:
    rows = list(doc.get("faults", {}).values())
    order = ("baseline", "control: no fault", "kill -9 processor", "kill -9 inference",
             "kafka down 20 s", "redis down 20 s", "rebalance: 2 processors, kill one")
    rows.sort(key=lambda r: order.index(r["fault"]) if r["fault"] in order else 99)
    lines = [_table(rows, FAULT_COLUMNS), ""]
    for r in rows:
        if r.get("lost") or r.get("extra") or r.get("notes"):
            lines.append(f"- {r['fault']}: lost {r.get('lost')}, extra {r.get('extra')}, "
                         f"notes {r.get('notes')}")
    cmds = sorted({r["command"] for r in rows if r.get("command")})
    lines += ["", "Measured " + ", ".join(sorted({r["measured_at"] for r in rows})[-1:])
              + " with: " + "; ".join(f"`{c}`" for c in cmds)]
    return "\n".join(lines)


def render_kv(doc: dict, section: str) -> str:
    rows = doc.get(section, {})
    lines = []
    for key, row in rows.items():
        items = {k: v for k, v in row.items()
                 if k not in ("command", "host", "measured_at") and not k.startswith("timeline")}
        lines.append(f"**{key}** ({row.get('measured_at')}, {row.get('host')}; "
                     f"`{row.get('command')}`)\n")
        lines += [f"- {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}"
                  for k, v in items.items()]
        lines.append("")
    return "\n".join(lines)


def render(doc_path: Path = DOC_PATH, json_path: Path = JSON_PATH) -> None:
    doc = json.loads(json_path.read_text())
    text = doc_path.read_text()
    tables = {"faults": render_faults(doc), "flood": render_kv(doc, "flood"),
              "overload": render_kv(doc, "overload"), "security": render_kv(doc, "security")}
    for name, table in tables.items():
        start, end = f"<!-- table: {name} -->", f"<!-- /table: {name} -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    doc_path.write_text(text)


if __name__ == "__main__":
    render()
    print(f"rendered {JSON_PATH.relative_to(REPO_ROOT)} into {DOC_PATH.relative_to(REPO_ROOT)}")
