"""A pool of one-connection httpx clients for the HTTP channels.

httpcore's connection pool polls every pooled socket on each request (encode/httpcore#928), so one
client with 16 keep-alive connections delivers at well under half the rate of 16 clients with one
connection each. The retry stage already bounds how many deliveries a channel has in flight, so this
pool only lends an idle client, or makes one when none is idle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx


class HttpClients:
    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._idle:
            client = self._idle.pop()
        else:
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), **self._options)
            self._all.append(client)
        try:
            yield client
        finally:
            self._idle.append(client)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()
        self._all.clear()
        self._idle.clear()
