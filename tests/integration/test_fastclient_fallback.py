"""Issue 12: the fast inbound MQTT path only runs on the aiomqtt / paho-mqtt versions it was tested
on; elsewhere the service falls back to the stock aiomqtt client, says so once, and still gets
every message."""

from __future__ import annotations

import logging
import time

import aiomqtt
import paho.mqtt.client as paho_client
import pytest
from support.radio_stack import running_radio
from support.waiting import until

from netmgr.radio import fastclient
from netmgr.radio import protocol as p
from netmgr.radio.mqtt import Broker

NODE, ZONE = "n-1", "binh-phuoc/dong-xoai/tan-phu"


def report_aiomqtt(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    real = fastclient.installed_version
    monkeypatch.setattr(fastclient, "installed_version", lambda dist: version if dist == "aiomqtt" else real(dist))


def test_the_installed_versions_take_the_fast_path(monkeypatch):
    monkeypatch.delenv(fastclient.FASTPATH_ENV, raising=False)
    assert fastclient.fast_path_ok() == (True, "")
    assert fastclient.inbound_client_class(logging.getLogger("test")) is fastclient.FastClient


def test_an_untested_aiomqtt_version_is_refused(monkeypatch):
    report_aiomqtt(monkeypatch, "2.9.0")
    ok, reason = fastclient.fast_path_ok()
    assert not ok
    assert "aiomqtt 2.9.0" in reason
    assert f"paho-mqtt {fastclient.installed_version('paho-mqtt')}" in reason


def test_a_missing_private_attribute_is_refused(monkeypatch):
    monkeypatch.delattr(paho_client.Client, "_handle_on_message")
    ok, reason = fastclient.fast_path_ok()
    assert not ok
    assert "_handle_on_message" in reason
    assert f"aiomqtt {fastclient.installed_version('aiomqtt')}" in reason


def test_the_environment_forces_the_stock_client(monkeypatch, caplog):
    monkeypatch.setenv(fastclient.FASTPATH_ENV, "0")
    with caplog.at_level(logging.WARNING, logger="test"):
        assert fastclient.inbound_client_class(logging.getLogger("test")) is fastclient.StockClient
    assert [r.getMessage() for r in caplog.records if "NETMGR_MQTT_FASTPATH=0" in r.getMessage()]


async def test_the_service_runs_on_the_stock_client(mosquitto, monkeypatch, caplog):
    monkeypatch.delenv(fastclient.FASTPATH_ENV, raising=False)
    report_aiomqtt(monkeypatch, "2.9.0")
    caplog.set_level(logging.WARNING, logger="netmgr.radio")
    made: list[fastclient.StockClient] = []
    stock_init = fastclient.StockClient.__init__

    def record(self, *args, **kwargs):
        stock_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(fastclient.StockClient, "__init__", record)
    async with running_radio(Broker(port=mosquitto.port, protocol="3.1.1"), {NODE: ZONE}, "fb-test") as svc:
        session = int(time.time() * 1000)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="fb-test-node") as c:
            await c.publish(p.node_topic(NODE, "status"),
                            p.encode({"state": "online", "session": session, "ts": round(time.time(), 3)}),
                            qos=1)
            await until(lambda: svc.registry.is_online(NODE), 10, "n-1 online from its status")
            await c.publish(p.node_topic(NODE, "telemetry"),
                            p.encode({"ts": round(time.time(), 3), "session": session, "volume": 7}), qos=0)
            await until(lambda: svc.stats["telemetry"] == 1, 10, "the telemetry delivered")
        node = svc.registry.nodes[NODE]
        assert node.telemetry is not None and node.telemetry.volume == 7
        assert sum(svc.bad.counts.values()) == 0, svc.bad.counts
        fallback = [r for r in caplog.records if "falling back to the stock aiomqtt client" in r.getMessage()]
        assert len(fallback) == 1, [r.getMessage() for r in caplog.records]
        assert fallback[0].levelno == logging.WARNING
        assert "aiomqtt 2.9.0" in fallback[0].getMessage()
        assert "paho-mqtt " in fallback[0].getMessage()
        assert len(made) == 1  # the inbound client was the stock one

