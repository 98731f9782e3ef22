"""Serial sources on real pseudo-terminal pairs: a real pymodbus RTU server as the meter bus, P1
telegrams and a concentrator written through pyserial, the ingestor reading them into the real
InfluxDB. Links are cut and come back; bad frames are counted and skipped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.site import default_site_text
from firmware_sim.serial import LineSim, ModbusBusSim, P1Sim, PtyLink
from ingest.service import Ingestor
from ingest.settings import IngestSettings
from tests.helpers import count, query, rows, running_ingestor, wait_until


def site_with(tmp_path: Path, serial_yaml: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(default_site_text() + "\nserial:\n" + serial_yaml)
    return path


@pytest.fixture
def link(tmp_path: Path) -> Iterator[PtyLink]:
    pty = PtyLink(tmp_path / "ttyKERA0")
    yield pty
    pty.close()


async def test_modbus_meters_poll_into_influxdb_and_survive_a_cut_link(
    settings: IngestSettings, link: PtyLink, tmp_path: Path
) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    site = site_with(
        tmp_path,
        f"""  - name: rs485-1
    framing: modbus_rtu
    port: {link.path}
    baudrate: 9600
    timeout_s: 0.3
    retries: 0
    offline_after: 2
    meters:
      - {{device: em-cafe-kitchen, unit: 1, model: sdm630, interval_s: 0.5}}
      - {{device: em-solar, unit: 2, model: sdm120, interval_s: 0.5}}
""",
    )
    settings = settings.model_copy(update={"site_config": site})
    bus = ModbusBusSim(link.device_port, [(1, "sdm630", "x"), (2, "sdm120", "y")])
    stop = asyncio.Event()
    server = asyncio.create_task(bus.run(update_s=3600, stop=stop))  # values hold still
    try:
        async with running_ingestor(settings) as ingestor:

            async def both() -> bool:
                got = await rows(settings, "energy")
                return {r["device"] for r in got} >= {"em-cafe-kitchen", "em-solar"}

            await wait_until(both, timeout=30)
            got = {r["device"]: r for r in await rows(settings, "energy")}
            three, one = got["em-cafe-kitchen"], got["em-solar"]
            want3, want1 = bus.values[1], bus.values[2]
            for name in ("power_w", "energy_kwh", "frequency_hz", "voltage_l2_v", "current_l3_a"):
                assert three[name] == pytest.approx(want3[name], rel=1e-6), name
            assert three["voltage_v"] == pytest.approx(
                sum(want3[f"voltage_l{n}_v"] for n in (1, 2, 3)) / 3, abs=0.01
            )
            for name in ("power_w", "energy_kwh", "voltage_v", "current_a"):
                assert one[name] == pytest.approx(want1[name], rel=1e-6), name

            link.unplug()  # the USB adapter is pulled

            async def offline() -> bool:
                status = await rows(settings, "device_status")
                return {r["device"] for r in status if r["online"] is False} >= {
                    "em-cafe-kitchen",
                    "em-solar",
                }

            await wait_until(offline, timeout=30)
            before = await count(settings, "energy", "power_w")
            link.plug()

            async def back() -> bool:
                status = await rows(settings, "device_status")
                online_again = {r["device"] for r in status if r["online"] is True}
                return (
                    online_again >= {"em-cafe-kitchen", "em-solar"}
                    and await count(settings, "energy", "power_w") > before + 2
                )

            await wait_until(back, timeout=60)
            events = ingestor.stats.serial["rs485-1"]
            assert events["polls"] > 4
            assert events["timeout"] + events["modbus_error"] + events["open_failed"] > 0
            assert ingestor.ready.is_set()  # MQTT side untouched
    finally:
        stop.set()
        await server


async def test_p1_telegrams_land_and_bad_crc_is_rejected(
    settings: IngestSettings, link: PtyLink, tmp_path: Path
) -> None:
    site = site_with(
        tmp_path,
        f"""  - name: han
    framing: p1
    port: {link.path}
    device: em-main
""",
    )
    settings = settings.model_copy(update={"site_config": site})
    async with running_ingestor(settings) as ingestor:
        await wait_until(_opened(ingestor, "han"), timeout=20)
        sim = P1Sim(link.device_port, bad_crc=0.0)
        try:
            start = int(time.time() * 1000) - 60_000
            for i in range(6):
                sim.bad_crc = 1.0 if i in (2, 4) else 0.0
                sim.send_one(start + i * 10_000)
                await asyncio.sleep(0.05)
        finally:
            sim.close()
        good = [(t, v) for t, v, ok in sim.sent if ok]
        assert len(good) == 4

        async def landed() -> bool:
            return await count(settings, "energy", "energy_kwh") == len(good)

        await wait_until(landed, timeout=20)
        events = ingestor.stats.serial["han"]
        assert events["bad_crc"] == 2
        assert events["telegrams"] == 4
    got = sorted((r["time"], r) for r in await rows(settings, "energy"))
    # The meter's clock has a one-second resolution.
    for (t, r), (sent_t, v) in zip(got, good, strict=True):
        assert t == sent_t // 1000 * 1000
        assert r["device"] == "em-main"
        assert r["energy_kwh"] == pytest.approx(v["energy_kwh"], abs=0.001)
        assert r["power_w"] == pytest.approx(v["power_w"], abs=1.0)
        assert r["voltage_l1_v"] == pytest.approx(v["voltage_l1_v"], abs=0.05)
        assert r["current_l2_a"] == pytest.approx(v["current_l2_a"], abs=0.05)


async def test_concentrator_lines_with_faults_and_an_unplug(
    settings: IngestSettings, link: PtyLink, tmp_path: Path
) -> None:
    site = site_with(
        tmp_path,
        f"""  - name: radio-gw
    framing: lines
    port: {link.path}
""",
    )
    settings = settings.model_copy(update={"site_config": site})
    sim = LineSim(
        link,
        [("bin-bio-1", "waste_bin"), ("occ-cafe", "occupancy"), ("em-workshop", "energy_meter")],
        interval_s=0.05,
        noise=0.1,
        cut=0.05,
        bad_checksum=0.05,
        seed=3,
    )
    async with running_ingestor(settings) as ingestor:
        opened = _opened(ingestor, "radio-gw")
        await wait_until(opened, timeout=20)
        for _ in range(40):
            sim.send_round()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        # The adapter is pulled and plugged back; what it sends once reopened must land too.
        link.unplug()
        await asyncio.sleep(1.5)
        link.plug()
        await wait_until(opened, timeout=30)
        for _ in range(40):
            sim.send_round()
            await asyncio.sleep(0.02)
        sim.close()
        by_measurement = {"waste_bin": 0, "occupancy": 0, "energy": 0}
        kind_to_m = {"bin-bio-1": "waste_bin", "occ-cafe": "occupancy", "em-workshop": "energy"}
        for obj in sim.sent:
            by_measurement[kind_to_m[str(obj["device"])]] += 1

        async def landed() -> bool:
            got = {
                m: await count(settings, m, f)
                for m, f in (
                    ("waste_bin", "fill_pct"),
                    ("occupancy", "people"),
                    ("energy", "power_w"),
                )
            }
            return got == by_measurement

        await wait_until(landed, timeout=20)
        events = ingestor.stats.serial["radio-gw"]
    assert link.counts["unplugged"] == 1
    assert events["disconnects"] == 1
    assert sim.counts["bad_checksum"]
    assert sim.counts["cut"]
    assert sim.counts["noise"]
    # Every good line and nothing else was read as a reading; each damaged one was counted
    # (a cut line runs into the next, and the two fail as one).
    assert events["lines"] == len(sim.sent)
    assert events["bad_checksum"] >= sim.counts["bad_checksum"] - sim.counts["cut"]
    assert events["bad_frame"] > 0
    assert events["bad_checksum"] > 0
    series = await query(settings, 'SELECT count("fill_pct") FROM "waste_bin"')
    assert series[0]["values"][0][1] == by_measurement["waste_bin"]


def _opened(ingestor: Ingestor, name: str) -> Callable[[], bool]:
    def check() -> bool:
        return ingestor.serial is not None and any(
            s.connected for s in ingestor.serial.streams if s.link.name == name
        )

    return check


async def test_republished_serial_readings_go_through_the_broker(
    settings: IngestSettings, link: PtyLink, tmp_path: Path
) -> None:
    site = site_with(
        tmp_path,
        f"""  - name: radio-gw
    framing: lines
    port: {link.path}
    republish: true
""",
    )
    settings = settings.model_copy(update={"site_config": site})
    seen: list[str] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="serial-watch")
    watcher.on_message = lambda c, u, m: seen.append(m.topic)
    watcher.connect("127.0.0.1", int(settings.mqtt_url.rsplit(":", 1)[1]))
    watcher.subscribe("kera/kera/+/telemetry", qos=1)
    watcher.loop_start()
    sim = LineSim(link, [("occ-cafe", "occupancy")], seed=5)
    try:
        async with running_ingestor(settings) as ingestor:
            await wait_until(_opened(ingestor, "radio-gw"), timeout=20)
            for _ in range(10):
                sim.send_round()
                await asyncio.sleep(0.05)

            async def landed() -> bool:
                return await count(settings, "occupancy", "people") == 10

            await wait_until(landed, timeout=20)
    finally:
        sim.close()
        watcher.disconnect()
        watcher.loop_stop()
    assert seen.count("kera/kera/occ-cafe/telemetry") == 10
