"""Where alert transitions go: retained on the broker, into InfluxDB, and to webhooks.

- MQTT: `kera/{site}/alerts/{rule}/{device}`, retained, QoS 1: a dashboard or a phone app that
  subscribes sees the current state of every alert at once.
- InfluxDB: a point in the `alerts` measurement (tags site, rule, device; fields firing, level,
  value, message), through the same writer and spool as readings.
- Webhooks: a JSON POST per transition, retried with backoff; a re-firing alert within
  `cooldown_s` of the last notification is not sent again, nor is its resolution.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable

import aiohttp

from devices.contract import (
    ALERTS_MEASUREMENT,
    DEVICE_TAG,
    RULE_TAG,
    SITE_TAG,
    alert_topic,
)
from devices.site import Alerts
from ingest.alerts.engine import Transition
from ingest.reading import FieldValue
from ingest.storage.lineproto import format_line, series_key

log = logging.getLogger(__name__)


class AlertDelivery:
    def __init__(
        self,
        site: str,
        config: Alerts,
        publish: Callable[[str, bytes], None],
        write_line: Callable[[str], None],
    ) -> None:
        self._site = site
        self._config = config
        self._publish = publish
        self._write_line = write_line
        self._queue: asyncio.Queue[Transition] = asyncio.Queue(maxsize=10_000)
        self._last_sent: dict[tuple[str, str], float] = {}
        self._suppressed: set[tuple[str, str]] = set()
        self.delivered = 0
        self.failed = 0

    def notify(self, t: Transition) -> None:
        body = {"site": self._site, **t.as_dict()}
        self._publish(alert_topic(self._site, t.rule, t.device), json.dumps(body).encode())
        fields: dict[str, FieldValue] = {"firing": t.firing, "level": t.level, "message": t.message}
        if t.value is not None:
            fields["value"] = float(t.value)
        key = series_key(
            ALERTS_MEASUREMENT, {SITE_TAG: self._site, RULE_TAG: t.rule, DEVICE_TAG: t.device}
        )
        self._write_line(format_line(key, fields, t.time_ms))
        if self._config.webhooks:
            try:
                self._queue.put_nowait(t)
            except asyncio.QueueFull:
                self.failed += 1
                log.error("alert webhook queue full; %s on %s not delivered", t.rule, t.device)

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
        async with aiohttp.ClientSession() as session:
            while True:
                t = await self._queue.get()
                if not self._due(t):
                    continue
                body = json.dumps({"site": self._site, **t.as_dict()})
                for hook in self._config.webhooks:
                    await self._post(session, hook.resolved_url(), hook.timeout_s, body)

    async def _post(
        self, session: aiohttp.ClientSession, url: str, timeout_s: float, body: str
    ) -> None:
        for attempt in range(self._config.retries + 1):
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as r:
                    if r.status < 300:
                        self.delivered += 1
                        return
                    why = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            delay = min(60.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            log.warning(
                "alert webhook %s failed (%s); retry in %.1fs",
                url.split("?", maxsplit=1)[0],
                why,
                delay,
            )
            await asyncio.sleep(delay)
        self.failed += 1
        log.error(
            "alert webhook %s gave up after %d attempts", url.split("?", maxsplit=1)[0], attempt + 1
        )
