"""Upsert the cardiostream folder, Prometheus datasource and dashboards into Grafana.

Uses grafana-client against Grafana's HTTP API (``/api/folders``,
``/api/datasources/uid/:uid``, ``POST /api/dashboards/db``). Every object has
a fixed uid, so a second push finds what the first one made: the folder and
the datasource are written only when they differ from what we want, and the
dashboards are posted with ``folderUid`` and ``overwrite: true``. Running it
twice leaves Grafana in the same state as running it once.

Compose deployments do not need this: Grafana loads the same JSON files through
``dashboards/provisioning/``. ``cardiostream dashboards push`` is for a Grafana
that already runs elsewhere (URL and service-account token from
``Settings().grafana``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from cardiostream.settings import GrafanaSettings
from dashboards.catalog import DEFINITIONS_DIR, load_dashboards

FOLDER_TITLE = "cardiostream"
DATASOURCE_NAME = "cardiostream-prometheus"
PUSH_MESSAGE = "cardiostream dashboards push"


class ProvisionError(RuntimeError):
    """A Grafana call failed; the message names the step, the object uid and the status."""


@dataclass(frozen=True, slots=True)
class PushReport:
    folder: str                                   # "created" | "updated" | "unchanged"
    datasource: str                               # "created" | "updated" | "unchanged"
    dashboards: dict[str, int] = field(default_factory=dict)   # uid -> version after the push


def datasource_spec(grafana: GrafanaSettings) -> dict:
    """The Prometheus datasource as Grafana's API wants it (fixed uid, proxy access)."""
    return {
        "uid": grafana.datasource_uid,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": grafana.prometheus_url,
        "isDefault": False,
        "jsonData": {"httpMethod": "POST", "timeInterval": "5s"},
    }


def connect(grafana: GrafanaSettings) -> GrafanaApi:
    """A client for ``grafana.url`` with the service-account token as a Bearer credential."""
    if grafana.token is None:
        raise ProvisionError("no Grafana token: set CARDIOSTREAM_GRAFANA__TOKEN "
                             "(a service-account token with the Editor role)")
    return GrafanaApi.from_url(grafana.url, credential=grafana.token.get_secret_value())


def push(grafana: GrafanaSettings, api: GrafanaApi | None = None,
         definitions_dir: Path = DEFINITIONS_DIR) -> PushReport:
    """Upsert folder, datasource and every dashboard under ``definitions_dir``."""
    dashboards = load_dashboards(definitions_dir)
    api = api or connect(grafana)
    folder = _upsert_folder(api, grafana.folder_uid)
    datasource = _upsert_datasource(api, datasource_spec(grafana))
    versions = {}
    for dashboard in dashboards.values():
        versions[dashboard["uid"]] = _upsert_dashboard(api, dashboard, grafana.folder_uid)
    return PushReport(folder, datasource, versions)


def _upsert_folder(api: GrafanaApi, uid: str) -> str:
    current = _get_or_none(lambda: api.folder.get_folder(uid), f"folder {uid}")
    if current is None:
        _call(lambda: api.folder.create_folder(FOLDER_TITLE, uid=uid), f"create folder {uid}")
        return "created"
    if current.get("title") == FOLDER_TITLE:
        return "unchanged"
    _call(lambda: api.folder.update_folder(uid, title=FOLDER_TITLE, overwrite=True),
          f"update folder {uid}")
    return "updated"


def _upsert_datasource(api: GrafanaApi, spec: dict) -> str:
    uid = spec["uid"]
    current = _get_or_none(lambda: api.datasource.get_datasource_by_uid(uid), f"datasource {uid}")
    if current is None:
        _call(lambda: api.datasource.create_datasource(spec), f"create datasource {uid}")
        return "created"
    if _is_subset(spec, current):
        return "unchanged"
    _call(lambda: api.datasource.update_datasource_by_uid(uid, spec), f"update datasource {uid}")
    return "updated"


def _upsert_dashboard(api: GrafanaApi, dashboard: dict, folder_uid: str) -> int:
    body = {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid,
            "overwrite": True, "message": PUSH_MESSAGE}
    reply = _call(lambda: api.dashboard.update_dashboard(body),
                  f"post dashboard {dashboard['uid']}")
    if not isinstance(reply, dict) or reply.get("uid") != dashboard["uid"]:
        raise ProvisionError(f"post dashboard {dashboard['uid']}: unexpected reply {reply!r}")
    return int(reply.get("version", 0))


def _is_subset(want: object, have: object) -> bool:
    """True when every key/value of ``want`` is present (recursively) in ``have``."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and _is_subset(v, have[k]) for k, v in want.items())
    return want == have


def _get_or_none(fetch, what: str) -> dict | None:
    try:
        return fetch()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise ProvisionError(f"get {what}: HTTP {exc.status_code}: {exc.message}") from exc
    except GrafanaException as exc:
        raise ProvisionError(f"get {what}: {exc.message}") from exc


def _call(request, what: str):
    try:
        return request()
    except GrafanaException as exc:
        raise ProvisionError(f"{what}: HTTP {exc.status_code}: {exc.message}") from exc
