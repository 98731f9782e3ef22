"""Serial sources: Modbus RTU meters, P1/HAN telegrams and line-based radio concentrators,
read beside the MQTT consumer in the same process and event loop (docs/serial.md).

Their readings take the same road as MQTT ones: `Pipeline.handle_decoded` (or `handle`, for
concentrator lines in the native format) validates them against the registry and the contract,
and the batcher and writer store them. With `republish`, a link's readings are published on the
device's native telemetry topic instead, and come back in through the broker like any device's.
Link-level trouble (unplugged adapter, garbage, cut frames, bad CRCs, timeouts) is counted per
link and reason in `Stats.serial`, exported as `kera_ingest_serial_events_total`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from typing import Any
from zoneinfo import ZoneInfo

from devices import Site
from devices.contract import status_topic, telemetry_topic
from devices.site import LinePort, ModbusBus, P1Port, SerialPort
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter, Decoded
from ingest.serial._stream import SerialStream
from ingest.serial.lines import LineFramer

Deliver = Callable[[list[str] | DeadLetter], None]
Publish = Callable[[str, bytes], None]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SerialSources:
    def __init__(
        self, site: Site, pipeline: Pipeline, stats: Stats, deliver: Deliver, publish: Publish
    ) -> None:
        self._site = site.site
        self._tz = ZoneInfo(site.timezone)
        self._links = site.serial
        self._pipeline = pipeline
        self._stats = stats
        self._deliver = deliver
        self._publish = publish
        self.streams: list[SerialStream] = []

    def jobs(self) -> list[Coroutine[Any, Any, None]]:
        """One long-running coroutine per link."""
        out: list[Coroutine[Any, Any, None]] = []
        for link in self._links:
            counts = self._stats.serial[link.name]
            if isinstance(link, ModbusBus):
                # pymodbus and dsmr-parser are imported only for a site with such links: they
                # are 12 MB of the ingestor's memory (docs/performance.md), unused elsewhere.
                from ingest.serial.modbus import ModbusPoller

                out.append(ModbusPoller(link, self._emitter(link), counts).run())
            elif isinstance(link, P1Port):
                out.append(self._stream(link, self._p1_reader(link)).run())
            elif isinstance(link, LinePort):
                out.append(self._stream(link, self._line_reader(link)).run())
        return out

    def _stream(self, link: SerialPort, on_bytes: Callable[[bytes], None]) -> SerialStream:
        stream = SerialStream(link, on_bytes, self._stats)
        self.streams.append(stream)
        return stream

    def _emitter(self, link: SerialPort) -> Callable[..., None]:
        origin = f"serial:{link.name}"

        def emit(decoded: Decoded, raw: bytes | None = None) -> None:
            assert decoded.device_id is not None
            if link.republish:
                if decoded.status:
                    online = bool(decoded.values.get("online"))
                    topic = status_topic(self._site, decoded.device_id)
                    self._publish(topic, b"online" if online else b"offline")
                else:
                    body = dict(decoded.values)
                    if decoded.time_ms is not None:
                        body["ts"] = decoded.time_ms
                    payload = json.dumps(body, separators=(",", ":")).encode()
                    self._publish(telemetry_topic(self._site, decoded.device_id), payload)
                return
            raw = raw or json.dumps(decoded.values).encode()
            self._deliver(self._pipeline.handle_decoded([decoded], origin, _now_ms(), raw))

        return emit

    def _p1_reader(self, link: P1Port) -> Callable[[bytes], None]:
        from ingest.serial import p1  # for P1 sites only, as above

        counts = self._stats.serial[link.name]
        framer = p1.P1Framer(counts)
        emit = self._emitter(link)

        def on_bytes(data: bytes) -> None:
            for text in framer.feed(data):
                decoded = p1.parse(text, link.spec, link.device, counts, self._tz)
                if decoded is not None:
                    emit(decoded, text.encode())

        return on_bytes

    def _line_reader(self, link: LinePort) -> Callable[[bytes], None]:
        framer = LineFramer(self._stats.serial[link.name], link.max_line_bytes)

        def on_bytes(data: bytes) -> None:
            for device, payload in framer.feed(data):
                topic = telemetry_topic(self._site, device)
                if link.republish:
                    self._publish(topic, payload)
                else:
                    self._deliver(self._pipeline.handle(topic, payload, _now_ms()))

        return on_bytes
