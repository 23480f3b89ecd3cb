"""HTTP for the channels that speak it directly: httpx transports of one connection each.

Two measured costs shape this. httpcore's connection pool polls every pooled socket on each request
(encode/httpcore#928), so one pool of 16 keep-alive connections delivers at well under half the rate
of 16 pools of one. And the client layer above the transport (URL and header merging, cookies, the
auth and redirect flows, none of which a webhook uses) costs a quarter of each request. The retry
stage already bounds how many deliveries a channel has in flight, so this only lends an idle
transport, or makes one when none is idle.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

import httpx


class HttpSender:
    """POSTs to one URL, each request on an idle one-connection transport (or a new one)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = url
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._proxy = _environment_proxy(httpx.URL(url))
        # One TLS context for all: building one loads the CA bundle, which costs milliseconds.
        self._tls = httpx.create_ssl_context()
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._all: list[httpx.AsyncHTTPTransport] = []
        # One made now: httpx imports httpcore (and trio, when installed) with the first transport, ~50 ms
        # that would otherwise stall the event loop under the first notification.
        self._idle.append(self._new())

    async def post(self, *, content: bytes, headers: Mapping[str, str], url: str | None = None) -> httpx.Response:
        """POST and read the whole answer; raises httpx's transport errors (timeouts, refused, ...).

        ``url``: another address on the same host (Opsgenie closes an alert at a path of its own)."""
        request = httpx.Request("POST", url or self._url, content=content, headers=headers,
                                extensions={"timeout": self._timeout})
        transport = self._idle.pop() if self._idle else self._new()
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
            return response
        finally:
            self._idle.append(transport)

    def _new(self) -> httpx.AsyncHTTPTransport:
        transport = httpx.AsyncHTTPTransport(verify=self._tls, proxy=self._proxy,
                                             limits=httpx.Limits(max_connections=1))
        self._all.append(transport)
        return transport

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()
        self._all.clear()
        self._idle.clear()


def _environment_proxy(url: httpx.URL) -> str | None:
    """``HTTP(S)_PROXY`` / ``NO_PROXY`` as an httpx client with ``trust_env`` would honour them."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy is None or urllib.request.proxy_bypass(url.host):
        return None
    return proxy
