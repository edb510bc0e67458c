"""The one exception module of netmgr: every error it raises on purpose is declared here.

Every message names the thing it is about (AP name and address, node id, config path and key,
zone path) and, where there is one, says what to do. Four families, each mapped once to an HTTP
status (``http_status``, used by netmgr.api.app) and a CLI exit code (``exit_code``, used by
netmgr.cli):

- the caller's request cannot be done as asked: :class:`UsageError` (422; exit 2) and its
  kinds — :class:`BadValue` (a value that does not parse), :class:`ImportRefused`,
  :class:`TooLarge` (413) —, :class:`NotFound` (404), :class:`Conflict` and
  :class:`MissingReference` (409);
- the caller may not: :class:`Unauthorized` (401), :class:`Forbidden` (403);
- a peer did not answer or said "later": :class:`Retryable` (503, with Retry-After) — SNMP
  timeouts, an unreachable sink or store;
- a peer answered with something we cannot use, and retrying will not help: :class:`BadData` —
  an undecodable SNMP packet, a node's malformed MQTT message, a sink refusing points.

Library errors are converted into these at the boundary (the SNMP client, the sink, the MQTT
link). Parse errors are also ``ValueError`` (``BadValue``, ``BadData`` are both), so pydantic
validators that raise them report a field error with their message.
"""

from __future__ import annotations


class NetmgrError(Exception):
    """Base of every error netmgr raises on purpose."""

    exit_code = 1  # what the CLI exits with when this error reaches it
    http_status = 400  # what the API answers when it reaches a route


# ----------------------------------------------------------------------------- the request

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
    http_status = 422


class BadValue(UsageError, ValueError):
    """A value the user typed does not parse (a time, a duration, an RRULE, a query)."""


class TimeParseError(BadValue):
    """A time, day or duration the user typed could not be understood."""


class RuleError(BadValue):
    """An RRULE is malformed, never fires, or fires too often; the message says what to change."""


class QueryError(BadValue):
    """A query that cannot be built as asked (the message names the measurement)."""


class ImportRefused(UsageError):
    """The file has problems; nothing was written. ``problems`` holds ``line N: message`` lines."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        head = f"{what}: refused, nothing imported ({len(problems)} problem{'s' * (len(problems) != 1)})"
        super().__init__("\n".join([head, *problems]))


class TooLarge(UsageError):
    """The audio is over the size limit ([media] max_mb)."""

    http_status = 413


class NotFound(NetmgrError):
    """A named thing (zone, AP, speaker, user, program) does not exist."""

    http_status = 404


class Conflict(NetmgrError):
    """The write clashes with what is stored (duplicate name, overlapping program)."""

    http_status = 409


class MissingReference(Conflict):
    """A write names something that does not exist yet (a zone, speaker or media file).

    The request is well formed (its schema holds); the inventory does not have what it refers
    to, so it is a conflict with what is stored (409), not a malformed request (422).
    """


# ----------------------------------------------------------------------------- the caller

class Unauthorized(NetmgrError):
    """No token, or a token that is unknown or disabled."""

    http_status = 401


class Forbidden(NetmgrError):
    """The caller may not do this; the message names the zone or permission missing."""

    http_status = 403


# ----------------------------------------------------------------------------- peers

class Retryable(NetmgrError):
    """A peer did not answer or answered 'later': the same call may succeed later."""

    http_status = 503


class BadData(NetmgrError, ValueError):
    """A peer answered with something malformed; retrying will not help."""


class DecodeError(BadData):
    """The bytes are not a well-formed SNMP message of the kind expected."""


class RecordingError(BadData):
    """An snmprec recording that cannot be read (the message names the file and line)."""


class BadMessage(BadData):
    """An MQTT payload that does not follow the protocol; the message names the field."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class SnmpError(NetmgrError):
    """An SNMP exchange with one agent failed; the message names the AP and address."""

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        super().__init__(f"{target}: {message}")


class SnmpTimeout(SnmpError, Retryable):
    """The agent did not answer within the timeout after all retries."""

    def __init__(self, target: str, timeout: float, retries: int) -> None:
        super().__init__(
            target,
            f"no SNMP response within {timeout:g}s after {retries} retries; "
            "check that the agent is up, reachable and uses this community/user",
        )


class SnmpBadResponse(SnmpError, BadData):
    """The agent answered with something that is not a usable SNMP response."""


class TelemetryError(NetmgrError):
    """Writing telemetry failed; the message names the sink URL."""


class SinkRetryable(TelemetryError, Retryable):
    """The write did not happen; keep the batch and try again later."""

    def __init__(self, message: str, kind: str = "unavailable", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # unavailable | timeout | server | config
        self.retry_after = retry_after


class SinkRefused(TelemetryError, BadData):
    """The sink refused the points themselves (HTTP ``status``); resending them will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MqttLinkError(Retryable):
    """An MQTT connection failed or was refused (the simulator's client); names the broker."""


class TtsError(NetmgrError):
    """espeak-ng is missing, failed or timed out; the message says what to do."""


class GrafanaError(NetmgrError):
    """Grafana refused or failed a request; the message names the URL and the object."""


class ApiError(NetmgrError):
    """The daemon's API refused a CLI request; the message is the API's own ``error`` text."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.exit_code = exit_code_for_status(status)
        super().__init__(message)


# The API's statuses and the CLI's exit codes, from the classes above (the CLI exits as it
# would have had the error happened locally: 2 for a request that cannot be done as asked).
_BY_STATUS = {cls.http_status: cls.exit_code
              for cls in (UsageError, TooLarge, NotFound, Conflict, Unauthorized, Forbidden, Retryable)}


def exit_code_for_status(status: int) -> int:
    """The CLI exit code for an API error status."""
    return _BY_STATUS.get(status, NetmgrError.exit_code)
