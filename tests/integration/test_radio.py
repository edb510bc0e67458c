"""The radio service and the speaker simulator against a real mosquitto with TLS, a password
file and the ACL file rendered by netmgr (netmgr.radio.acl)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from support.radio_stack import DAEMON_PASS, DAEMON_USER, running
from support.waiting import until

from netmgr.errors import MqttLinkError
from netmgr.radio import protocol as p
from netmgr.radio.acl import mosquitto_hash, new_password, render_acl, render_passwd
from netmgr.radio.mqtt import Broker
from netmgr.radio.service import RadioService
from netmgr.sim import mqttlite
from netmgr.sim.speakers import SimConfig, SpeakerSim

ZONES = ["binh-phuoc/dong-xoai/tan-phu", "binh-phuoc/dong-xoai/tien-thanh",
         "binh-phuoc/chon-thanh/minh-hung"]


def reason(puback: bytes) -> int:
    """The v5 PUBACK reason code (absent means 0, success)."""
    return puback[2] if len(puback) > 2 else 0


class Fleet:
    """A secured broker for ``n`` nodes: inventory, passwords, rendered passwd/ACL, TLS."""

    def __init__(self, n: int, tmp: Path, factory) -> None:
        self.inventory = {f"spk-{i:04d}": ZONES[i % len(ZONES)] for i in range(n)}
        self.passwords = {nid: new_password() for nid in self.inventory}
        (tmp / "passwd").write_text(render_passwd(DAEMON_USER, DAEMON_PASS, {
            nid: mosquitto_hash(pw) for nid, pw in self.passwords.items()}))
        (tmp / "acl").write_text(render_acl(DAEMON_USER, self.inventory))
        self.m = factory(tls=True, passwd_file=tmp / "passwd", acl_file=tmp / "acl")

    def broker(self, protocol: str = "5", **kw) -> Broker:
        return Broker(port=self.m.tls_port, tls=True, ca_file=self.m.ca_file, protocol=protocol, **kw)

    def daemon_broker(self, protocol: str = "5") -> Broker:
        return self.broker(protocol, username=DAEMON_USER, password=DAEMON_PASS)


@pytest.fixture(scope="module")
def fleet200(tmp_path_factory, mosquitto_factory) -> Fleet:
    return Fleet(200, tmp_path_factory.mktemp("fleet200"), mosquitto_factory)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_200_nodes_zone_play_tracked_to_done(fleet200: Fleet, protocol: str) -> None:
    svc = RadioService.standalone(fleet200.daemon_broker(protocol), fleet200.inventory,
                                  telemetry_interval=5, client_id=f"netmgr-{protocol}")
    async with running(svc), SpeakerSim(fleet200.broker(protocol), list(fleet200.inventory.items()),
                                        SimConfig(telemetry_interval=5, protocol=protocol),
                                        fleet200.passwords) as sim:
        await sim.wait_connected(timeout=60)
        assert sim.stats["connect_failures"] == 0, sim.last_error
        await until(lambda: svc.registry.counts()["online"] == 200, 20, "200 nodes online in the registry")
        # One publish on the province's topic reaches all 200, tracked to done.
        tc = await svc.issue("play", {"url": "http://127.0.0.1:8470/media/abc.mp3", "duration_s": 0.5},
                             zones=["binh-phuoc"])
        assert len(tc.deliveries) == 200
        tc = await svc.wait(tc.cmd.id, lambda t: t.complete, 30)
        assert tc.summary() == {"done": 200}, tc.summary()
        # One publish on the district topic reaches the nodes of its two communes, nobody else.
        tc = await svc.issue("play", {"url": "http://127.0.0.1:8470/media/abc.mp3", "duration_s": 1.0,
                                      "title": "Thông báo"}, zones=["binh-phuoc/dong-xoai"])
        expected = {n for n, z in fleet200.inventory.items() if z.startswith("binh-phuoc/dong-xoai/")}
        assert set(tc.deliveries) == expected
        tc = await svc.wait(tc.cmd.id, lambda t: t.complete, 30)
        assert tc.summary() == {"done": len(expected)}, tc.summary()
        for d in tc.deliveries.values():
            # every state reached, in order, with our timestamps; the node said it completed
            t = d.times
            assert t["sent"] <= t["accepted"] <= t["playing"] <= t["done"], d
            # the node played for the duration (its own clock: our receive times carry queueing delays)
            log = {status: ts for ts, cid, status in sim.nodes[d.node_id].log if cid == tc.cmd.id}
            assert log["done"] - log["playing"] >= 0.99, (d.node_id, log)
            assert d.data["outcome"] == "completed"
        others = [n for n in fleet200.inventory if n not in expected]
        assert all(tc.cmd.id not in {e[1] for e in sim.nodes[n].log} for n in others)
        assert svc.bad.counts == {}, svc.bad.counts


async def test_a_node_cannot_publish_or_subscribe_as_another(fleet200: Fleet) -> None:
    svc = RadioService.standalone(fleet200.daemon_broker(), fleet200.inventory,
                                  client_id="netmgr-acl")
    async with running(svc):
        got: list[tuple[str, bytes]] = []
        ids = sorted(fleet200.inventory)
        me, victim = ids[0], ids[1]
        b = fleet200.broker("5")
        c = await mqttlite.connect(b.host, b.port, me, lambda t, pl: got.append((t, pl)), v5=True,
                                   ssl_context=b.ssl_context(), username=me,
                                   password=fleet200.passwords[me])
        try:
            forged = p.encode({"ts": time.time(), "rssi_dbm": -40, "volume": 99})
            ack = await c.publish(p.node_topic(victim, "telemetry"), forged, qos=1)
            assert reason(ack) == 0x87, f"PUBACK reason {reason(ack):#x}: the broker must refuse (0x87 not authorized)"
            ack = await c.publish(p.node_topic(victim, "status"),
                                  p.encode({"state": "offline", "session": 2**62}), qos=1, retain=True)
            assert reason(ack) == 0x87
            # A marker on its own topic after the forgeries: once the daemon has it, it would
            # have had the forgeries too (one connection, in order).
            ack = await c.publish(p.node_topic(me, "telemetry"), p.encode({"ts": time.time(), "volume": 7}),
                                  qos=1)
            assert reason(ack) == 0
            await until(lambda: svc.registry.nodes[me].telemetry is not None, 10, "the marker telemetry")
            assert svc.registry.nodes[victim].telemetry is None
            assert svc.registry.nodes[victim].session < 2**62  # the forged status never arrived
            # Nor may it read another node's commands: mosquitto grants the SUBSCRIBE but never
            # delivers. A command to the victim, then one to itself: once its own arrives, the
            # victim's would have too.
            await c.subscribe([(p.node_topic(victim, "cmd"), 1), (p.node_topic(me, "cmd"), 1)])
            theirs = await svc.issue("ping", nodes=[victim])
            mine = await svc.issue("ping", nodes=[me])
            await until(lambda: any(mine.cmd.id.encode() in pl for _, pl in got), 10, "its own command")
            assert not any(theirs.cmd.id.encode() in pl for _, pl in got)
        finally:
            c.abort()
        # A wrong password is refused at CONNECT.
        with pytest.raises(MqttLinkError, match="bad user name or password"):
            await mqttlite.connect(b.host, b.port, victim, lambda t, pl: None, v5=True,
                                   ssl_context=b.ssl_context(), username=victim, password="guess")


async def test_late_will_does_not_mark_a_reconnected_node_offline(fleet200: Fleet) -> None:
    svc = RadioService.standalone(fleet200.daemon_broker(), fleet200.inventory,
                                  client_id="netmgr-will")
    async with running(svc):
        nid = sorted(fleet200.inventory)[5]
        async with SpeakerSim(fleet200.broker("3.1.1"), [(nid, fleet200.inventory[nid])], SimConfig(),
                              fleet200.passwords) as sim:
            await sim.wait_connected()
            node = sim.nodes[nid]
            await until(lambda: svc.registry.is_online(nid), 10, "the node online")
            session = node.session
            # The broker delivers the will of an older session after the new birth (as a
            # bridge or a will delay can): the daemon must ignore it, and the node must
            # restore its retained birth.
            b = fleet200.daemon_broker()
            c = await mqttlite.connect(b.host, b.port, "late-will", lambda t, pl: None,
                                       ssl_context=b.ssl_context(), username=DAEMON_USER, password=DAEMON_PASS)
            await c.publish(p.node_topic(nid, "status"), p.encode({"state": "offline", "session": session - 1}),
                            qos=1, retain=True)
            await until(lambda: svc.stats["stale_status"] >= 1, 10, "the late will to arrive")
            assert svc.registry.is_online(nid)
            await until(lambda: sim.stats["birth_repaired"] >= 1, 10, "the node to republish its birth")
            # A new subscriber (a restarted daemon) sees the node online from the retained status.
            seen: list[bytes] = []
            c2 = await mqttlite.connect(b.host, b.port, "late-reader", lambda t, pl: seen.append(pl),
                                        ssl_context=b.ssl_context(), username=DAEMON_USER, password=DAEMON_PASS,
                                        clean=True)
            await c2.subscribe([(p.node_topic(nid, "status"), 1)])
            await until(lambda: seen, 10, "the retained status")
            assert p.parse_status(seen[-1]).online
            c.abort()
            c2.abort()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_expired_command_is_never_played(fleet200: Fleet, protocol: str) -> None:
    """A node away when its command was sent comes back after the command expired: on MQTT 5 the
    broker drops it (message expiry), on 3.1.1 the node refuses it by the envelope's ``expires``."""
    svc = RadioService.standalone(fleet200.daemon_broker(protocol), fleet200.inventory,
                                  client_id=f"netmgr-exp-{protocol}")
    nid = sorted(fleet200.inventory)[7]
    async with running(svc), SpeakerSim(fleet200.broker(protocol), [(nid, fleet200.inventory[nid])],
                                        SimConfig(protocol=protocol), fleet200.passwords) as sim:
        await sim.wait_connected()
        await until(lambda: svc.registry.is_online(nid), 10, "the node online")
        await sim.set_offline([nid])  # persistent session: the broker queues its commands
        await until(lambda: not svc.registry.is_online(nid), 10, "the node's will")
        tc = await svc.issue("play", {"url": "http://127.0.0.1/a.mp3", "duration_s": 1}, nodes=[nid], ttl=1.5)
        assert tc.deliveries[nid].state == "offline"
        await until(lambda: tc.expired, 5, "the command to expire")
        sim.set_online([nid])
        await sim.wait_connected()
        # Either the node gets the queued command and refuses it ("expired"), or (MQTT 5 message
        # expiry) the broker drops it and the delivery ends "offline until the command expired".
        await until(lambda: tc.complete and "expired" in (tc.deliveries[nid].error or ""), 10,
                    "the delivery to end as expired")
        assert tc.deliveries[nid].state in ("expired", "offline")
        if protocol == "3.1.1":
            await until(lambda: tc.deliveries[nid].state == "expired", 10, "the node's refusal")
        # Prove the node handled everything sent before: a ping round trip after reconnecting.
        ping = await svc.issue("ping", nodes=[nid])
        await svc.wait(ping.cmd.id, lambda t: t.complete, 10)
        assert ping.deliveries[nid].state == "done"
        assert not any(e[1] == tc.cmd.id and e[2] in ("accepted", "playing") for e in sim.nodes[nid].log)
        assert sim.stats["schedule_plays"] == 0


async def test_broker_outage_30s(tmp_path: Path, mosquitto_factory) -> None:
    """The broker stops for 30 s: daemon and nodes reconnect, the registry is right within one
    telemetry interval, commands issued during the outage arrive afterwards if not expired, and
    the expired one is never played."""
    fleet = Fleet(60, tmp_path, mosquitto_factory)
    interval = 3.0
    svc = RadioService.standalone(fleet.daemon_broker(), fleet.inventory,
                                  telemetry_interval=interval, client_id="netmgr-outage")
    async with running(svc), SpeakerSim(fleet.broker("3.1.1"), list(fleet.inventory.items()),
                                        SimConfig(telemetry_interval=interval, reconnect_max=2.0),
                                        fleet.passwords) as sim:
        await sim.wait_connected()
        await until(lambda: svc.registry.counts()["online"] == 60, 20, "60 nodes online")
        gone = sorted(fleet.inventory)[:6]  # these lose their link during the outage for good

        fleet.m.stop()
        stopped = time.monotonic()
        await until(lambda: not svc.connected.is_set(), 10, "the daemon to notice the outage")
        await sim.set_offline(gone)
        keep = await svc.issue("play", {"url": "http://127.0.0.1/a.mp3", "duration_s": 0.5},
                               zones=["binh-phuoc"], ttl=300)
        drop = await svc.issue("play", {"url": "http://127.0.0.1/b.mp3", "duration_s": 0.5},
                               zones=["binh-phuoc"], ttl=5)
        assert keep.published is None and drop.published is None  # queued while the broker is away
        while time.monotonic() - stopped < 30:  # the outage itself, not a synchronisation
            await asyncio.sleep(0.5)
        fleet.m.start()
        back = time.monotonic()

        await until(lambda: svc.connected.is_set(), 30, "the daemon to reconnect")
        reconnected = time.monotonic()
        alive = [n for n in fleet.inventory if n not in gone]
        await sim.wait_connected(len(alive), timeout=30)
        # Within one telemetry interval of the daemon's reconnect (+ 1 s for this loop's polling)
        # the registry is right: the 54 back online, the 6 that never returned offline.
        await until(lambda: svc.registry.counts() == {"online": 54, "stale": 0, "offline": 6, "unknown": 0},
                    max(0.1, reconnected + interval + 1.0 - time.monotonic()), "the registry to match the fleet")
        assert time.monotonic() - reconnected <= interval + 1.0
        assert time.monotonic() - back < 30
        await svc.wait(keep.cmd.id, lambda t: all(t.deliveries[n].state == "done" for n in alive), 30)
        assert all(keep.deliveries[n].state == "done" for n in alive), keep.summary()
        assert all(drop.deliveries[n].state == "expired" for n in fleet.inventory), drop.summary()
        played = {e[1] for n in sim.nodes.values() for e in n.log}
        assert keep.cmd.id in played and drop.cmd.id not in played
        # each node played the kept command once, although it may have been sent twice
        for n in alive:
            states = [e[2] for e in sim.nodes[n].log if e[1] == keep.cmd.id]
            assert states.count("playing") == 1, (n, states)


async def test_bad_messages_are_counted_not_fatal(mosquitto_factory) -> None:
    mosquitto = mosquitto_factory()  # its own broker: no retained messages of other tests' nodes
    inv = {"n-1": "p/d/c", "n-2": "p/d/c"}
    svc = RadioService.standalone(Broker(port=mosquitto.port), inv, client_id="netmgr-bad")
    async with running(svc):
        c = await mqttlite.connect("127.0.0.1", mosquitto.port, "pest", lambda t, pl: None)
        cases = [
            ("node/n-1/telemetry", b"{not json"),
            ("node/n-1/telemetry", json.dumps({"ts": "yesterday"}).encode()),
            ("node/n-1/telemetry", json.dumps({"ts": 1, "rsi_dbm": -50}).encode()),
            ("node/n-1/telemetry", b"[" * 10 + b"]" * 10),
            ("node/n-1/telemetry", json.dumps({"ts": 1, "x": "a" * 9000}).encode()),
            ("node/n-1/status", json.dumps({"state": "sleeping", "session": 1}).encode()),
            ("node/n-1/reply", json.dumps({"id": "c-unknown", "status": "done"}).encode()),
            ("node/n-1/reply", json.dumps({"id": "c-1", "status": "error"}).encode()),
            ("node/n-1/reply", json.dumps({"id": "no spaces allowed", "status": "done"}).encode()),
            ("node/not-in-inventory/telemetry", json.dumps({"ts": 1}).encode()),
            ("node/n-1/telemetry", bytes([0xff, 0xfe, 0x00])),
        ]
        for topic, payload in cases:
            c.publish(f"{p.ROOT}/{topic}", payload, qos=1)
        await c.publish(f"{p.ROOT}/node/n-2/telemetry", p.encode({"ts": time.time(), "volume": 3}), qos=1)
        await until(lambda: svc.registry.nodes["n-2"].telemetry is not None, 10, "the good message")
        c.abort()
        assert sum(svc.bad.counts.values()) == len(cases), svc.bad.counts
        assert svc.bad.counts["bad_telemetry"] == 6
        assert svc.bad.counts["unknown_command"] == 1 and svc.bad.counts["unknown_node"] == 1
        assert svc.registry.nodes["n-1"].telemetry is None
        assert svc.stats["handler_errors"] == 0
