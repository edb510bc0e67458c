"""Push the folder, the InfluxDB data source, the dashboards and the alert rules to Grafana.

Through Grafana's HTTP API (``Authorization: Bearer <service account token>``),
idempotent by uid: each object is read first and written only when it differs,
so a second push reports everything ``unchanged``. Endpoints (Grafana 9.1+):

===========  =========================================================================
folder       GET /api/folders/:uid, POST /api/folders, PUT /api/folders/:uid
data source  GET /api/datasources/uid/:uid, POST /api/datasources,
             PUT /api/datasources/uid/:uid
dashboards   GET /api/dashboards/uid/:uid, POST /api/dashboards/db (with the version read,
             overwrite false: a 412 version-mismatch means someone saved in between;
             it is read again and retried once)
alert rules  GET/POST/PUT /api/v1/provisioning/alert-rules[/:uid];
             GET/PUT /api/v1/provisioning/folder/:folder/rule-groups/:group (interval)
===========  =========================================================================

The token is only ever put in the Authorization header: never printed, logged
or part of an error message.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from netmgr.errors import GrafanaError
from netmgr.grafana import alerts
from netmgr.grafana.common import FOLDER_TITLE, RULE_GROUP
from netmgr.grafana.provisioning import DatasourceOptions, all_dashboards, datasource_model

log = logging.getLogger(__name__)

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True)
class Outcome:
    """What push did to one object."""

    kind: str  # folder, datasource, dashboard, alert-rule, rule-group
    uid: str
    title: str
    action: str  # created, updated, unchanged

    def as_dict(self) -> dict[str, str]:
        """For ``--json``."""
        return {"kind": self.kind, "uid": self.uid, "title": self.title, "action": self.action}


def folder_uid_for(title: str) -> str:
    """A stable folder uid from its title: ``netmgr`` -> ``netmgr``, ``NOC Wi-Fi`` -> ``noc-wi-fi``."""
    uid = re.sub(r"[^a-z0-9_-]+", "-", title.lower()).strip("-")[:40]
    if not uid:
        raise GrafanaError(f"folder title {title!r} gives no usable uid; use letters or digits")
    return uid


class Grafana:
    """A thin client of the endpoints push uses; every error names the URL and the object."""

    def __init__(self, url: str, token: str, *, timeout: float = 15.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise GrafanaError(f"Grafana URL {url!r} must start with http:// or https://")
        if not token:
            raise GrafanaError("no Grafana token: pass --token or set [grafana] token "
                               "(a service account token with the Editor role, or Admin for the data source)")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._client = httpx.Client(base_url=self.url + "/", timeout=timeout, transport=transport,
                                    headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Grafana:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, what: str, *, json: Any = None,
                ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        """Send one request; return (status, body) for ``ok`` and ``allow`` statuses, raise otherwise."""
        try:
            r = self._client.request(method, path.lstrip("/"), json=json)
        except httpx.HTTPError as e:
            raise GrafanaError(f"{what}: cannot reach Grafana at {self.url}: "
                               f"{type(e).__name__}: {e}") from None
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = r.text
        if r.status_code in ok or r.status_code in allow:
            return r.status_code, body
        message = _message(body) or r.reason_phrase
        if r.status_code == 401:
            raise GrafanaError(f"{what}: Grafana at {self.url} refused the token (401 Unauthorized: "
                               f"{message}); check --token or [grafana] token")
        if r.status_code == 403:
            raise GrafanaError(f"{what}: the token may not do this at {self.url} (403 Forbidden: {message}); "
                               "give the service account the Editor role (Admin for data sources)")
        raise GrafanaError(f"{what}: {method} {self.url}/{path.lstrip('/')} failed with "
                           f"{r.status_code}: {message}")


def _message(body: Any) -> str:
    """Grafana's error message from a response body (JSON ``message``, else the text, short)."""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")
    return str(body or "")[:200]


# --------------------------------------------------------------------------- comparing


def _subset_differs(want: Any, have: Any) -> bool:
    """True when something in ``want`` is missing or different in ``have`` (extra keys ignored)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return True
        return any(_subset_differs(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return True
        return any(_subset_differs(w, h) for w, h in zip(want, have, strict=True))
    if isinstance(want, float) or isinstance(have, float):
        return not (isinstance(have, int | float) and float(want) == float(have))
    return want != have


_DASHBOARD_VOLATILE = ("id", "version")


def _dashboard_differs(want: dict[str, Any], have: dict[str, Any]) -> bool:
    w = {k: v for k, v in want.items() if k not in _DASHBOARD_VOLATILE}
    h = {k: v for k, v in have.items() if k not in _DASHBOARD_VOLATILE}
    return w != h


_RULE_KEYS = ("title", "condition", "data", "noDataState", "execErrState", "for", "annotations", "labels",
              "folderUID", "ruleGroup", "isPaused")


def _duration_s(text: str) -> int:
    total = 0
    for n, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text or "0s"):
        total += int(n) * {"ms": 0, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
    return total


def _rule_differs(want: dict[str, Any], have: dict[str, Any]) -> bool:
    for k in _RULE_KEYS:
        if k == "for":
            if _duration_s(str(want.get(k))) != _duration_s(str(have.get(k))):
                return True
        elif _subset_differs(want.get(k) or None, have.get(k) or None):
            return True
    return False


# --------------------------------------------------------------------------- push


@dataclass(frozen=True)
class PushOptions:
    """What to push where."""

    datasource: DatasourceOptions
    folder_title: str = FOLDER_TITLE
    message: str = "netmgr grafana push"


def push(client: Grafana, opts: PushOptions,
         on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Create or update everything; returns (and reports through ``on_outcome``) one outcome per object."""
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        log.info("grafana push: %s %s %s (%s)", o.action, o.kind, o.uid, o.title)
        if on_outcome:
            on_outcome(o)

    folder_uid = folder_uid_for(opts.folder_title)
    done(_push_folder(client, folder_uid, opts.folder_title))
    done(_push_datasource(client, datasource_model(opts.datasource)))
    for model in all_dashboards().values():
        done(_push_dashboard(client, model, folder_uid, opts.message))
    for rule in alerts.api_rules(folder_uid):
        done(_push_rule(client, rule))
    done(_push_rule_group(client, folder_uid))
    return outcomes


def _push_folder(client: Grafana, uid: str, title: str) -> Outcome:
    what = f"folder {uid} ({title})"
    status, have = client.request("GET", f"api/folders/{uid}", what, allow=(404,))
    if status == 404:
        status, body = client.request("POST", "api/folders", what, json={"uid": uid, "title": title},
                                      allow=(409, 412))
        if status in (409, 412):
            msg = _message(body)
            raise GrafanaError(f"{what}: Grafana at {client.url} already has a folder titled {title!r} with "
                               f"another uid ({status}: {msg}); rename or delete it, or push with "
                               "--folder OTHER")
        return Outcome("folder", uid, title, CREATED)
    if have.get("title") == title:
        return Outcome("folder", uid, title, UNCHANGED)
    status, body = client.request("PUT", f"api/folders/{uid}", what,
                                  json={"title": title, "version": have.get("version"), "overwrite": False},
                                  allow=(412,))
    if status == 412:
        raise GrafanaError(f"{what}: changed in Grafana at {client.url} while pushing "
                           "(412 version-mismatch); push again")
    return Outcome("folder", uid, title, UPDATED)


def _push_datasource(client: Grafana, model: dict[str, Any]) -> Outcome:
    uid, name = model["uid"], model["name"]
    what = f"data source {uid} ({name})"
    status, have = client.request("GET", f"api/datasources/uid/{uid}", what, allow=(404,))
    if status == 404:
        status, body = client.request("POST", "api/datasources", what, json=model, allow=(409,))
        if status == 409:
            msg = _message(body)
            raise GrafanaError(f"{what}: Grafana at {client.url} already has a data source named {name!r} "
                               f"with another uid (409: {msg}); rename or delete it")
        return Outcome("datasource", uid, name, CREATED)
    plain = {k: v for k, v in model.items() if k != "secureJsonData"}
    stored_secrets = have.get("secureJsonFields") or {}
    token_missing = "secureJsonData" in model and not stored_secrets.get("httpHeaderValue1")
    if not _subset_differs(plain, have) and not token_missing:
        return Outcome("datasource", uid, name, UNCHANGED)
    body = {**model, "id": have.get("id"), "version": have.get("version")}
    client.request("PUT", f"api/datasources/uid/{uid}", what, json=body)
    return Outcome("datasource", uid, name, UPDATED)


def _push_dashboard(client: Grafana, model: dict[str, Any], folder_uid: str, message: str) -> Outcome:
    uid, title = model["uid"], model["title"]
    what = f"dashboard {uid} ({title})"
    for attempt in (1, 2):
        status, have = client.request("GET", f"api/dashboards/uid/{uid}", what, allow=(404,))
        dash = copy.deepcopy(model)
        dash.pop("id", None)
        if status == 404:
            action = CREATED
        else:
            current = have.get("dashboard") or {}
            in_folder = (have.get("meta") or {}).get("folderUid") == folder_uid
            if in_folder and not _dashboard_differs(model, current):
                return Outcome("dashboard", uid, title, UNCHANGED)
            action = UPDATED
            dash["id"] = current.get("id")
            dash["version"] = current.get("version")
        status, body = client.request("POST", "api/dashboards/db", what, allow=(412,), json={
            "dashboard": dash, "folderUid": folder_uid, "overwrite": False, "message": message})
        if status == 200:
            return Outcome("dashboard", uid, title, action)
        reason = body.get("status") if isinstance(body, dict) else None
        if reason == "version-mismatch" and attempt == 1:
            log.info("grafana push: %s changed in Grafana while pushing; reading it again", what)
            continue
        msg = _message(body)
        raise GrafanaError(f"{what}: Grafana at {client.url} refused it (412 {reason}: {msg})" +
                           ("; it keeps changing in Grafana: push again later" if reason == "version-mismatch"
                            else ""))
    raise AssertionError("unreachable")


def _push_rule(client: Grafana, rule: dict[str, Any]) -> Outcome:
    uid, title = rule["uid"], rule["title"]
    what = f"alert rule {uid} ({title})"
    status, have = client.request("GET", f"api/v1/provisioning/alert-rules/{uid}", what, allow=(404,))
    if status == 404:
        status, body = client.request("POST", "api/v1/provisioning/alert-rules", what, json=rule,
                                      ok=(200, 201), allow=(400,))
        action = CREATED
    elif not _rule_differs(rule, have):
        return Outcome("alert-rule", uid, title, UNCHANGED)
    else:
        status, body = client.request("PUT", f"api/v1/provisioning/alert-rules/{uid}", what, json=rule,
                                      allow=(400,))
        action = UPDATED
    if status == 400:
        msg = _message(body)
        raise GrafanaError(f"{what}: Grafana at {client.url} rejected the rule (400: {msg})")
    return Outcome("alert-rule", uid, title, action)


def _push_rule_group(client: Grafana, folder_uid: str) -> Outcome:
    what = f"rule group {RULE_GROUP} in folder {folder_uid}"
    path = f"api/v1/provisioning/folder/{folder_uid}/rule-groups/{RULE_GROUP}"
    _, group = client.request("GET", path, what)
    interval = alerts.group_interval_seconds()
    if group.get("interval") == interval:
        return Outcome("rule-group", RULE_GROUP, f"every {alerts.GROUP_INTERVAL}", UNCHANGED)
    # The PUT replaces the group's rules too: send back the ones it has, with our interval.
    client.request("PUT", path, what, json={**group, "interval": interval})
    return Outcome("rule-group", RULE_GROUP, f"every {alerts.GROUP_INTERVAL}", UPDATED)
