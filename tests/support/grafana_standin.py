"""A stand-in for the part of Grafana's HTTP API that ``netmgr grafana push`` uses.

No Grafana server is installable here (Debian has no package; the network
reaches only package registries), so push is tested against this small server,
which enforces Grafana's documented contract for these endpoints (Grafana 9.1+
docs: developers/http_api/{folder,data_source,dashboard,alerting_provisioning}):

- every /api request needs ``Authorization: Bearer <token>``: 401 otherwise;
- folders by uid: GET/POST/PUT /api/folders[/:uid]; POST 400 without a title,
  409 when the uid or the title is taken; PUT 404 unknown, 412 ``version-mismatch``
  unless ``overwrite`` or the version read;
- data sources by uid: GET/PUT /api/datasources/uid/:uid, POST /api/datasources;
  400 without name or type, 409 when the name (or uid) is taken or a PUT carries
  an older version; secrets are write-only (``secureJsonFields`` tells which are set);
- dashboards: GET /api/dashboards/uid/:uid; POST /api/dashboards/db: 400 without
  a dashboard or a title or with an unknown folderUid, 412 ``name-exists`` for
  an existing uid without id or a taken title in the folder, 412
  ``version-mismatch`` when ``overwrite`` is false and the version is not the
  stored one; each save bumps the version;
- alert rules by uid: GET/POST/PUT /api/v1/provisioning/alert-rules[/:uid]: 400 with
  the reasons when the rule breaks the ProvisionedAlertRule schema
  (tools/grafana-schema/alerting) or its condition/expressions name no query,
  or its folder does not exist; 409 for a taken uid; 404 for an unknown one;
- rule groups: GET/PUT /api/v1/provisioning/folder/:folder/rule-groups/:group:
  the interval (seconds, a multiple of 10), 404 for a group without rules; a
  PUT replaces the group's rules.

Tests drive it in-process: ``GrafanaStandin(token).start()``, then read its
state (``folders``, ``datasources``, ``dashboards``, ``rules``, ``groups``) and
its request log, and can play a user saving a dashboard concurrently
(``bump_on_get``).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .grafana_schemas import api_rule_validator, rule_problems
from .services import free_port
from .waiting import wait_for


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class GrafanaStandin:
    """The stand-in server (uvicorn in a thread) and its state."""

    def __init__(self, token: str = "glsa_standin_0123456789abcdef", default_group_interval: int = 60) -> None:
        self.token = token
        self.default_group_interval = default_group_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard", "folderUid"}
        self.rules: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.bump_on_get: dict[str, int] = {}  # dashboard uid -> times to play a concurrent save after a GET
        self._ids = itertools.count(1)
        self._validator = api_rule_validator()
        self._server: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="grafana-standin", daemon=True)
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self._error = e

    async def _serve(self) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        await self._server.serve()

    def start(self) -> GrafanaStandin:
        """Serve on 127.0.0.1:<free port> until :meth:`stop`."""
        self._thread.start()
        wait_for(lambda: self._error or (self._server is not None and self._server.started), 30,
                 f"the Grafana stand-in on {self.url}")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving (within 10 s)."""
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the Grafana stand-in did not stop within 10 s"

    # ------------------------------------------------------------------ helpers for tests

    def writes(self) -> list[tuple[str, str, int]]:
        """Every request that was not a GET."""
        return [r for r in self.requests if r[0] != "GET"]

    def save_dashboard_as_user(self, uid: str, **changes: Any) -> None:
        """Play a person saving the dashboard in the UI: apply ``changes``, bump the version."""
        entry = self.dashboards[uid]
        entry["dashboard"].update(changes)
        entry["dashboard"]["version"] += 1

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> Starlette:
        routes = [
            Route("/api/folders/{uid}", self.get_folder, methods=["GET"]),
            Route("/api/folders", self.post_folder, methods=["POST"]),
            Route("/api/folders/{uid}", self.put_folder, methods=["PUT"]),
            Route("/api/datasources/uid/{uid}", self.get_datasource, methods=["GET"]),
            Route("/api/datasources", self.post_datasource, methods=["POST"]),
            Route("/api/datasources/uid/{uid}", self.put_datasource, methods=["PUT"]),
            Route("/api/dashboards/uid/{uid}", self.get_dashboard, methods=["GET"]),
            Route("/api/dashboards/db", self.post_dashboard, methods=["POST"]),
            Route("/api/v1/provisioning/alert-rules/{uid}", self.get_rule, methods=["GET"]),
            Route("/api/v1/provisioning/alert-rules", self.post_rule, methods=["POST"]),
            Route("/api/v1/provisioning/alert-rules/{uid}", self.put_rule, methods=["PUT"]),
            Route("/api/v1/provisioning/folder/{folder}/rule-groups/{group}", self.get_group, methods=["GET"]),
            Route("/api/v1/provisioning/folder/{folder}/rule-groups/{group}", self.put_group, methods=["PUT"]),
        ]
        return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._auth_and_log)])

    async def _auth_and_log(self, request: Request, call_next: Callable[[Request], Any]) -> Response:
        header = request.headers.get("authorization", "")
        if request.url.path.startswith("/api/") and header != f"Bearer {self.token}":
            msg = "invalid API key" if header.startswith("Bearer ") else "Unauthorized"
            response: Response = JSONResponse({"message": msg}, status_code=401)
        else:
            response = await call_next(request)
        self.requests.append((request.method, request.url.path, response.status_code))
        return response

    @staticmethod
    async def _body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _err(code: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"message": message, **extra}, status_code=code)

    # ------------------------------------------------------------------ folders

    async def get_folder(self, request: Request) -> Response:
        folder = self.folders.get(request.path_params["uid"])
        return JSONResponse(folder) if folder else self._err(404, "folder not found")

    async def post_folder(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return self._err(400, "bad request data")
        title = (body.get("title") or "").strip()
        if not title:
            return self._err(400, "folder title cannot be empty")
        uid = body.get("uid") or f"f{next(self._ids)}"
        if uid in self.folders:
            return self._err(409, "a folder with the same uid already exists")
        if any(f["title"] == title for f in self.folders.values()):
            return self._err(409, "a folder or dashboard in the general folder with the same name already exists")
        folder = {"id": next(self._ids), "uid": uid, "title": title, "version": 1,
                  "url": f"/dashboards/f/{uid}/{_slug(title)}"}
        self.folders[uid] = folder
        return JSONResponse(folder)

    async def put_folder(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        folder = self.folders.get(uid)
        if folder is None:
            return self._err(404, "folder not found")
        body = await self._body(request)
        if body is None or not (body.get("title") or "").strip():
            return self._err(400, "folder title cannot be empty")
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return self._err(412, "The folder has been changed by someone else", status="version-mismatch")
        if any(f["title"] == body["title"] and u != uid for u, f in self.folders.items()):
            return self._err(409, "a folder with the same name already exists")
        folder.update(title=body["title"], version=folder["version"] + 1)
        return JSONResponse(folder)

    # ------------------------------------------------------------------ data sources

    def _ds_view(self, uid: str) -> dict[str, Any]:
        view = copy.deepcopy(self.datasources[uid])
        view["secureJsonFields"] = {k: True for k in self.secrets.get(uid, {})}
        return view

    async def get_datasource(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        if uid not in self.datasources:
            return self._err(404, "Data source not found")
        return JSONResponse(self._ds_view(uid))

    async def post_datasource(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None or not body.get("name") or not body.get("type"):
            return self._err(400, "Required name and type")
        uid = body.get("uid") or f"ds{next(self._ids)}"
        if uid in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
            return self._err(409, "data source with the same name already exists")
        ds = {"id": next(self._ids), "uid": uid, "orgId": 1, "name": body["name"], "type": body["type"],
              "access": body.get("access", "proxy"), "url": body.get("url", ""), "user": body.get("user", ""),
              "database": body.get("database", ""), "basicAuth": bool(body.get("basicAuth")),
              "isDefault": bool(body.get("isDefault")), "jsonData": body.get("jsonData") or {},
              "readOnly": False, "version": 1}
        self.datasources[uid] = ds
        self.secrets[uid] = dict(body.get("secureJsonData") or {})
        return JSONResponse({"datasource": self._ds_view(uid), "id": ds["id"], "message": "Datasource added",
                             "name": ds["name"]})

    async def put_datasource(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        ds = self.datasources.get(uid)
        if ds is None:
            return self._err(404, "Data source not found")
        body = await self._body(request)
        if body is None or not body.get("name") or not body.get("type"):
            return self._err(400, "Required name and type")
        if body.get("version") is not None and body["version"] < ds["version"]:
            return self._err(409, "Datasource has already been updated by someone else. "
                                  "Please reload and try again")
        if any(d["name"] == body["name"] and u != uid for u, d in self.datasources.items()):
            return self._err(409, "data source with the same name already exists")
        for k in ("name", "type", "access", "url", "user", "database", "basicAuth", "isDefault", "jsonData"):
            if k in body:
                ds[k] = body[k]
        ds["version"] += 1
        self.secrets.setdefault(uid, {}).update(body.get("secureJsonData") or {})
        return JSONResponse({"datasource": self._ds_view(uid), "id": ds["id"],
                             "message": "Datasource updated", "name": ds["name"]})

    # ------------------------------------------------------------------ dashboards

    async def get_dashboard(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        entry = self.dashboards.get(uid)
        if entry is None:
            return self._err(404, "Dashboard not found")
        response = JSONResponse({"dashboard": entry["dashboard"], "meta": {
            "folderUid": entry["folderUid"], "version": entry["dashboard"]["version"],
            "slug": _slug(entry["dashboard"]["title"]), "url": f"/d/{uid}/{_slug(entry['dashboard']['title'])}",
            "provisioned": False}})
        if self.bump_on_get.get(uid):
            self.bump_on_get[uid] -= 1
            self.save_dashboard_as_user(uid, description="edited by someone in the UI")
        return response

    async def post_dashboard(self, request: Request) -> Response:
        body = await self._body(request)
        dash = body.get("dashboard") if body else None
        if not isinstance(dash, dict):
            return self._err(400, "bad request data")
        title = (dash.get("title") or "").strip()
        if not title:
            return self._err(400, "Dashboard title cannot be empty", status="empty-name")
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return self._err(400, "folder not found")
        overwrite = bool(body.get("overwrite"))
        uid = dash.get("uid") or f"d{next(self._ids)}"
        existing = self.dashboards.get(uid)
        if existing is None and dash.get("id") is not None:
            return self._err(404, "Dashboard not found")
        if existing is not None and not overwrite:
            if dash.get("id") is None:
                return self._err(412, "A dashboard with the same uid already exists", status="name-exists")
            if dash.get("version") != existing["dashboard"]["version"]:
                return self._err(412, "The dashboard has been changed by someone else", status="version-mismatch")
        if not overwrite and any(e["dashboard"]["title"] == title and e["folderUid"] == folder_uid and u != uid
                                 for u, e in self.dashboards.items()):
            return self._err(412, "A dashboard with the same name in the folder already exists",
                             status="name-exists")
        stored = copy.deepcopy(dash)
        stored["uid"] = uid
        stored["id"] = existing["dashboard"]["id"] if existing else next(self._ids)
        stored["version"] = existing["dashboard"]["version"] + 1 if existing else 1
        self.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid}
        slug = _slug(title)
        return JSONResponse({"id": stored["id"], "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                             "version": stored["version"], "slug": slug})

    # ------------------------------------------------------------------ alert rules

    def _check_rule(self, rule: dict[str, Any]) -> str | None:
        problems = rule_problems(rule, self._validator)
        if isinstance(rule.get("folderUID"), str) and rule["folderUID"] not in self.folders:
            problems.append(f"folder {rule['folderUID']!r} does not exist")
        return "; ".join(problems) if problems else None

    def _store_rule(self, rule: dict[str, Any], rule_id: int) -> dict[str, Any]:
        stored = {**copy.deepcopy(rule), "id": rule_id, "provenance": "api",
                  "updated": dt.datetime.now(dt.UTC).isoformat(), "isPaused": bool(rule.get("isPaused"))}
        self.rules[stored["uid"]] = stored
        self.groups.setdefault((stored["folderUID"], stored["ruleGroup"]), self.default_group_interval)
        return stored

    async def get_rule(self, request: Request) -> Response:
        rule = self.rules.get(request.path_params["uid"])
        return JSONResponse(rule) if rule else Response(status_code=404)

    async def post_rule(self, request: Request) -> Response:
        rule = await self._body(request)
        if rule is None:
            return self._err(400, "bad request data")
        if problem := self._check_rule(rule):
            return self._err(400, f"invalid alert rule: {problem}")
        rule.setdefault("uid", f"r{next(self._ids)}")
        if rule["uid"] in self.rules:
            return self._err(409, "a rule with this uid already exists")
        return JSONResponse(self._store_rule(rule, next(self._ids)), status_code=201)

    async def put_rule(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        if uid not in self.rules:
            return self._err(404, "rule not found")
        rule = await self._body(request)
        if rule is None:
            return self._err(400, "bad request data")
        rule["uid"] = uid
        if problem := self._check_rule(rule):
            return self._err(400, f"invalid alert rule: {problem}")
        return JSONResponse(self._store_rule(rule, self.rules[uid]["id"]))

    # ------------------------------------------------------------------ rule groups

    def _group(self, folder: str, group: str) -> dict[str, Any] | None:
        rules = [r for r in self.rules.values() if r["folderUID"] == folder and r["ruleGroup"] == group]
        if not rules:
            return None
        return {"title": group, "folderUid": folder, "interval": self.groups[(folder, group)],
                "rules": sorted(rules, key=lambda r: r["uid"])}

    async def get_group(self, request: Request) -> Response:
        group = self._group(request.path_params["folder"], request.path_params["group"])
        return JSONResponse(group) if group else self._err(404, "rule group not found")

    async def put_group(self, request: Request) -> Response:
        folder, name = request.path_params["folder"], request.path_params["group"]
        if folder not in self.folders:
            return self._err(400, f"folder {folder!r} does not exist")
        body = await self._body(request)
        interval = body.get("interval") if body else None
        if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0 or interval % 10:
            return self._err(400, f"invalid interval {interval!r}: a positive multiple of 10 seconds")
        rules = body.get("rules") or []
        for r in rules:
            if r.get("folderUID") != folder or r.get("ruleGroup") != name:
                return self._err(400, f"rule {r.get('uid')!r} does not belong to {folder}/{name}")
            if problem := self._check_rule(r):
                return self._err(400, f"invalid alert rule {r.get('uid')!r}: {problem}")
        keep = {r["uid"] for r in rules}
        for uid in [u for u, r in self.rules.items()
                    if r["folderUID"] == folder and r["ruleGroup"] == name and u not in keep]:
            del self.rules[uid]
        for r in rules:
            self._store_rule(r, self.rules[r["uid"]]["id"] if r["uid"] in self.rules else next(self._ids))
        self.groups[(folder, name)] = interval
        return JSONResponse(self._group(folder, name) or {"title": name, "folderUid": folder,
                                                          "interval": interval, "rules": []})
