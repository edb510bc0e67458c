"""Commands out to nodes: checked before they are stored, tracked per node, published on zone
topics (one publish reaches a whole zone) and node topics, queued while the broker is away and
published again on reconnect if they have not expired. When a node comes (back) online, the
commands it has not accepted are resent to it on its own topic: nodes are idempotent by command
id, so a node that did get the first copy answers again without playing twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from netmgr.errors import Conflict, NotFound, UsageError
from netmgr.radio import protocol as p
from netmgr.radio.commands import Delivery, TrackedCommand, Tracker, new_command_id
from netmgr.radio.link import BrokerLink
from netmgr.radio.registry import Registry
from netmgr.zones import is_within

log = logging.getLogger(__name__)

WAIT_STEP = 0.5  # a waiter looks at its command at least this often
PENDING = ("queued", "sent", "offline", "timeout")  # deliveries still to be accepted


def checked(method: str, params: dict[str, Any] | None, priority: str, nodes: list[str],
            zones: list[str]) -> dict[str, Any]:
    """A command's params once everything about it is valid, else UsageError saying what is not."""
    if method not in p.METHODS:
        raise UsageError(f"unknown method {method!r}; use one of {', '.join(p.METHODS)}")
    if priority not in p.PRIORITIES:
        raise UsageError(f"unknown priority {priority!r}; use normal, priority or emergency")
    if not nodes and not zones:
        raise UsageError("a command needs a target: node ids and/or zone paths")
    try:
        params_ok = p.check_params(method, dict(params or {}))
        # Every topic it would go out on is built now: a command that cannot be published is
        # refused here and never stored (a stored one would fail again at each reconnect).
        for z in zones:
            p.zone_topic(z)
        for n in nodes:
            p.node_topic(n, "cmd")
    except (p.BadMessage, ValueError) as e:
        raise UsageError(str(e)) from None
    return params_ok


class Outbound:
    """Issues, publishes and resends commands; ``wait`` follows one until a condition holds."""

    def __init__(self, link: BrokerLink, registry: Registry, tracker: Tracker, stats: Counter[str], *,
                 ttl: float, fresh_inventory: Callable[[], Awaitable[None]],
                 take_early: Callable[[str], dict[str, p.Reply]]) -> None:
        self.link, self.registry, self.tracker, self.stats = link, registry, tracker, stats
        self.ttl = ttl  # default time to live of a command, seconds
        self._fresh_inventory, self._take_early = fresh_inventory, take_early
        self._waiters: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def resolve(self, nodes: list[str], zones: list[str]) -> list[str]:
        """The inventory nodes a command reaches: the listed nodes plus every node in (or under) the zones."""
        inv = {nid: st.zone for nid, st in self.registry.nodes.items() if st.zone is not None}
        missing = [n for n in nodes if n not in inv]
        if missing:
            raise NotFound(f"speaker {missing[0]!r} is not in the inventory"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        out = set(nodes)
        for z in zones:
            out.update(nid for nid, nz in inv.items() if nz and is_within(nz, z))
        return sorted(out)

    async def issue(self, method: str, params: dict[str, Any] | None = None, *,
                    nodes: list[str] | None = None, zones: list[str] | None = None,
                    priority: str = "normal", ttl: float | None = None, issued_by: str = "",
                    command_id: str | None = None) -> TrackedCommand:
        """Send a command to nodes and/or zones; returns it tracked. Zones go out as one publish
        each on the zone topic; nodes listed apart get it on their own topic."""
        nodes, zones = list(nodes or []), list(zones or [])
        params = checked(method, params, priority, nodes, zones)
        await self._fresh_inventory()
        targets = self.resolve(nodes, zones)
        if not targets:
            raise NotFound(f"no speakers in {', '.join(zones)}")
        cid = command_id or new_command_id()
        if cid in self.tracker.commands:
            raise Conflict(f"command {cid!r} exists")
        now = time.time()
        cmd = p.Command(cid, method, params, now, now + (ttl or self.ttl), priority)
        tc = TrackedCommand(cmd, targets if not zones else sorted(set(nodes)), zones, issued_by)
        for n in targets:
            tc.deliveries.setdefault(n, Delivery(n))
        self.tracker.add(tc)
        for node, reply in self._take_early(cid).items():
            if node in tc.deliveries:
                self.tracker.on_reply(node, reply)
        if self.link.up:
            await self.publish(tc)
        else:
            log.info("mqtt broker away: command %s (%s to %d nodes) queued until it is back",
                     cid, method, len(targets))
        return tc

    async def publish(self, tc: TrackedCommand, *, only: list[str] | None = None) -> None:
        """Publish ``tc`` (on its zone topics and listed nodes' topics, or only to ``only`` nodes)."""
        cmd = tc.cmd
        remaining = cmd.expires - time.time()
        if not self.link.up or remaining <= 0:
            return
        payload = cmd.to_json()
        # Marked before the first await: replies may arrive before the broker's PUBACK does.
        self._mark_sent(tc, only)
        if only is not None:
            topics = [(p.node_topic(n, "cmd"), n) for n in only]
        else:
            topics = [(p.zone_topic(z), None) for z in tc.zones]
            topics += [(p.node_topic(n, "cmd"), n) for n in (tc.nodes if tc.zones else tc.deliveries)]
        for topic, node in topics:
            await self.link.publish(topic, payload, expires_in=remaining, correlation=cmd.id,
                                    response_topic=p.node_topic(node, "reply") if node else None)

    def _mark_sent(self, tc: TrackedCommand, only: list[str] | None) -> None:
        now = time.time()
        if tc.published is None:
            tc.published = time.monotonic()
            tc.published_wall = now
        for nid in (only if only is not None else list(tc.deliveries)):
            d = tc.deliveries[nid]
            if d.state in ("queued", "offline", "timeout"):
                d.move("sent" if self.registry.is_online(nid) else "offline", now)
                d.times.setdefault("sent", now)
        tc.dirty = True

    async def publish_queued(self) -> None:
        """After (re)connecting: every unexpired command some target has not accepted goes out
        again (zones as one publish each; nodes are idempotent by id)."""
        for tc in list(self.tracker.commands.values()):
            if tc.expired or not any(d.state in PENDING for d in tc.deliveries.values()):
                continue
            try:
                if tc.zones or tc.published is None:
                    await self.publish(tc)
                else:
                    await self.publish(tc, only=[n for n, d in tc.deliveries.items() if d.state in PENDING])
            except ValueError as e:
                # The client refused it (a topic or payload it cannot send): that command fails,
                # not the connection, or every reconnect would fail the same way until it expires.
                log.error("command %s could not be published and is dropped: %s", tc.cmd.id, e)
                now = time.time()
                for d in tc.deliveries.values():
                    if d.state in PENDING:
                        d.move("error", now, error=f"could not be published: {e}")
                tc.dirty = True

    def resend_pending(self, node_id: str) -> None:
        """The node (re)connected: resend it, on its own topic, what it has not accepted."""
        pending = self.tracker.pending_for(node_id)
        if not pending or not self.link.up:
            return
        self.stats["resent"] += len(pending)
        for tc in pending:
            task = asyncio.get_running_loop().create_task(self.publish(tc, only=[node_id]),
                                                          name=f"radio:resend:{node_id}")
            self._tasks.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

    def reply_arrived(self, command_id: str) -> None:
        """Wake whoever waits on the command."""
        ev = self._waiters.get(command_id)
        if ev is not None:
            ev.set()

    async def wait(self, command_id: str, until: Callable[[TrackedCommand], bool],
                   timeout: float) -> TrackedCommand:
        """Wait until ``until(tc)`` holds or ``timeout`` passes; returns the command as it stands."""
        tc = self.tracker.commands.get(command_id)
        if tc is None:
            raise NotFound(f"command {command_id!r} not found")
        ev = self._waiters.setdefault(command_id, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                while not until(tc):
                    ev.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(WAIT_STEP):
                            await ev.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.pop(command_id, None)
        return tc
