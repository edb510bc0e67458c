"""Each node's schedule document (docs/protocol.md, "Schedules"): published retained on the
node's schedule topic, kept, and published again after a reconnect or when a node that comes
back reports an older version than the one it should hold."""

from __future__ import annotations

import asyncio
import logging

from netmgr.radio import protocol as p
from netmgr.radio.link import BrokerLink
from netmgr.radio.registry import Registry

log = logging.getLogger(__name__)


class Schedules:
    """The last schedule published to each node."""

    def __init__(self, link: BrokerLink, registry: Registry) -> None:
        self.link, self.registry = link, registry
        self.docs: dict[str, p.Schedule] = {}  # node -> last published schedule
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, node_id: str, sched: p.Schedule) -> None:
        """Publish a node's schedule (retained); kept and republished after reconnects."""
        self.docs[node_id] = sched
        await self._send(node_id, sched)

    async def publish_all(self) -> None:
        """After a reconnect: every kept schedule again (a broker restart may lose retained ones)."""
        for node_id, sched in list(self.docs.items()):
            await self._send(node_id, sched)

    def refresh(self, node_id: str) -> None:
        """A node (re)connected: publish its schedule again unless it reports holding it."""
        sched = self.docs.get(node_id)
        st = self.registry.nodes.get(node_id)
        if sched is None or not self.link.up or (st and st.schedule_version == sched.version):
            return
        task = asyncio.get_running_loop().create_task(self._send(node_id, sched),
                                                      name=f"radio:schedule:{node_id}")
        self._tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    def forget(self) -> None:
        """Stop republishing the schedules sent so far (another daemon leads the schedules now)."""
        self.docs.clear()

    async def _send(self, node_id: str, sched: p.Schedule) -> None:
        await self.link.publish(p.node_topic(node_id, "schedule"), sched.to_json(),
                                retain=p.RETAIN["schedule"])
