"""Many virtual speaker nodes in one process, implementing the node side of docs/protocol.md.

Each node has its own MQTT connection and identity (client id = node id):
birth and last will on its retained status topic with a session counter that
grows on every connect; telemetry every interval; commands handled with
accepted / playing / done and real play durations; idempotency by command id;
expiry by its own (possibly skewed) clock; priority preemption; the retained
schedule cached and played from the cache while the link is down; reconnects
with jittered backoff.

Knobs (:class:`SimConfig`): message loss, latency, an offline fraction (nodes
that stay disconnected), clock skew. A running simulator can be steered from
stdin with JSON lines (``{"offline": ["n-1"]}``, ``{"online": [...]}``,
``{"offline_fraction": 0.1}``, ``{"stats": true}``), which the tests and
benchmarks use when it runs as a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netmgr.errors import MqttLinkError
from netmgr.radio import protocol as p
from netmgr.radio.mqtt import Broker

log = logging.getLogger(__name__)

SEEN_IDS = 512        # command ids a node remembers for idempotency
DEFAULT_PLAY_S = 30.0  # a play with neither duration_s nor until (a live stream)


@dataclass
class SimConfig:
    """Behaviour knobs of the simulated fleet."""

    telemetry_interval: float = 30.0
    loss: float = 0.0            # probability an outbound reply/telemetry (or inbound command) is lost
    latency_ms: float = 0.0      # mean extra delay before a node acts on a command (exponential)
    offline_fraction: float = 0.0  # nodes that never connect (until told otherwise)
    skew_s: float = 0.0          # each node's clock is off by uniform(-skew, +skew) seconds
    protocol: str = "3.1.1"
    keepalive: int = 30
    reconnect_max: float = 5.0
    seed: int | None = None


@dataclass
class Playback:
    id: str             # command id or schedule item id
    priority: str
    volume: int
    ends: float         # node clock
    source: str         # "command" | "schedule"
    task: asyncio.Task[None] | None = None


@dataclass
class Node:
    """One virtual node's state (what its firmware would keep)."""

    id: str
    zone: str
    password: str | None = None
    session: int = 0
    skew: float = 0.0
    volume: int = 60
    want_online: bool = True
    connected: bool = False
    playing: Playback | None = None
    seen: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)  # id -> last reply
    schedule: p.Schedule | None = None
    played_items: set[str] = field(default_factory=set)
    unreported: list[dict[str, Any]] = field(default_factory=list)  # replies made while offline
    client: Any = None
    task: asyncio.Task[None] | None = None
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (our time, id, event)
    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.time() + self.skew


class SpeakerSim:
    """The fleet. ``async with SpeakerSim(...) as sim:`` connects the nodes; leaving disconnects."""

    def __init__(self, broker: Broker, nodes: list[tuple[str, str]], cfg: SimConfig | None = None,
                 passwords: dict[str, str] | None = None) -> None:
        self.broker = broker
        self.cfg = cfg or SimConfig()
        self.rng = random.Random(self.cfg.seed)
        self.nodes: dict[str, Node] = {}
        for nid, zone in nodes:
            n = Node(nid, zone, (passwords or {}).get(nid), skew=self.rng.uniform(-1, 1) * self.cfg.skew_s)
            self.nodes[nid] = n
        offline = self.rng.sample(sorted(self.nodes), round(len(self.nodes) * self.cfg.offline_fraction))
        for nid in offline:
            self.nodes[nid].want_online = False
        self.stats: Counter[str] = Counter()
        self.refused = 0  # v5 PUBACKs refused by the broker (ACL), summed over closed connections
        self.last_error: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._parsed: dict[bytes, p.Command] = {}
        self._sched_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SpeakerSim:
        for n in self.nodes.values():
            if n.want_online:
                self._start(n)
        self._sched_task = asyncio.create_task(self._schedule_loop(), name="sim:schedule")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [n.task for n in self.nodes.values() if n.task] + list(self._tasks)
        if self._sched_task:
            tasks.append(self._sched_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ control

    def _start(self, n: Node) -> None:
        n.want_online = True
        if n.task is None or n.task.done():
            n.task = asyncio.create_task(self._run_node(n), name=f"sim:{n.id}")

    async def set_offline(self, ids: list[str]) -> None:
        """Cut these nodes' links (no goodbye: the broker sends their last will)."""
        tasks = []
        for nid in ids:
            n = self.nodes[nid]
            n.want_online = False
            if n.task:
                n.task.cancel()
                tasks.append(n.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def set_online(self, ids: list[str]) -> None:
        for nid in ids:
            self._start(self.nodes[nid])

    def online_count(self) -> int:
        return sum(1 for n in self.nodes.values() if n.connected)

    async def wait_connected(self, count: int | None = None, timeout: float = 60.0) -> None:
        want = count if count is not None else sum(1 for n in self.nodes.values() if n.want_online)
        async with asyncio.timeout(timeout):
            while self.online_count() < want:  # noqa: ASYNC110 - a count over many tasks, polled
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ one node's link

    async def _run_node(self, n: Node) -> None:
        from netmgr.sim import mqttlite

        failures = 0
        b = self.broker
        ctx = b.ssl_context()
        while n.want_online:
            # Sessions grow across reboots too (docs/protocol.md): the connect time in ms.
            n.session = max(n.session + 1, int(n.now() * 1000))
            will = mqttlite.Will(p.node_topic(n.id, "status"),
                                 p.encode({"state": "offline", "session": n.session}))
            client = None
            try:
                client = await mqttlite.connect(
                    b.host, b.port, n.id, lambda t, pl, n=n: self._on_message(n, t, pl), v5=b.v5,
                    ssl_context=ctx, username=n.id if n.password is not None else b.username,
                    password=n.password if n.password is not None else b.password,
                    will=will, keepalive=self.cfg.keepalive)
                n.client = client
                subs = [(p.node_topic(n.id, "cmd"), 1), (p.node_topic(n.id, "schedule"), 1),
                        (p.node_topic(n.id, "status"), 1)]
                subs += [(t, 1) for t in p.zone_topics(n.zone)]
                await client.subscribe(subs)
                client.publish(p.node_topic(n.id, "status"),
                               p.encode({"state": "online", "session": n.session, "ts": round(n.now(), 3),
                                         "fw": "sim-1.0", "model": "netmgr-sim"}), qos=1, retain=True)
                n.connected = True
                failures = 0
                self.stats["connects"] += 1
                unreported, n.unreported = n.unreported, []
                for msg in unreported:  # what played while the link was down
                    self._send(n, "reply", msg)
                tel = asyncio.create_task(self._telemetry_loop(n), name=f"sim:{n.id}:telemetry")
                try:
                    await client.closed
                finally:
                    tel.cancel()
                    await asyncio.gather(tel, return_exceptions=True)
                self.stats["disconnects"] += 1
            except (MqttLinkError, OSError) as e:
                failures += 1
                self.stats["connect_failures"] += 1
                self.last_error = str(e)
                log.debug("node %s: %s", n.id, e)
            except asyncio.CancelledError:
                if client is not None:
                    client.abort()  # a cut link: no goodbye, the broker sends the will
                raise
            finally:
                n.connected = False
                n.client = None
                if client is not None:
                    self.refused += client.refused
            delay = min(self.cfg.reconnect_max, 0.25 * 2 ** min(failures, 6))
            await asyncio.sleep(delay / 2 + self.rng.random() * delay / 2)

    async def _telemetry_loop(self, n: Node) -> None:
        await asyncio.sleep(self.rng.random() * min(self.cfg.telemetry_interval, 2.0))
        while True:
            self._send(n, "telemetry", self.telemetry_of(n))
            await asyncio.sleep(self.cfg.telemetry_interval)

    def telemetry_of(self, n: Node) -> dict[str, Any]:
        pb = n.playing
        return {"ts": round(n.now(), 3), "session": n.session,
                "rssi_dbm": -60 - (hash(n.id) % 30), "volume": pb.volume if pb else n.volume,
                "playing": {"id": pb.id, "priority": pb.priority} if pb else None,
                "temperature_c": 38.5 + (hash(n.id) % 10) / 2, "voltage_v": 12.2,
                "uptime_s": round(time.monotonic() - n.started, 1), "net": "4g", "fw": "sim-1.0",
                "schedule_version": n.schedule.version if n.schedule else None}

    def _send(self, n: Node, kind: str, doc: dict[str, Any]) -> None:
        if kind == "reply" and not n.connected:
            n.unreported.append(doc)
            return
        if self.cfg.loss and self.rng.random() < self.cfg.loss:
            self.stats["lost_out"] += 1
            return
        c = n.client
        if c is None:
            if kind == "reply":
                n.unreported.append(doc)
            return
        try:
            c.publish(p.node_topic(n.id, kind), p.encode(doc), qos=p.QOS[kind])
            self.stats[f"sent_{kind}"] += 1
        except Exception:  # noqa: BLE001 - a link that just dropped: keep the reply for later
            if kind == "reply":
                n.unreported.append(doc)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ inbound

    def _on_message(self, n: Node, topic: str, payload: bytes) -> None:
        if topic == p.node_topic(n.id, "status"):
            # A late last will of an earlier session replaced our birth: publish it again.
            try:
                st = p.parse_status(payload)
            except p.BadMessage:
                return
            if not st.online and st.session < n.session and n.client is not None:
                self.stats["birth_repaired"] += 1
                n.client.publish(p.node_topic(n.id, "status"), p.encode(
                    {"state": "online", "session": n.session, "ts": round(n.now(), 3)}), qos=1, retain=True)
            return
        if topic == p.node_topic(n.id, "schedule"):
            try:
                sched = p.parse_schedule(payload)
            except p.BadMessage as e:
                self.stats["bad_schedule"] += 1
                log.debug("node %s: bad schedule: %s", n.id, e)
                return
            n.schedule = sched
            self._send(n, "reply", {"id": p.SCHEDULE_ACK_ID, "status": "done",
                                    "ts": n.now(), "data": {"version": sched.version}})
            return
        if self.cfg.loss and self.rng.random() < self.cfg.loss:
            self.stats["lost_in"] += 1
            return
        self.stats["commands"] += 1
        self._command(n, payload)

    def _reply(self, n: Node, cid: str, status: str, error: str | None = None,
                     data: dict[str, Any] | None = None) -> None:
        doc: dict[str, Any] = {"id": cid, "status": status, "ts": round(n.now(), 3)}
        if error:
            doc["error"] = error
        if data:
            doc["data"] = data
        n.seen[cid] = doc
        n.seen.move_to_end(cid)
        while len(n.seen) > SEEN_IDS:
            n.seen.popitem(last=False)
        n.log.append((time.time(), cid, status))
        self._send(n, "reply", doc)

    def _parse(self, payload: bytes) -> p.Command:
        """Parse a command; a zone command reaches every node with the same bytes: parse it once."""
        cmd = self._parsed.get(payload)
        if cmd is None:
            cmd = p.parse_command(payload)
            if len(self._parsed) > 256:
                self._parsed.clear()
            self._parsed[payload] = cmd
        return cmd

    def _command(self, n: Node, payload: bytes) -> None:
        try:
            cmd = self._parse(payload)
        except p.BadMessage as e:
            self.stats["bad_command"] += 1
            try:
                cid = json.loads(payload).get("id")
            except (ValueError, AttributeError):
                return
            if isinstance(cid, str) and p.CMD_ID.match(cid):
                self._reply(n, cid, "error", f"bad command: {e}")
            return
        if cmd.id in n.seen:  # idempotency: answer again, never act twice
            self.stats["duplicates"] += 1
            self._send(n, "reply", n.seen[cmd.id])
            return
        if n.now() >= cmd.expires:
            self.stats["expired"] += 1
            self._reply(n, cmd.id, "error", "expired: the command's expires time has passed")
            return
        if self.cfg.latency_ms:
            n.seen[cmd.id] = {"id": cmd.id, "status": "accepted", "ts": round(n.now(), 3)}
            self._spawn(self._act_later(n, cmd, self.rng.expovariate(1000.0 / self.cfg.latency_ms)))
            return
        self._act(n, cmd)

    async def _act_later(self, n: Node, cmd: p.Command, delay: float) -> None:
        await asyncio.sleep(delay)
        self._act(n, cmd)

    def _act(self, n: Node, cmd: p.Command) -> None:
        """Act on a valid, fresh command; a method the simulator does not know is ignored."""
        handler = _ACTIONS.get(cmd.method)
        if handler is not None:
            handler(self, n, cmd)

    def _act_ping(self, n: Node, cmd: p.Command) -> None:
        """Answer with the node's clock."""
        self._reply(n, cmd.id, "done", data={"ts": round(n.now(), 3)})

    def _act_volume(self, n: Node, cmd: p.Command) -> None:
        """Set the node's default volume."""
        n.volume = int(cmd.params["level"])
        self._reply(n, cmd.id, "done", data={"volume": n.volume})

    def _act_sync(self, n: Node, cmd: p.Command) -> None:
        """Answer with the version of the cached schedule (None: no schedule)."""
        self._reply(n, cmd.id, "done", data={"version": n.schedule.version if n.schedule else None})

    def _act_stop(self, n: Node, cmd: p.Command) -> None:
        """Stop the current playback (or only ``target``) unless it outranks the stop's priority."""
        pb = n.playing
        target = cmd.params.get("target")
        rank = p.PRIORITY_RANK
        if pb and target in (None, pb.id) and rank[pb.priority] <= rank[cmd.priority]:
            self._end(n, pb, "stopped")
        self._reply(n, cmd.id, "done")

    def _act_reboot(self, n: Node, cmd: p.Command) -> None:
        """Accept, then reboot the node (see _reboot)."""
        self._reply(n, cmd.id, "accepted")
        self._spawn(self._reboot(n))

    def _act_play(self, n: Node, cmd: p.Command) -> None:
        """Play for ``duration_s`` or ``until`` (default: a live stream); an emergency forces its volume."""
        item = cmd.params.get("item")
        if item and (item in n.played_items or (n.playing and n.playing.id == item)):
            # The daemon confirms an occurrence the node already plays from its schedule.
            state = "playing" if n.playing and n.playing.id == item else "done"
            self._reply(n, cmd.id, state, data={"item": item, "source": "schedule"})
            return
        until = cmd.params.get("until")
        dur = cmd.params.get("duration_s") or (until - n.now() if until else DEFAULT_PLAY_S)
        vol = cmd.params.get("volume")
        if cmd.priority == "emergency" and vol is None:
            vol = 100  # an emergency forces its volume
        self._play(n, cmd.id, cmd.priority, int(vol if vol is not None else n.volume),
                   float(dur), "command", item=item)

    def _play(self, n: Node, pid: str, priority: str, volume: int, duration: float, source: str,
                    item: str | None = None) -> bool:
        cur = n.playing
        if cur is not None and p.PRIORITY_RANK[cur.priority] > p.PRIORITY_RANK[priority]:
            if source == "command":
                self._reply(n, pid, "error", f"busy: playing {cur.priority} {cur.id}")
            return False
        if cur is not None:
            self._end(n, cur, "preempted", by=pid)
        pb = Playback(pid, priority, volume, n.now() + max(0.05, duration), source)
        n.playing = pb
        if item:
            n.played_items.add(item)
        if source == "command":
            self._reply(n, pid, "accepted")
        self._reply(n, pid, "playing", data={"volume": volume, "source": source})
        pb.task = asyncio.get_running_loop().create_task(self._finish(n, pb, duration))
        self._tasks.add(pb.task)
        pb.task.add_done_callback(self._tasks.discard)
        return True

    async def _finish(self, n: Node, pb: Playback, duration: float) -> None:
        await asyncio.sleep(max(0.05, duration))
        if n.playing is pb:
            pb.task = None
            self._end(n, pb, "completed")

    def _end(self, n: Node, pb: Playback, outcome: str, by: str | None = None) -> None:
        if n.playing is pb:
            n.playing = None
        if pb.task is not None and pb.task is not asyncio.current_task():
            pb.task.cancel()
        data: dict[str, Any] = {"outcome": outcome, "source": pb.source}
        if by:
            data["by"] = by
        self._reply(n, pb.id, "done", data=data)

    async def _reboot(self, n: Node) -> None:
        await asyncio.sleep(0.2)
        c = n.client
        if c is not None:  # a planned restart: goodbye, then a clean DISCONNECT (no will)
            c.publish(p.node_topic(n.id, "status"), p.encode({"state": "offline", "session": n.session}),
                      qos=1, retain=True)
            c.disconnect()
        if n.task:
            n.task.cancel()
            await asyncio.gather(n.task, return_exceptions=True)
        if n.playing:
            n.playing = None
        self._start(n)

    # ------------------------------------------------------------------ schedule, link or not

    async def _schedule_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for n in self.nodes.values():
                sched = n.schedule
                if sched is None:
                    continue
                now = n.now()
                for it in sched.items:
                    if it.id in n.played_items or not (it.start <= now < it.end):
                        continue
                    n.played_items.add(it.id)
                    self.stats["schedule_plays"] += 1
                    vol = it.volume if it.volume is not None else (
                        100 if it.priority == "emergency" else n.volume)
                    self._play(n, it.id, it.priority, vol, it.end - now, "schedule")


# A command's method -> what a node does with it (SpeakerSim._act).
_ACTIONS: dict[str, Callable[[SpeakerSim, Node, p.Command], None]] = {
    "ping": SpeakerSim._act_ping,
    "volume": SpeakerSim._act_volume,
    "sync": SpeakerSim._act_sync,
    "stop": SpeakerSim._act_stop,
    "reboot": SpeakerSim._act_reboot,
    "play": SpeakerSim._act_play,
}


# ---------------------------------------------------------------------- process entry point

async def run_cli(broker: Broker, nodes: list[tuple[str, str]], cfg: SimConfig,
                  passwords: dict[str, str] | None, duration: float | None) -> None:
    """``netmgr sim speakers``: run until interrupted (or ``duration``), steered by JSON lines on stdin."""
    async with SpeakerSim(broker, nodes, cfg, passwords) as sim:
        print(json.dumps({"event": "started", "nodes": len(sim.nodes)}), flush=True)
        stdin_task = asyncio.create_task(_stdin_control(sim))
        try:
            await sim.wait_connected(timeout=120)
            print(json.dumps({"event": "connected", "online": sim.online_count()}), flush=True)
            if duration:
                await asyncio.sleep(duration)
            else:
                await asyncio.Event().wait()
        finally:
            stdin_task.cancel()
            with contextlib.suppress(BaseException):
                await stdin_task
            print(json.dumps({"event": "stopped", "stats": dict(sim.stats)}), flush=True)


async def _stdin_control(sim: SpeakerSim) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):  # stdin is not a pipe (a terminal): no control channel
        await asyncio.Event().wait()
    while line := await reader.readline():
        try:
            doc = json.loads(line)
            if "offline" in doc:
                await sim.set_offline(list(doc["offline"]))
            if "online" in doc:
                sim.set_online(list(doc["online"]))
            if "offline_fraction" in doc:
                ids = sorted(sim.nodes)
                k = round(len(ids) * float(doc["offline_fraction"]))
                await sim.set_offline(ids[:k])
                sim.set_online(ids[k:])
            out = {"event": "ok", "online": sim.online_count(), "stats": dict(sim.stats)}
            if doc.get("playlog"):
                out["playlog"] = {n.id: n.log for n in sim.nodes.values() if n.log}
        except (ValueError, KeyError, TypeError) as e:
            out = {"event": "error", "error": str(e)}
        print(json.dumps(out), flush=True)
