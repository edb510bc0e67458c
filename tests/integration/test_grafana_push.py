"""`netmgr grafana push` (the real CLI, in a subprocess) against the Grafana stand-in.

No Grafana server is installable here: tests/grafana_standin.py enforces Grafana's
documented HTTP API contract for the endpoints push uses (auth, uids, versions,
overwrite, validation). See docs/grafana.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.grafana_standin import GrafanaStandin

from netmgr.errors import GrafanaError
from netmgr.grafana import alerts
from netmgr.grafana.provisioning import all_dashboards
from netmgr.grafana.push import Grafana, _push_rule

INFLUX_URL = "http://influxdb.noc.internal:8086"
INFLUX_TOKEN = "influx-token-that-must-stay-secret"
DASHBOARDS = all_dashboards()


@pytest.fixture
def grafana():
    g = GrafanaStandin().start()
    yield g
    g.stop()


@pytest.fixture
def env(tmp_path):
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[influxdb]\nurl = "{INFLUX_URL}"\nbucket = "telemetry"\ntoken = "{INFLUX_TOKEN}"\n',
                   encoding="utf-8")
    e = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    e.update(NETMGR_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg"), COLUMNS="200")
    return e


def push(grafana: GrafanaStandin, env: dict[str, str], *args: str, token: str | None = None, code: int = 0,
         as_json: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "netmgr", "grafana", "push", "--url", grafana.url,
            "--token", token or grafana.token, *args, *(["--json"] if as_json else [])]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == code, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    for secret in (grafana.token, INFLUX_TOKEN, token or ""):
        if secret:
            assert secret not in r.stdout and secret not in r.stderr, "a token was printed"
    return r


def actions(r: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], str]:
    return {(o["kind"], o["uid"]): o["action"] for o in json.loads(r.stdout)}


EVERYTHING = {("folder", "netmgr"), ("datasource", "netmgr-influxdb"), ("rule-group", "netmgr"),
              *(("dashboard", d["uid"]) for d in DASHBOARDS.values()),
              *(("alert-rule", r["uid"]) for r in alerts.api_rules())}


def test_push_creates_everything_then_reports_it_unchanged(grafana, env):
    first = actions(push(grafana, env))
    assert set(first) == EVERYTHING
    assert {k: v for k, v in first.items() if k[0] != "rule-group"} == \
        {k: "created" for k in EVERYTHING if k[0] != "rule-group"}
    assert first[("rule-group", "netmgr")] == "unchanged"  # a new group evaluates every 60 s already

    assert grafana.folders["netmgr"]["title"] == "netmgr"
    ds = grafana.datasources["netmgr-influxdb"]
    assert (ds["type"], ds["url"], ds["jsonData"]["dbName"], ds["jsonData"]["version"]) == \
        ("influxdb", INFLUX_URL, "telemetry", "InfluxQL")
    assert grafana.secrets["netmgr-influxdb"] == {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"}
    for model in DASHBOARDS.values():
        stored = grafana.dashboards[model["uid"]]
        assert stored["folderUid"] == "netmgr"
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == model
    assert set(grafana.rules) == {r["uid"] for r in alerts.api_rules()}
    assert all(r["folderUID"] == "netmgr" and r["ruleGroup"] == "netmgr" for r in grafana.rules.values())

    writes = len(grafana.writes())
    second = push(grafana, env, as_json=False)
    assert set(actions(push(grafana, env)).values()) == {"unchanged"}
    assert len(grafana.writes()) == writes, "an unchanged push wrote something"
    assert "0 created, 0 updated, 12 unchanged" in second.stdout
    assert "unchanged dashboard  netmgr-overview  (Province overview)" in second.stdout


def test_a_dashboard_changed_in_grafana_is_updated_and_the_rest_left_alone(grafana, env):
    push(grafana, env)
    grafana.save_dashboard_as_user("netmgr-ap", title="AP detail (edited)")
    version = grafana.dashboards["netmgr-ap"]["dashboard"]["version"]
    result = actions(push(grafana, env))
    assert result.pop(("dashboard", "netmgr-ap")) == "updated"
    assert set(result.values()) == {"unchanged"}
    stored = grafana.dashboards["netmgr-ap"]["dashboard"]
    assert stored["title"] == "AP detail" and stored["version"] == version + 1


def test_a_save_in_grafana_during_the_push_is_retried_once_then_reported(grafana, env):
    push(grafana, env)
    grafana.save_dashboard_as_user("netmgr-health", description="edited")
    grafana.bump_on_get["netmgr-health"] = 1  # someone saves right after push reads it
    assert actions(push(grafana, env))[("dashboard", "netmgr-health")] == "updated"
    assert ("POST", "/api/dashboards/db", 412) in grafana.requests

    grafana.save_dashboard_as_user("netmgr-health", description="edited again")
    grafana.bump_on_get["netmgr-health"] = 5  # and keeps saving
    r = push(grafana, env, code=1)
    assert f"dashboard netmgr-health (netmgr health): Grafana at {grafana.url} refused it " \
           "(412 version-mismatch: The dashboard has been changed by someone else)" in r.stderr


def test_a_wrong_token_is_refused_with_a_clear_message(grafana, env):
    wrong = "glsa_wrong_token_5f2d0c"
    r = push(grafana, env, token=wrong, code=1)
    assert r.stderr.startswith(f"netmgr: error: folder netmgr (netmgr): Grafana at {grafana.url} refused the "
                               "token (401 Unauthorized: invalid API key)")
    assert not grafana.folders and not grafana.datasources and not grafana.dashboards
    debug = subprocess.run([sys.executable, "-m", "netmgr", "--debug", "grafana", "push", "--url", grafana.url,
                            "--token", wrong], env=env, capture_output=True, text=True, timeout=60)
    assert debug.returncode == 1 and "refused the token" in debug.stderr
    assert "Traceback" in debug.stderr and wrong not in debug.stderr, "--debug shows the traceback, not the token"


def test_the_token_from_the_config_file_is_used_and_never_shown(grafana, env, tmp_path):
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(cfg.read_text() + f'[grafana]\nurl = "{grafana.url}"\ntoken = "{grafana.token}"\n')
    r = subprocess.run([sys.executable, "-m", "netmgr", "--debug", "grafana", "push"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert grafana.token not in r.stdout + r.stderr and INFLUX_TOKEN not in r.stdout + r.stderr
    assert "created   folder" in r.stdout
    shown = subprocess.run([sys.executable, "-m", "netmgr", "config", "show"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert grafana.token not in shown.stdout + shown.stderr


def test_missing_url_token_or_influxdb_are_usage_errors(grafana, env, tmp_path):
    (tmp_path / "netmgr.toml").write_text("", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "netmgr", "grafana", "push", "--token", "t"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr.strip()) == (2, "netmgr: error: no Grafana URL: pass --url or set [grafana] url")
    r = subprocess.run([sys.executable, "-m", "netmgr", "grafana", "push", "--url", grafana.url, "--token", "t"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no InfluxDB URL for the Grafana data source" in r.stderr
    r = subprocess.run([sys.executable, "-m", "netmgr", "grafana", "push", "--url", grafana.url,
                        "--influx-url", INFLUX_URL], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no Grafana token: pass --token or set [grafana] token" in r.stderr


def test_a_folder_title_taken_by_another_uid_is_a_clear_conflict(grafana, env):
    push(grafana, env)  # folder "netmgr" exists
    r = push(grafana, env, "--folder", "NOC", code=0)
    assert actions(r)[("folder", "noc")] == "created"
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"noc"}, "dashboards moved to the new folder"
    grafana.folders["other"] = {**grafana.folders.pop("noc"), "uid": "other"}  # someone re-created it
    r = push(grafana, env, "--folder", "NOC", code=1)
    assert f"folder noc (NOC): Grafana at {grafana.url} already has a folder titled 'NOC' with another uid" \
        in r.stderr


def test_the_data_source_is_updated_when_its_url_changes(grafana, env):
    push(grafana, env)
    result = actions(push(grafana, env, "--influx-url", "http://127.0.0.1:8086", "--database", "other"))
    assert result[("datasource", "netmgr-influxdb")] == "updated"
    ds = grafana.datasources["netmgr-influxdb"]
    assert (ds["url"], ds["jsonData"]["dbName"], ds["version"]) == ("http://127.0.0.1:8086", "other", 2)


def test_the_rule_group_interval_is_set(env):
    g = GrafanaStandin(default_group_interval=300).start()
    try:
        assert actions(push(g, env))[("rule-group", "netmgr")] == "updated"
        assert g.groups[("netmgr", "netmgr")] == 60 and len(g.rules) == len(alerts.api_rules())
        assert actions(push(g, env))[("rule-group", "netmgr")] == "unchanged"
    finally:
        g.stop()


def test_a_rule_grafana_rejects_is_reported_with_its_reason(grafana, env):
    push(grafana, env)
    rule = alerts.api_rules()[0]
    rule["data"][2]["model"]["expression"] = "Z"  # the threshold reads a query that does not exist
    with Grafana(grafana.url, grafana.token) as client, pytest.raises(GrafanaError) as e:
        _push_rule(client, rule)
    assert str(e.value).startswith(f"alert rule netmgr-ap-down (AP down): Grafana at {grafana.url} rejected "
                                   "the rule (400: invalid alert rule: data C: expression 'Z' is not a refId")


def test_an_unreachable_grafana_names_its_url(env):
    from support.services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    r = subprocess.run([sys.executable, "-m", "netmgr", "grafana", "push", "--url", url, "--token", "t0ken-x"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"folder netmgr (netmgr): cannot reach Grafana at {url}: ConnectError" in r.stderr
    assert "t0ken-x" not in r.stderr
