"""`cardiostream dashboards push` against a recording stand-in for Grafana's HTTP API.

Grafana itself cannot be installed on this machine (no Debian package, no
network beyond the package registries), so these tests run the real command,
as a subprocess, against a small local HTTP server that keeps state and checks
each request against Grafana's documented HTTP API:

* Folder API: ``GET /api/folders/:uid`` (404 when absent), ``POST /api/folders``
  ``{uid, title}``, ``PUT /api/folders/:uid`` (``title`` with ``version`` or
  ``overwrite``).
* Data source API: ``GET /api/datasources/uid/:uid``, ``POST /api/datasources``
  (``name``, ``type``, ``access`` required; 409 on a duplicate name),
  ``PUT /api/datasources/uid/:uid``.
* Dashboard API: ``POST /api/dashboards/db`` ``{dashboard, folderUid, overwrite,
  message}``; 412 when the uid exists and ``overwrite`` is false, 400 when the
  folder does not exist; replies ``{id, uid, url, status, version, slug}``.
* Authentication: ``Authorization: Bearer <service-account token>``, else 401.

Running the push twice proves it idempotent: same folder, datasource and
dashboards afterwards, no second create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cardiostream.settings import Settings
from dashboards.catalog import load_dashboards

TOKEN = "glsa_test_token"


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict | None]] = []
        self.folders: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}   # uid -> {"dashboard", "folderUid", "version"}
        self.errors: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: object) -> None:
        return None   # keep pytest output clean; requests are recorded instead

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        body = None
        if method in ("POST", "PUT"):
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                return self._reply(415, {"message": "Content-Type must be application/json"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((method, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "Unauthorized"})
        route = _ROUTES.get((method, _shape(self.path)))
        if route is None:
            self.server.errors.append(f"undocumented call {method} {self.path}")
            return self._reply(404, {"message": "Not found"})
        status, reply = route(self.server, self.path.rsplit("/", 1)[-1], body)
        self._reply(status, reply)

    def _reply(self, status: int, doc: dict) -> None:
        raw = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _shape(path: str) -> str:
    parts = path.split("?")[0].split("/")
    if path.startswith("/api/folders/"):
        return "/api/folders/:uid"
    if path.startswith("/api/datasources/uid/"):
        return "/api/datasources/uid/:uid"
    return "/".join(parts)


def _get_folder(g: FakeGrafana, uid: str, _body: None) -> tuple[int, dict]:
    folder = g.folders.get(uid)
    return (200, folder) if folder else (404, {"message": "folder not found"})


def _create_folder(g: FakeGrafana, _uid: str, body: dict) -> tuple[int, dict]:
    if not body.get("title"):
        return 400, {"message": "folder title cannot be empty"}
    if body.get("uid") in g.folders:
        return 409, {"message": "a folder with the same uid already exists"}
    g.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
    return 200, g.folders[body["uid"]]


def _update_folder(g: FakeGrafana, uid: str, body: dict) -> tuple[int, dict]:
    if uid not in g.folders:
        return 404, {"message": "folder not found"}
    if not body.get("title") or not (body.get("overwrite") or body.get("version")):
        return 400, {"message": "title and version (or overwrite) required"}
    g.folders[uid] = {**g.folders[uid], "title": body["title"],
                      "version": g.folders[uid]["version"] + 1}
    return 200, g.folders[uid]


def _get_datasource(g: FakeGrafana, uid: str, _body: None) -> tuple[int, dict]:
    ds = g.datasources.get(uid)
    return (200, {**ds, "id": 1, "orgId": 1}) if ds else (404, {"message": "Data source not found"})


def _create_datasource(g: FakeGrafana, _uid: str, body: dict) -> tuple[int, dict]:
    if not all(body.get(k) for k in ("name", "type", "access")):
        return 400, {"message": "name, type and access are required"}
    if any(ds["name"] == body["name"] for ds in g.datasources.values()):
        return 409, {"message": "data source with the same name already exists"}
    g.datasources[body["uid"]] = dict(body)
    return 200, {"datasource": body, "id": 1, "message": "Datasource added", "name": body["name"]}


def _update_datasource(g: FakeGrafana, uid: str, body: dict) -> tuple[int, dict]:
    if uid not in g.datasources:
        return 404, {"message": "Data source not found"}
    g.datasources[uid] = dict(body)
    return 200, {"datasource": body, "id": 1, "message": "Datasource updated"}


def _post_dashboard(g: FakeGrafana, _uid: str, body: dict) -> tuple[int, dict]:
    dash = body.get("dashboard") or {}
    if not dash.get("title") or not dash.get("uid"):
        return 400, {"message": "Dashboard title cannot be empty"}
    if body.get("folderUid") not in g.folders:
        return 400, {"message": "folder not found"}
    old = g.dashboards.get(dash["uid"])
    if old and not body.get("overwrite"):
        return 412, {"message": "A dashboard with the same uid already exists",
                     "status": "version-mismatch"}
    version = old["version"] + 1 if old else 1
    g.dashboards[dash["uid"]] = {"dashboard": dash, "folderUid": body["folderUid"],
                                 "version": version}
    return 200, {"id": 1, "uid": dash["uid"], "url": f"/d/{dash['uid']}/x", "status": "success",
                 "version": version, "slug": "x"}


_ROUTES = {
    ("GET", "/api/folders/:uid"): _get_folder,
    ("POST", "/api/folders"): _create_folder,
    ("PUT", "/api/folders/:uid"): _update_folder,
    ("GET", "/api/datasources/uid/:uid"): _get_datasource,
    ("POST", "/api/datasources"): _create_datasource,
    ("PUT", "/api/datasources/uid/:uid"): _update_datasource,
    ("POST", "/api/dashboards/db"): _post_dashboard,
}


@pytest.fixture
def grafana() -> FakeGrafana:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    assert not server.errors, server.errors


def _push(grafana: FakeGrafana, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOSTREAM_GRAFANA__")}
    env["CARDIOSTREAM_GRAFANA__URL"] = grafana.url
    if token is not None:
        env["CARDIOSTREAM_GRAFANA__TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "cardiostream.cli", "dashboards", "push"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_push_twice_is_idempotent(grafana: FakeGrafana) -> None:
    grafana_settings = Settings().grafana
    first = _push(grafana)
    assert first.returncode == 0, first.stderr
    state_after_first = (dict(grafana.folders), dict(grafana.datasources),
                         {u: d["dashboard"] for u, d in grafana.dashboards.items()})
    calls_first = len(grafana.requests)
    second = _push(grafana)
    assert second.returncode == 0, second.stderr

    assert "folder cardiostream: created" in first.stdout
    assert f"datasource {grafana_settings.datasource_uid}: created" in first.stdout
    assert "folder cardiostream: unchanged" in second.stdout
    assert f"datasource {grafana_settings.datasource_uid}: unchanged" in second.stdout
    state_after_second = (grafana.folders, grafana.datasources,
                          {u: d["dashboard"] for u, d in grafana.dashboards.items()})
    assert state_after_second == state_after_first
    assert set(grafana.folders) == {grafana_settings.folder_uid}

    second_calls = [(m, p) for m, p, _ in grafana.requests[calls_first:]]
    creates = [c for c in second_calls if c in (("POST", "/api/folders"),
                                                ("POST", "/api/datasources"))]
    assert not creates, f"second push created again: {creates}"


def test_dashboards_posted_with_folder_uid_and_overwrite(grafana: FakeGrafana) -> None:
    assert _push(grafana).returncode == 0
    posts = [body for m, p, body in grafana.requests if (m, p) == ("POST", "/api/dashboards/db")]
    expected = {d["uid"] for d in load_dashboards().values()}
    assert {b["dashboard"]["uid"] for b in posts} == expected
    for body in posts:
        assert body["folderUid"] == Settings().grafana.folder_uid
        assert body["overwrite"] is True
        assert body["dashboard"]["id"] is None
    assert all(d["folderUid"] == "cardiostream" for d in grafana.dashboards.values())


def test_datasource_has_fixed_uid_and_is_repaired_on_drift(grafana: FakeGrafana) -> None:
    uid = Settings().grafana.datasource_uid
    assert _push(grafana).returncode == 0
    assert grafana.datasources[uid]["type"] == "prometheus"
    assert grafana.datasources[uid]["url"] == Settings().grafana.prometheus_url
    grafana.datasources[uid]["url"] = "http://elsewhere:9090"     # someone edited it by hand
    again = _push(grafana)
    assert f"datasource {uid}: updated" in again.stdout
    assert ("PUT", f"/api/datasources/uid/{uid}") in [(m, p) for m, p, _ in grafana.requests]
    assert grafana.datasources[uid]["url"] == Settings().grafana.prometheus_url


def test_wrong_token_fails_with_the_status(grafana: FakeGrafana) -> None:
    result = _push(grafana, token="wrong")
    assert result.returncode == 1
    assert "401" in result.stderr
    assert not grafana.dashboards


def test_missing_token_is_refused_before_any_request(grafana: FakeGrafana) -> None:
    result = _push(grafana, token=None)
    assert result.returncode == 1
    assert "CARDIOSTREAM_GRAFANA__TOKEN" in result.stderr
    assert grafana.requests == []
