"""The strict config: every problem at once, with its path; secrets never shown."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netmgr.cli import cli
from netmgr.config import load_settings, redacted_dict
from netmgr.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "netmgr.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings, path = load_settings(None, environ={})
    assert path is None or not str(path).startswith(str(tmp_path))
    assert settings.api.port == 8470
    assert settings.daemon.timezone == "Asia/Ho_Chi_Minh"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_every_problem_reported_with_its_path(tmp_path):
    p = write(tmp_path, '[snmp]\nintervall = 30\ntimeout = "fast"\n[daemon]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    problems = ei.value.problems
    assert len(problems) == 3
    assert any(x.startswith("snmp.intervall: unknown key") for x in problems)
    assert any(x.startswith("snmp.timeout: ") for x in problems)
    assert any(x.startswith("daemon.timezone: unknown time zone 'Mars/Olympus'") for x in problems)
    for line in str(ei.value).splitlines():
        assert line.startswith(f"{p}: ")


def test_unknown_section_is_an_error(tmp_path):
    p = write(tmp_path, "[snpm]\ninterval = 30\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert ei.value.problems == [
        "snpm: unknown key; remove it or check its spelling (see netmgr.example.toml)"
    ]


def test_toml_syntax_error_names_the_file(tmp_path):
    p = write(tmp_path, "[snmp\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert str(ei.value).startswith(f"{p}: not valid TOML")


def test_env_overrides_win_and_are_parsed(tmp_path):
    p = write(tmp_path, "[snmp]\nretries = 2\n")
    env = {"NETMGR_SNMP__RETRIES": "4", "NETMGR_API__HOST": "0.0.0.0", "NETMGR_MQTT__TLS": "true"}
    s, _ = load_settings(p, environ=env)
    assert s.snmp.retries == 4
    assert s.api.host == "0.0.0.0"
    assert s.mqtt.tls is True


def test_bad_env_value_names_the_variable(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={"NETMGR_SNMP__RETRIES": "99"})
    assert ei.value.problems[0].startswith("snmp.retries: ")
    assert ei.value.problems[0].endswith("(from NETMGR_SNMP__RETRIES)")


def test_postgres_url_gets_async_driver(tmp_path):
    p = write(tmp_path, '[database]\nurl = "postgresql://u@127.0.0.1:5432/db"\n')
    s, _ = load_settings(p, environ={})
    assert s.database_url == "postgresql+asyncpg://u@127.0.0.1:5432/db"


def test_mqtt_cert_without_key_refused(tmp_path):
    p = write(tmp_path, '[mqtt]\ncert_file = "/etc/c.pem"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert "cert_file and key_file go together" in ei.value.problems[0]


SECRETS = {
    "snmp": {"default_community": "c0mmunity-s3cret"},
    "mqtt": {"password": "mqtt-s3cret"},
    "influxdb": {"token": "influx-s3cret"},
    "grafana": {"token": "grafana-s3cret"},
}


def secret_toml():
    return "".join(
        f"[{sec}]\n" + "".join(f'{k} = "{v}"\n' for k, v in kv.items()) for sec, kv in SECRETS.items()
    )


def test_secrets_redacted_everywhere(tmp_path):
    p = write(tmp_path, secret_toml())
    s, _ = load_settings(p, environ={})
    shown = json.dumps(redacted_dict(s)) + repr(s) + str(s)
    for kv in SECRETS.values():
        for v in kv.values():
            assert v not in shown
    assert s.mqtt.password.get_secret_value() == "mqtt-s3cret"


def test_cli_check_exit_codes_and_show_redacts(tmp_path):
    runner = CliRunner()
    good = write(tmp_path, secret_toml())
    r = runner.invoke(cli, ["--config", str(good), "config", "check"], env={})
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--config", str(good), "config", "show"], env={})
    assert r.exit_code == 0
    assert "mqtt-s3cret" not in r.output and "**********" in r.output
    r = runner.invoke(cli, ["--config", str(good), "config", "show", "--json"], env={})
    assert json.loads(r.output)["influxdb"]["token"] == "**********"


def test_main_exits_2_naming_both_mistakes(tmp_path, capsys):
    from netmgr.cli import main

    bad = write(tmp_path, '[api]\nport = 70000\n[mqtt]\nqos = 1\n')
    with pytest.raises(SystemExit) as ei:
        main(["--config", str(bad), "config", "check"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}: api.port: " in err
    assert f"{bad}: mqtt.qos: unknown key" in err


def test_example_config_is_valid_and_complete():
    from pathlib import Path

    from netmgr.config import Settings

    example = Path(__file__).resolve().parents[2] / "netmgr.example.toml"
    s, _ = load_settings(example, environ={})
    assert s == Settings(), "netmgr.example.toml must show the defaults"
    text = example.read_text()
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in text
        for key in field.annotation.model_fields:
            assert f"\n{key} = " in text or f"# {key} = " in text, f"{section}.{key} missing from the example"


def test_unknown_env_section_names_the_variable(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={"NETMGR_SNPM__TIMEOUT": "3"})
    assert ei.value.problems[0].startswith("snpm: unknown key")
    assert ei.value.problems[0].endswith("(from NETMGR_SNPM__TIMEOUT)")


def test_influxdb_api_v1_accepted(tmp_path):
    p = write(tmp_path, '[influxdb]\napi = "v1"\nurl = "http://127.0.0.1:8086"\nbucket = "netmgr/autogen"\n'
                        'username = "noc"\ntoken = "influx1-s3cret"\n')
    s, _ = load_settings(p, environ={})
    assert (s.influxdb.api, s.influxdb.bucket, s.influxdb.username) == ("v1", "netmgr/autogen", "noc")
    shown = redacted_dict(s)["influxdb"]
    assert shown["api"] == "v1" and shown["username"] == "noc" and shown["token"] == "**********"
    # Debian's influxdb 1.6 without auth: neither user nor password; from the environment too.
    s, _ = load_settings(write(tmp_path, ""), environ={"NETMGR_INFLUXDB__API": "v1"})
    assert s.influxdb.api == "v1" and s.influxdb.username == ""
    assert load_settings(write(tmp_path, ""), environ={})[0].influxdb.api == "v2"


def test_influxdb_bad_api_refused(tmp_path):
    p = write(tmp_path, '[influxdb]\napi = "v3"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert len(ei.value.problems) == 1
    assert ei.value.problems[0].startswith("influxdb.api: ")
    assert "'v2' or 'v1'" in ei.value.problems[0]


def test_influxdb_username_with_v2_refused(tmp_path):
    p = write(tmp_path, '[influxdb]\nusername = "noc"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert ei.value.problems == [
        'influxdb.username: username is for api = "v1" (InfluxDB 1.x /write) only; with api = "v2" remove it '
        'and put "user:password" in token (InfluxDB 1.8), or set api = "v1"'
    ]
    with pytest.raises(ConfigError) as ei:
        load_settings(write(tmp_path, '[influxdb]\napi = "v2"\n'), environ={"NETMGR_INFLUXDB__USERNAME": "noc"})
    assert ei.value.problems[0].startswith("influxdb.username: username is for api")
    assert ei.value.problems[0].endswith("(from NETMGR_INFLUXDB__USERNAME)")


def test_influxdb_v1_password_needs_a_user_and_bucket_a_database(tmp_path):
    p = write(tmp_path, '[influxdb]\napi = "v1"\nbucket = "/autogen"\ntoken = "influx1-s3cret"\n'
                        'username = "a:b"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    problems = ei.value.problems
    assert len(problems) == 2
    assert problems[0].startswith('influxdb.bucket: with api = "v1" bucket is the database')
    assert problems[1].startswith("influxdb.username: an InfluxDB user name cannot contain ':'")
    p = write(tmp_path, '[influxdb]\napi = "v1"\ntoken = "influx1-s3cret"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert ei.value.problems[0].startswith('influxdb.token: with api = "v1" token is the password of username')
    assert "influx1-s3cret" not in str(ei.value)


def test_config_show_masks_passwords_in_urls(tmp_path):
    """Issue 12, item 7: the userinfo of every URL is masked, in the table and in JSON."""
    p = write(tmp_path, '[database]\nurl = "postgresql://netmgr:Pg-Pa55word@db.example:5432/netmgr"\n'
                        '[influxdb]\nurl = "http://writer:Influx-Pa55@influx.example:8086"\n'
                        '[grafana]\nurl = "https://admin:Graf-Pa55@grafana.example"\n')
    runner = CliRunner()
    for args in (["config", "show"], ["config", "show", "--json"]):
        r = runner.invoke(cli, ["--config", str(p), *args], env={})
        assert r.exit_code == 0, r.output
        for secret in ("Pg-Pa55word", "Influx-Pa55", "Graf-Pa55"):
            assert secret not in r.output
        assert "postgresql://netmgr:**********@db.example:5432/netmgr" in r.output
        assert "https://admin:**********@grafana.example" in r.output
    s, _ = load_settings(p, environ={})
    assert s.database.url.endswith("Pg-Pa55word@db.example:5432/netmgr")  # the daemon still has it
