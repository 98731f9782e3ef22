"""A field technician's helpers: send one reading as a device, watch what arrives (with the
ingestor's own verdict), and replay recorded readings.

`watch` asks the ingestor's judge (ingest.judge: router, codecs, validator) about every message it
sees, so
"the registry would reject this, and why" is the same answer the ingestor gives.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from devices.contract import telemetry_topic
from ingest.judge import Judge
from ingest.mqtt import MqttTarget
from ingest.reading import DeadLetter


def _client(target: MqttTarget, client_id: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if target.username is not None:
        c.username_pw_set(target.username, target.password)
    if target.tls:
        c.tls_set(ca_certs=target.ca_file)
    return c


def parse_assignment(text: str) -> tuple[str, float | int | bool | str]:
    """`field=value`: true/false, an integer, a number, else the text itself (which the
    validator will then refuse if the field wants a number: a technician sees why)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{text!r} is not field=value")
    low = raw.lower()
    if low in ("true", "false"):
        return name, low == "true"
    for convert in (int, float):
        try:
            return name, convert(raw)
        except ValueError:
            pass
    return name, raw


def send(
    target: MqttTarget, site: str, device_id: str, values: dict[str, Any], timeout: float = 10.0
) -> tuple[str, bytes]:
    """Publish one native reading as `device_id` (QoS 1) and wait for the broker's ack."""
    topic = telemetry_topic(site, device_id)
    payload = json.dumps(values, separators=(",", ":")).encode()
    c = _client(target, f"kera-sim-send-{device_id}-{time.monotonic_ns() % 100000}")
    c.connect(target.host, target.port)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker did not acknowledge within {timeout} s")
    finally:
        c.disconnect()
        c.loop_stop()
    return topic, payload


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    received_ms: int
    lines: list[str] | None  # what the ingestor would write
    rejected: DeadLetter | None  # or why it would refuse the message
    # Vendor fields the ingestor would ignore (not in the contract, not mapped): what a
    # technician should map, or what a firmware update added.
    ignored: tuple[str, ...] = ()


def watch(
    target: MqttTarget,
    registry: Registry,
    on_message: Callable[[Seen], None],
    device: str | None = None,
    count: int | None = None,
    timeout: float | None = None,
    max_future_s: float | None = 300.0,
    max_age_s: float | None = 30 * 86400.0,
) -> int:
    """Subscribe to every topic the site's sources listen on, and report each message with the
    ingestor's verdict. Stops after `count` messages or `timeout` seconds; returns how many."""
    judge = Judge(registry, max_future_s=max_future_s, max_age_s=max_age_s)
    done = threading.Event()
    seen = 0
    lock = threading.Lock()

    def handle(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        nonlocal seen
        if device is not None and device not in msg.topic and device.encode() not in msg.payload:
            return
        now = time.time_ns() // 1_000_000
        verdict = judge.judge(msg.topic, bytes(msg.payload), now)
        lines = list(verdict.lines) if verdict.accepted else None
        item = Seen(msg.topic, bytes(msg.payload), now, lines, verdict.rejected, verdict.ignored)
        on_message(item)
        with lock:
            seen += 1
            if count is not None and seen >= count:
                done.set()

    c = _client(target, f"kera-sim-watch-{time.monotonic_ns() % 100000}")
    c.on_message = handle
    filters = judge.filters

    def on_connect(client: paho.Client, *args: Any) -> None:
        client.subscribe([(f, 1) for f in filters])

    c.on_connect = on_connect
    c.connect(target.host, target.port)
    c.loop_start()
    try:
        done.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()
    return seen


@dataclass(frozen=True, slots=True)
class Recorded:
    topic: str
    payload: bytes
    time_ms: int | None


def read_recording(path: Path, site: str) -> Iterator[Recorded]:
    """Readings from JSON Lines (`kera-sim run --record` output, {"topic", "payload"}; or one
    reading per line, {"device", "ts", fields...}) or CSV (header `device,ts,<field>,...`)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                device = row.pop("device")
                ts = int(row.pop("ts"))
                values = dict(parse_assignment(f"{k}={v}") for k, v in row.items() if v != "")
                encoded = json.dumps({"ts": ts, **values}, separators=(",", ":")).encode()
                yield Recorded(telemetry_topic(site, device), encoded, ts)
        return
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if "topic" in obj and "payload" in obj:
                payload = obj["payload"].encode()
                try:
                    parsed: object = json.loads(payload)
                except ValueError:
                    parsed = None
                stamp = parsed.get("ts") if isinstance(parsed, dict) else None
                yield Recorded(obj["topic"], payload, stamp if isinstance(stamp, int) else None)
            elif "device" in obj:
                device = obj.pop("device")
                stamp = obj.get("ts")
                data = json.dumps(obj, separators=(",", ":")).encode()
                yield Recorded(
                    telemetry_topic(site, device), data, stamp if isinstance(stamp, int) else None
                )
            else:
                raise ValueError(f"{path}:{n}: neither topic/payload nor device")


def restamp(r: Recorded, shift_ms: int) -> Recorded:
    if r.time_ms is None or not shift_ms:
        return r
    body = json.loads(r.payload)
    body["ts"] = r.time_ms + shift_ms
    return Recorded(r.topic, json.dumps(body, separators=(",", ":")).encode(), body["ts"])


def replay(
    target: MqttTarget,
    records: list[Recorded],
    speed: float = 1.0,
    shift_ms: int = 0,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Publish recorded readings in order: at the recorded pace times `speed` (0: as fast as
    the broker takes them), their times moved by `shift_ms`. Returns how many were sent."""
    c = _client(target, f"kera-sim-replay-{time.monotonic_ns() % 100000}")
    c.max_inflight_messages_set(1000)
    c.connect(target.host, target.port)
    c.loop_start()
    sent = 0
    try:
        t0 = time.monotonic()
        first = next((r.time_ms for r in records if r.time_ms is not None), None)
        infos = []
        for r in records:
            if speed > 0 and first is not None and r.time_ms is not None:
                wait = t0 + (r.time_ms - first) / 1000 / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            shifted = restamp(r, shift_ms)
            infos.append(c.publish(shifted.topic, shifted.payload, qos=1))
            sent += 1
            if on_sent is not None:
                on_sent(sent)
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()
    return sent
