"""Alert scenarios driven through the simulator's commissioning helper (`kera-sim send`'s code)
and device status, against a real ingestor, Mosquitto, InfluxDB and a real local webhook
receiver: each transition arrives once at the webhook, retained on the broker, and in InfluxDB."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.site import default_site_text
from devstack.services import Mosquitto
from firmware_sim.commission import send
from ingest.mqtt import parse_mqtt_url
from ingest.settings import IngestSettings
from tests.helpers import HookReceiver, hook_receiver, rows, running_ingestor, wait_until

# Run again with the clock 400 days ahead by scripts/test (alert timing and device_offline).
pytestmark = pytest.mark.shifted_clock

# The hook's token, made per run (the site file names only the variable).
HOOK_TOKEN = secrets.token_urlsafe(16)


def _scenario_site(tmp_path: Path, url: str) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        default_site_text()
        + f"""
alerts:
  webhooks:
    - url: "{url}/hook?token=${{KERA_TEST_HOOK_TOKEN}}"
      env: [KERA_TEST_HOOK_TOKEN]
      allow_private: true  # the test's receiver is on loopback
  cooldown_s: 0
  retries: 3
"""
    )
    return site


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HookReceiver, str]]:
    async with hook_receiver() as (r, url):
        yield r, url


async def test_bin_co2_and_offline_scenarios(
    settings: IngestSettings,
    broker: Mosquitto,
    tmp_path: Path,
    receiver: tuple[HookReceiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec, url = receiver
    monkeypatch.setenv("KERA_TEST_HOOK_TOKEN", HOOK_TOKEN)
    settings = settings.model_copy(update={"site_config": _scenario_site(tmp_path, url)})
    target = parse_mqtt_url(settings.mqtt_url)
    retained: dict[str, dict[str, Any]] = {}
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="alert-watch")
    watcher.on_message = lambda c, u, m: retained.__setitem__(m.topic, json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("kera/kera/alerts/#", qos=1)
    watcher.loop_start()
    rec.fail_first = 1  # the first delivery is retried
    now = int(time.time() * 1000)
    try:
        async with running_ingestor(settings) as ingestor:
            # A bin filling past 80 % and 95 %, then emptied (clears under 60 %).
            for i, distance in enumerate((500, 150, 100, 40, 550, 900)):  # depth 1000 mm
                send(target, "kera", "bin-bio-1", {"ts": now - 60_000 + i * 1000,
                                                   "distance_mm": distance})  # fmt: skip
            # A full room: CO2 over 1200 ppm must hold 15 minutes before it fires.
            t0 = now - 30 * 60_000
            for minutes, co2 in ((0, 1300), (10, 1350), (16, 1400), (20, 1250), (24, 900)):
                send(target, "kera", "occ-meeting-1", {"ts": t0 + minutes * 60_000,
                                                       "people": 12, "co2_ppm": co2})  # fmt: skip
            # A device drops off the network (its last will), then comes back.
            pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="will-pub")
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            pub.publish(
                "kera/kera/occ-cafe/status", b"offline", qos=1, retain=True
            ).wait_for_publish()
            await asyncio.sleep(0.5)
            pub.publish(
                "kera/kera/occ-cafe/status", b"online", qos=1, retain=True
            ).wait_for_publish()
            pub.disconnect()
            pub.loop_stop()

            expected = [
                ("bin_fill", "bin-bio-1", True, "warning"),
                ("bin_fill", "bin-bio-1", True, "critical"),
                ("bin_fill", "bin-bio-1", False, "ok"),
                ("co2_high", "occ-meeting-1", True, "warning"),
                ("co2_high", "occ-meeting-1", False, "ok"),
                ("device_offline", "occ-cafe", True, "critical"),
                ("device_offline", "occ-cafe", False, "ok"),
            ]

            def delivered() -> bool:
                return len(rec.events) >= len(expected)

            await wait_until(delivered, timeout=30)
            await asyncio.sleep(1.0)  # nothing more may arrive
            assert sorted(rec.seen()) == sorted(expected)
            for rule in ("bin_fill", "co2_high", "device_offline"):
                order = [s for s in rec.seen() if s[0] == rule]
                assert order == [s for s in expected if s[0] == rule]  # in order, once each
            assert not ingestor.alerts.firing()  # type: ignore[union-attr]
    finally:
        watcher.disconnect()
        watcher.loop_stop()

    # Retained on the broker: the last state of each alert.
    assert retained["kera/kera/alerts/bin_fill/bin-bio-1"]["firing"] is False
    assert retained["kera/kera/alerts/device_offline/occ-cafe"]["level"] == "ok"
    # In InfluxDB, once each.
    points = await rows(settings, "alerts")
    got = sorted((p["rule"], p["device"], p["firing"], p["level"]) for p in points)
    assert got == sorted(expected)
    co2_fired = [p for p in points if p["rule"] == "co2_high" and p["firing"]]
    assert co2_fired[0]["time"] == t0 + 16 * 60_000  # fired once it had held 15 minutes


async def test_alert_state_survives_a_restart(
    settings: IngestSettings,
    broker: Mosquitto,
    tmp_path: Path,
    receiver: tuple[HookReceiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERA_TEST_HOOK_TOKEN", HOOK_TOKEN)
    rec, url = receiver
    settings = settings.model_copy(update={"site_config": _scenario_site(tmp_path, url)})
    target = parse_mqtt_url(settings.mqtt_url)
    now = int(time.time() * 1000)
    async with running_ingestor(settings):
        send(target, "kera", "bin-glass-1", {"ts": now - 5000, "distance_mm": 30})  # 97 %

        def fired() -> bool:
            return len(rec.events) == 1

        await wait_until(fired, timeout=20)
    async with running_ingestor(settings) as again:
        assert again.alerts is not None
        assert again.alerts.firing() == [("bin_fill", "bin-glass-1", "critical")]
        send(target, "kera", "bin-glass-1", {"ts": now - 4000, "distance_mm": 20})  # still full
        send(target, "kera", "bin-glass-1", {"ts": now - 3000, "distance_mm": 900})  # emptied

        def resolved() -> bool:
            return len(rec.events) == 2

        await wait_until(resolved, timeout=20)
        await asyncio.sleep(0.5)
    assert rec.seen() == [
        ("bin_fill", "bin-glass-1", True, "critical"),
        ("bin_fill", "bin-glass-1", False, "ok"),
    ]
    assert all(HOOK_TOKEN not in json.dumps(e) for e in rec.events)
