"""HTTP to push services: pooled, time-limited, never redirected, and never
to an address inside our own network.

One aiohttp session per process and per set of settings keeps keep-alive
connections to each push-service origin. The address check sits in the
resolver, so it applies to the addresses actually connected to: a push
service host whose DNS points at 127.0.0.1 is refused like the literal is.
"""
import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from . import runtime
from .validation import is_public_address, literal_ip

MAX_REASON = 300


class Refused(Exception):
    """The endpoint may not be connected to; retrying will not change that."""


@dataclass(frozen=True)
class Settings:
    allow_insecure: bool
    allowed_hosts: tuple
    connect_timeout: float
    read_timeout: float
    concurrency: int

    @classmethod
    def from_config(cls, config):
        return cls(
            allow_insecure=bool(config["ALLOW_INSECURE_ENDPOINTS"]),
            allowed_hosts=tuple(h.lower() for h in config["PUSH_ALLOWED_HOSTS"]),
            connect_timeout=float(config["PUSH_CONNECT_TIMEOUT"]),
            read_timeout=float(config["PUSH_READ_TIMEOUT"]),
            concurrency=int(config["PUSH_CONCURRENCY"]),
        )


@dataclass(frozen=True)
class Answer:
    """What one POST came to: an HTTP status, or None with the error."""

    status: int | None
    text: str
    retry_after: str | None = None
    refused: bool = False


def host_allowed(host, allowed_hosts):
    """An empty allowlist allows all; ``*.example.com`` allows its subdomains."""
    if not allowed_hosts:
        return True
    return any(
        host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern
        for pattern in allowed_hosts
    )


class PublicOnlyResolver(AbstractResolver):
    """Resolve as usual, then drop every address that is not public."""

    def __init__(self):
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        found = await self._resolver.resolve(host, port, family)
        public = [r for r in found if is_public_address(ipaddress.ip_address(r["host"]))]
        if not public:
            raise Refused(f"{host} resolves only to non-public addresses")
        return public

    async def close(self):
        await self._resolver.close()


class Transport:
    """POSTs to push services for one set of settings, from the delivery loop."""

    def __init__(self, settings):
        self.settings = settings
        self.timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout,
            connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        # Requests in flight in this process, over all concurrent sends; the
        # timeouts start once a slot is held, so waiting for one never times out.
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._session = None

    @classmethod
    def for_settings(cls, settings):
        return runtime.cached(("transport", settings), lambda: cls(settings))

    def check(self, endpoint):
        """Refuse, before connecting, what the settings never allow."""
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").rstrip(".").lower()
        if not host_allowed(host, self.settings.allowed_hosts):
            raise Refused(f"push service host {host} is not in PUSH_ALLOWED_HOSTS")
        if self.settings.allow_insecure:
            return
        if parts.scheme != "https":
            raise Refused("endpoint is not https")
        address = literal_ip(host)
        if address is not None and not is_public_address(address):
            raise Refused(f"{host} is not a public address")

    async def post(self, endpoint, body, headers):
        """One attempt to an endpoint that passed ``check``; every failure
        comes back as an ``Answer``, never raised."""
        try:
            async with self._slots, self.session().post(
                endpoint, data=body, headers=headers, allow_redirects=False, timeout=self.timeout
            ) as response:
                if response.status in (200, 201, 202):
                    await response.read()
                    return Answer(response.status, "")
                text = (await response.content.read(MAX_REASON)).decode("utf-8", "replace")
                return Answer(response.status, text.strip(), response.headers.get("Retry-After"))
        except Refused as exc:
            return Answer(None, f"refused: {exc}", refused=True)
        except asyncio.TimeoutError:
            return Answer(None, "timed out")
        except aiohttp.ClientError as exc:
            return Answer(None, f"connection error: {exc}"[:MAX_REASON])

    async def aclose(self):
        if self._session is not None:
            await self._session.close()

    def session(self):
        """The pooled session, made in the loop thread on first use."""
        if self._session is None:
            resolver = None if self.settings.allow_insecure else PublicOnlyResolver()
            connector = aiohttp.TCPConnector(
                limit=self.settings.concurrency, ttl_dns_cache=60, resolver=resolver
            )
            # No proxies from the environment, no cookies, no decompression:
            # push services need none of it, and each costs time per request.
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False, skip_auto_headers=("Accept-Encoding",),
            )
        return self._session
