"""What nodes send the radio service: status, telemetry and replies, dispatched to the registry
and the command tracker. Never raises: a bad message is counted and logged within budgets."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from netmgr.radio import protocol as p
from netmgr.radio.commands import RANK, Tracker
from netmgr.radio.registry import NodeState, Registry, plausible_session
from netmgr.text import safe_text

log = logging.getLogger(__name__)

LOG_EVERY = 60.0  # at most one log line per node and kind of bad message per minute
KIND_BUDGET = 20  # ... and at most this many lines per kind of bad message per minute
EARLY_MAX = 10_000  # schedule replies kept until their command exists (oldest item dropped)


class BadMessageLog:
    """Counts bad messages by kind and logs them within two budgets: each (node, kind) at most
    once a minute, and each kind at most ``KIND_BUDGET`` lines a minute across all nodes (3,000
    spoofed node ids must not make 3,000 lines); what the second budget holds back is summed up
    in one line per kind and minute ("2,941 more unknown_node messages suppressed")."""

    def __init__(self, kind_budget: int = KIND_BUDGET, every: float = LOG_EVERY) -> None:
        self.counts: Counter[str] = Counter()
        self.kind_budget, self.every = kind_budget, every
        self._last: dict[tuple[str, str], float] = {}
        self._window = time.monotonic()
        self._logged: Counter[str] = Counter()  # lines per kind in the current window
        self.suppressed: Counter[str] = Counter()  # held back by the kind budget in this window

    def report(self, node: str, kind: str, message: str) -> None:
        """Count one bad message; log it if both budgets allow."""
        self.counts[kind] += 1
        now = time.monotonic()
        self.summarize(now)
        key = (node, kind)
        if now - self._last.get(key, -self.every) < self.every:
            return
        if self._logged[kind] >= self.kind_budget:
            self.suppressed[kind] += 1
            return
        self._last[key] = now
        self._logged[kind] += 1
        log.warning("bad message node=%s kind=%s: %s (counted; more like it are logged at most "
                    "once a minute)", safe_text(node, keep_newlines=False), kind,
                    safe_text(message, keep_newlines=False))
        if len(self._last) > 50_000:  # a flood of random node ids must not grow this forever
            self._last.clear()

    def summarize(self, now: float | None = None) -> None:
        """At the end of each window: one line per kind whose messages the budget held back."""
        now = time.monotonic() if now is None else now
        if now - self._window < self.every:
            return
        for kind, n in sorted(self.suppressed.items()):
            log.warning("bad messages: %s more %s messages suppressed in the last %.0f s (over %d "
                        "lines of that kind; all are counted in /healthz bad_messages)",
                        f"{n:,}", kind, now - self._window, self.kind_budget)
        self.suppressed.clear()
        self._logged.clear()
        self._window = now


def check_session(kind: str, session: int | None) -> None:
    """Refuse a session that no real node can have (issue 12: one such retained status locked a
    node out for good)."""
    if session is not None and not plausible_session(session):
        raise p.BadMessage(kind, f"session {session} is more than a day ahead of this daemon's clock in "
                           "milliseconds; ignored (fix the node's clock or counter, or run "
                           "`netmgr speaker reset-session` after a flash wipe; docs/protocol.md)")


@dataclass(slots=True)
class InboundHooks:
    """What the rest of the service does about what came in."""

    unknown_node: Callable[[], None]  # a node not in the inventory: look at the store again
    new_session: Callable[[str], None]  # the node (re)connected: resend what it may have missed
    telemetry: Callable[[str, NodeState, p.Telemetry | None], None]  # hand it on (None: offline)
    reply: Callable[[str], None]  # a reply to this command id arrived


class Inbound:
    """Dispatches node messages; ``handle`` is the link's ``on_message``."""

    def __init__(self, registry: Registry, tracker: Tracker, hooks: InboundHooks,
                 stats: Counter[str]) -> None:
        self.registry, self.tracker, self.hooks, self.stats = registry, tracker, hooks, stats
        self.bad = BadMessageLog()
        self._early: dict[str, dict[str, p.Reply]] = {}  # item id -> node -> latest reply

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Dispatch one message; never raises (a bad message is counted and logged).

        ``retained``: a status the broker kept (delivered on subscribe) says what the node
        last announced, not that it is alive now; only live messages count as heard."""
        parsed = p.parse_node_topic(topic)
        if parsed is None:
            self.bad.report("?", "topic", f"unexpected topic {topic[:120]!r}")
            return
        node_id, kind = parsed
        st = self.registry.nodes.get(node_id)
        if st is None or st.zone is None:
            self.hooks.unknown_node()  # added by another daemon sharing the store? look again
            self.bad.report(node_id, "unknown_node",
                            f"node {node_id!r} is not in the inventory; add it with `netmgr speaker add`")
            return
        self.stats[kind] += 1
        try:
            if kind == "telemetry":
                self._on_telemetry(node_id, payload)
            elif kind == "status":
                self._on_status(node_id, payload, retained)
            elif kind == "reply":
                self._on_reply(node_id, payload)
            elif kind not in ("cmd", "schedule"):  # ours (a shared broker may echo them to a wildcard)
                self.bad.report(node_id, "topic", f"unknown topic kind {kind!r}")
        except p.BadMessage as e:
            self.bad.report(node_id, f"bad_{e.kind}", str(e))
        except Exception:  # a bug must not take the radio down; the message is dropped and logged
            self.stats["handler_errors"] += 1
            log.exception("handling a message failed node=%s topic=%s", node_id, topic)

    def take_early(self, command_id: str) -> dict[str, p.Reply]:
        """The replies that came before the command existed (node -> reply), forgotten here."""
        return self._early.pop(command_id, {})

    def _on_telemetry(self, node_id: str, payload: bytes) -> None:
        msg = p.parse_telemetry(payload)
        check_session("telemetry", msg.session)
        node = self.registry.apply_telemetry(node_id, msg)
        self.hooks.telemetry(node_id, node, msg)

    def _on_status(self, node_id: str, payload: bytes, retained: bool) -> None:
        status = p.parse_status(payload)
        check_session("status", status.session)
        before = self.registry.node(node_id).session
        if not self.registry.apply_status(node_id, status, live=not retained):
            self.stats["stale_status"] += 1
            return
        if status.online and status.session != before:
            # A new connection of the node: it may have missed commands and schedules
            # (a broker restart loses sessions). Nodes are idempotent by command id.
            self.hooks.new_session(node_id)
        elif not status.online:
            self.hooks.telemetry(node_id, self.registry.node(node_id), None)

    def _on_reply(self, node_id: str, payload: bytes) -> None:
        reply = p.parse_reply(payload)
        self.registry.touch(node_id, reply.ts)
        if reply.id == p.SCHEDULE_ACK_ID:
            v = reply.data.get("version")
            if isinstance(v, int) and not isinstance(v, bool):
                self.registry.node(node_id).schedule_version = v
            return
        outcome = self.tracker.on_reply(node_id, reply)
        if outcome == "unknown" and reply.data.get("source") == "schedule":
            # A node plays a schedule item (its id is the occurrence's) before the scheduler's
            # confirming command exists, or reports one it played offline: kept until that
            # command is issued (see take_early).
            self._keep_early(node_id, reply)
            return
        if outcome == "unknown":
            self.bad.report(node_id, "unknown_command",
                            f"reply to unknown command {reply.id!r} (status {reply.status})")
        elif outcome == "stranger":
            self.bad.report(node_id, "not_a_target", f"reply to command {reply.id!r} "
                            "that was not sent to this node")
        self.hooks.reply(reply.id)

    def _keep_early(self, node_id: str, reply: p.Reply) -> None:
        self.stats["early_replies"] += 1
        if len(self._early) >= EARLY_MAX:
            self._early.pop(next(iter(self._early)))
        per = self._early.setdefault(reply.id, {})
        old = per.get(node_id)
        if old is None or RANK.get(reply.status, 0) >= RANK.get(old.status, 0):
            per[node_id] = reply
