"""The one exception module of netmgr.

Every message names the thing it is about (AP name and address, node id,
config path and key, zone path) and, where there is one, says what to do.
Library errors are sorted at the boundary into :class:`Retryable` (the peer may
answer later: timeouts, refused connections, 5xx) and :class:`BadData` (the
peer answered with something we cannot use: retrying will not help).
"""

from __future__ import annotations


class NetmgrError(Exception):
    """Base of every error netmgr raises on purpose.

    ``exit_code`` is what the CLI exits with when this error reaches it.
    """

    exit_code = 1


class ConfigError(NetmgrError):
    """The configuration is invalid; ``problems`` holds one ``path: message`` per problem."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"{source}: {p}" for p in problems)
        super().__init__(lines)


class UsageError(NetmgrError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class NotFound(NetmgrError):
    """A named thing (zone, AP, speaker, user, program) does not exist."""


class Conflict(NetmgrError):
    """The write clashes with what is stored (duplicate name, overlapping program)."""


class MissingReference(Conflict):
    """A write names something that does not exist yet (a zone, speaker or media file).

    The request is well formed (its schema holds); the inventory does not have what it refers
    to, so it is a conflict with what is stored (409), not a malformed request (422).
    """


class Forbidden(NetmgrError):
    """The caller may not do this; the message names the zone or permission missing."""


class Retryable(NetmgrError):
    """A peer did not answer or answered 'later': the same call may succeed later."""


class BadData(NetmgrError):
    """A peer answered with something malformed; retrying will not help."""


class SnmpError(NetmgrError):
    """An SNMP exchange with one agent failed; the message names the AP and address."""

    def __init__(self, target: str, message: str, *, retryable: bool = True) -> None:
        self.target = target
        self.retryable = retryable
        super().__init__(f"{target}: {message}")


class SnmpTimeout(SnmpError):
    """The agent did not answer within the timeout after all retries."""

    def __init__(self, target: str, timeout: float, retries: int) -> None:
        super().__init__(
            target,
            f"no SNMP response within {timeout:g}s after {retries} retries; "
            "check that the agent is up, reachable and uses this community/user",
        )


class SnmpBadResponse(SnmpError):
    """The agent answered with something that is not a usable SNMP response."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(target, message, retryable=False)


class MqttError(NetmgrError):
    """The MQTT broker refused us or went away; the message names the broker."""


class TelemetryError(NetmgrError):
    """Writing telemetry failed; the message names the sink URL."""
