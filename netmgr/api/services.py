"""What the API asks of the daemon's services, as typed interfaces, and the one FastAPI
dependency that hands them to routes (``Svc``). A route never reaches into a service's
attributes: it calls these methods, so a service can change inside without breaking the API.

In the daemon the services come from its context (netmgr.api.service sets
``app.state.services``); a test or a bare ``create_app`` has none, and every getter says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Request

from netmgr.errors import Retryable

if TYPE_CHECKING:
    from netmgr.radio.commands import Delivery, TrackedCommand


class RadioApi(Protocol):
    """The radio service (netmgr.radio.service.RadioService) as the API uses it."""

    def node_status(self, node_id: str) -> dict[str, Any] | None:
        """The node's live status (status, since, last_seen, telemetry, ...), None if never heard."""

    def pending_for(self, node_id: str) -> list[tuple[TrackedCommand, Delivery]]:
        """Commands in flight that target the node (not yet flushed to the store), with its delivery."""

    def command(self, command_id: str) -> TrackedCommand | None:
        """A command still tracked in memory."""

    async def issue(self, method: str, params: dict[str, Any] | None = None, *, nodes: list[str],
                    zones: list[str], priority: str, ttl: float | None, issued_by: str) -> TrackedCommand:
        """Store and publish a command (refused, and never stored, if it cannot be published)."""

    async def wait(self, command_id: str, until: Callable[[TrackedCommand], bool],
                   timeout: float) -> TrackedCommand:
        """The command once ``until`` holds for it or ``timeout`` passed."""

    async def reset_session(self, node_id: str) -> int:
        """Forget the node's session counter; returns the one forgotten (-1: none)."""

    def inventory_changed(self) -> None:
        """Re-read the speakers from the store soon."""


class PollerApi(Protocol):
    """The AP poller (netmgr.snmp.poller.PollerService) as the API uses it."""

    def inventory_changed(self) -> None:
        """Re-read the APs from the store soon."""


class SchedulerApi(Protocol):
    """The broadcast scheduler (netmgr.broadcast.service.SchedulerService) as the API uses it."""

    def changed(self) -> None:
        """Programs changed in the store: plan again now."""

    def media_in_use(self, media_id: str) -> bool | str:
        """Whether a running or upcoming occurrence plays the media (a str names it)."""


@dataclass(frozen=True, slots=True)
class Services:
    """The daemon's services a route may use; each None when it does not run in this daemon."""

    radio: RadioApi | None = None
    poller: PollerApi | None = None
    scheduler: SchedulerApi | None = None

    @classmethod
    def of(cls, by_name: Mapping[str, Any]) -> Services:
        return cls(radio=by_name.get("radio"), poller=by_name.get("poller"),
                   scheduler=by_name.get("scheduler"))

    def require_radio(self) -> RadioApi:
        """The radio service, or Retryable (503) naming what to do."""
        if self.radio is None:
            raise Retryable("the radio service is not running in this daemon (is [mqtt] enabled = true?)")
        return self.radio

    def inventory_changed(self, which: str) -> None:
        """Tell the service that holds ``which`` ("speakers" or "aps") to re-read it."""
        svc = self.radio if which == "speakers" else self.poller
        if svc is not None:
            svc.inventory_changed()

    def media_in_use(self, media_id: str) -> bool | str:
        return self.scheduler.media_in_use(media_id) if self.scheduler is not None else False

    def programs_changed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.changed()


def services(request: Request) -> Services:
    """FastAPI dependency: the services of the daemon serving this request."""
    return Services.of(getattr(request.app.state, "services", None) or {})


Svc = Annotated[Services, Depends(services)]
