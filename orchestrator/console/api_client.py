"""The console's only way to data: the service's own API, called in-process.

Every page reads and writes through `/v1`, with the logged-in user's key, over an ASGI
transport to the very app that serves the page (no socket, no second server). The console
therefore never reaches the database behind the API's back, sees exactly what the API
returns, and is refused exactly what that key is refused.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp


class ApiRefused(Exception):
    """The API said no: the status and its `detail`, shown to the user as they are."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail

    @property
    def message(self) -> str:
        if isinstance(self.detail, list):  # a 422: name the fields
            return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in self.detail)
        return str(self.detail)


class ConsoleApi:
    def __init__(self, app: ASGIApp, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console.internal", headers=headers, timeout=30
        )

    async def __aenter__(self) -> ConsoleApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Any = None) -> Any:
        return self._answer(await self._client.get(path, params=_clean(params)))

    async def post(self, path: str, json: Any = None, params: Any = None) -> Any:
        return self._answer(await self._client.post(path, json=json, params=_clean(params)))

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiRefused(response.status_code, detail)
        return response.json()


def _clean(params: Any) -> Any:
    """Drop empty filters, as a form submits them."""
    if isinstance(params, dict):
        return {k: v for k, v in params.items() if v not in (None, "")}
    if isinstance(params, list):
        return [(k, v) for k, v in params if v not in (None, "")]
    return params
