"""The CLI's HTTP client of the daemon's API."""

from __future__ import annotations

from typing import Any

import httpx

from netmgr.errors import ApiError, NetmgrError, UsageError


class ApiClient:
    """A thin synchronous client: the CLI does one request at a time."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        """JSON of the answer (``raw``: its text); ApiError with the server's message on 4xx/5xx."""
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise NetmgrError(
                f"cannot reach the netmgr API at {self.server}: is `netmgr run` running there? "
                "(set --server or NETMGR_SERVER, or run `netmgr login`)"
            ) from None
        except httpx.TimeoutException:
            raise NetmgrError(f"the netmgr API at {self.server} did not answer in time") from None
        if r.status_code == 401 and not self.token:
            raise UsageError(
                "no API token: pass --token, set NETMGR_TOKEN, or run `netmgr login`"
            )
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("error") or str(body.get("detail"))
                detail = body.get("detail")
                if isinstance(detail, list) and all(isinstance(d, str) for d in detail):
                    message += "".join(f"\n  {d}" for d in detail)  # e.g. an import's line problems
            except ValueError:
                message = r.text.strip() or r.reason_phrase
            first, _, rest = message.partition("\n")
            raise ApiError(r.status_code, f"{first} (HTTP {r.status_code})" + (f"\n{rest}" if rest else ""))
        if r.status_code == 204 or not r.content:
            return None
        return r.text if raw else r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
