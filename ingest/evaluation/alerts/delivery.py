"""Where alert transitions go: retained on the broker, into InfluxDB, and to webhooks.

- MQTT: `kera/{site}/alerts/{rule}/{device}`, retained, QoS 1: a dashboard or a phone app that
  subscribes sees the current state of every alert at once.
- InfluxDB: a point in the `alerts` measurement (tags site, rule, device; fields firing, level,
  value, message), through the same writer and spool as readings.
- Webhooks: a JSON POST per transition, retried with backoff; a re-firing alert within
  `cooldown_s` of the last notification is not sent again, nor is its resolution. Each hook has
  its own queue and task, so a hook that hangs delays only itself. A site file names the URL, so
  what it can reach is bounded (devices.site.Webhook): http(s) only, only the listed `${NAME}`
  variables, no redirects followed, and no loopback, link-local or private address (checked on
  the addresses the name resolves to, which are the ones connected to) unless `allow_private`.
  Logs show a hook's scheme and host only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from devices.contract import (
    ALERTS_MEASUREMENT,
    DEVICE_TAG,
    RULE_TAG,
    SITE_TAG,
    alert_topic,
)
from devices.site import Alerts, Webhook, redacted_url
from ingest.backoff import Backoff
from ingest.evaluation.alerts.engine import Transition
from ingest.reading import FieldValue
from ingest.storage.batch import Batch
from ingest.storage.lineproto import format_line, series_key
from ingest.storage.ports import BatchSink, Publisher

log = logging.getLogger(__name__)

# A failed webhook POST is tried again after 0.5 s, then twice as long each time, up to a minute
# (before jitter, ingest.backoff), `retries` times (the site file's alerts.retries).
WEBHOOK_BACKOFF_S = 0.5
WEBHOOK_BACKOFF_MAX_S = 60.0


def public_address(address: str) -> bool:
    """Whether a webhook may reach `address` without `allow_private`."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class Refused(Exception):
    """A delivery that no retry can make succeed (a private target, a redirect)."""


class _PublicOnly(AbstractResolver):
    """Resolves as usual, keeping only public addresses: aiohttp connects to what this returns,
    so a name that points inside (or is changed to, between two lookups) is never reached."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if public_address(r["host"])]
        if not public:
            # Not an OSError, which aiohttp would turn into a retryable DNS error.
            raise Refused(
                f"{host} resolves only to loopback, link-local or private addresses; set "
                "allow_private: true on the hook if that receiver is meant"
            )
        return public

    async def close(self) -> None:
        await self._inner.close()


class AlertDelivery:
    def __init__(
        self,
        site: str,
        config: Alerts,
        publisher: Publisher,
        sink: BatchSink,
    ) -> None:
        self._site = site
        self._config = config
        self._publisher = publisher
        self._sink = sink
        # One queue per hook: a hook that hangs holds up only its own transitions.
        self._queues: list[asyncio.Queue[str]] = [
            asyncio.Queue(maxsize=10_000) for _ in config.webhooks
        ]
        self._last_sent: dict[tuple[str, str], float] = {}
        self._suppressed: set[tuple[str, str]] = set()
        self.delivered = 0
        self.failed = 0

    def notify(self, t: Transition) -> None:
        body = {"site": self._site, **t.as_dict()}
        # Retained: a dashboard or technician subscribing later sees each alert's state.
        self._publisher.publish(
            alert_topic(self._site, t.rule, t.device), json.dumps(body).encode(), 1, True
        )
        fields: dict[str, FieldValue] = {"firing": t.firing, "level": t.level, "message": t.message}
        if t.value is not None:
            fields["value"] = float(t.value)
        key = series_key(
            ALERTS_MEASUREMENT, {SITE_TAG: self._site, RULE_TAG: t.rule, DEVICE_TAG: t.device}
        )
        self._sink.submit(Batch([format_line(key, fields, t.time_ms)]))
        if not self._queues or not self._due(t):
            return
        text = json.dumps(body)
        for hook, queue in zip(self._config.webhooks, self._queues, strict=True):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self.failed += 1
                log.error(
                    "alert webhook %s: queue full; %s on %s not delivered",
                    hook.shown(), t.rule, t.device,
                )  # fmt: skip

    def _due(self, t: Transition) -> bool:
        key = (t.rule, t.device)
        if t.firing:
            last = self._last_sent.get(key)
            if last is not None and time.monotonic() - last < self._config.cooldown_s:
                self._suppressed.add(key)
                return False
            self._suppressed.discard(key)
            self._last_sent[key] = time.monotonic()
            return True
        # A resolution is sent only if its firing was.
        return key not in self._suppressed

    async def run(self) -> None:
        """Deliver to every hook, each in its own task, until cancelled."""
        hooks = zip(self._config.webhooks, self._queues, strict=True)
        await asyncio.gather(*(self._deliver(hook, queue) for hook, queue in hooks))

    async def _deliver(self, hook: Webhook, queue: asyncio.Queue[str]) -> None:
        connector = aiohttp.TCPConnector(resolver=None if hook.allow_private else _PublicOnly())
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                body = await queue.get()
                await self._post(session, hook, body)

    async def _post(self, session: aiohttp.ClientSession, hook: Webhook, body: str) -> None:
        shown = hook.shown()
        backoff = Backoff(WEBHOOK_BACKOFF_S, WEBHOOK_BACKOFF_MAX_S)
        for _ in range(self._config.retries + 1):
            try:
                why = await self._attempt(session, hook, body)
            except KeyError as exc:
                self.failed += 1
                log.error("alert webhook %s: environment variable %s is not set", shown, exc)
                return
            except Refused as exc:
                self.failed += 1
                log.error("alert webhook %s refused: %s", shown, exc)
                return
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                why = _reason(exc)
            if why is None:
                self.delivered += 1
                return
            delay = backoff.next()
            log.warning("alert webhook %s failed (%s); retry in %.1fs", shown, why, delay)
            await asyncio.sleep(delay)
        self.failed += 1
        log.error("alert webhook %s gave up after %d attempts", shown, backoff.attempt)

    @staticmethod
    async def _attempt(session: aiohttp.ClientSession, hook: Webhook, body: str) -> str | None:
        """None once delivered, else why not (worth a retry); raises Refused when no retry can
        help."""
        url = URL(hook.resolved_url(), encoded=False)
        host = (url.raw_host or "").strip("[]")
        if not hook.allow_private and _literal(host) and not public_address(host):
            raise Refused(f"{host} is a loopback, link-local or private address")
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=hook.timeout_s),
            allow_redirects=False,
        ) as r:
            if r.status < 300:
                return None
            if r.status < 400:
                raise Refused(f"HTTP {r.status}: redirects are not followed")
            return f"HTTP {r.status}"


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    """An error for the log, without the URL that aiohttp puts in some of its messages."""
    text = " ".join(
        redacted_url(word.strip("'\"()<>,")) if "://" in word else word for word in str(exc).split()
    )
    return f"{type(exc).__name__}: {text}"[:300]
