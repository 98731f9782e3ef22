"""The simulator and the ingestor as real processes, on a real Mosquitto and InfluxDB: every
reading the simulator published is in InfluxDB with the right tags, fields, values and time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devices import KINDS, Registry
from ingest.settings import IngestSettings
from tests.helpers import count, rows, wait_until

MEASUREMENT = {kind: spec.measurement for kind, spec in KINDS.items()}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


async def test_simulator_to_influxdb(settings: IngestSettings, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        KERA_MQTT_URL=settings.mqtt_url,
        KERA_INFLUX_URL=settings.influx_url,
        KERA_INFLUX_DB=settings.influx_db,
        KERA_MQTT_CLIENT_ID=settings.mqtt_client_id,
        KERA_FLUSH_INTERVAL_S="0.05",
        KERA_SPOOL_DIR=str(tmp_path / "spool"),
        KERA_HEALTH_PORT="0",
        KERA_DEV_MODE="true",
    )
    log = (tmp_path / "ingest.log").open("w")
    ingest = subprocess.Popen(
        [_bin("kera-ingest"), "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # Wait until the ingestor's subscription is live (its database appears first).
        async def subscribed() -> bool:
            return "connected to" in (tmp_path / "ingest.log").read_text()

        await wait_until(subscribed)
        record = tmp_path / "published.jsonl"
        sim = subprocess.run(
            [
                _bin("kera-sim"),
                "run",
                "--duration",
                "3",
                "--speed",
                "1200",
                "--start",
                "-2h",
                "--seed",
                "7",
                "--record",
                str(record),
                "--json",
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        summary = json.loads(sim.stdout)
        published = [json.loads(line) for line in record.read_text().splitlines()]
        telemetry = [p for p in published if p["topic"].endswith("/telemetry")]
        assert summary["published"] == len(telemetry) > 500

        registry = Registry.load()
        expected: dict[str, dict[tuple[str, int], dict[str, object]]] = {
            m: {} for m in MEASUREMENT.values()
        }
        for p in telemetry:
            device_id = p["topic"].split("/")[2]
            device = registry.get(device_id)
            assert device is not None
            values = json.loads(p["payload"])
            ts = values.pop("ts")
            if device.kind == "waste_bin":
                depth = device.depth_mm  # type: ignore[union-attr]
                values["fill_pct"] = min(100.0, max(0.0, 100 * (1 - values["distance_mm"] / depth)))
            if device.kind == "heat_meter":
                values["delta_t_k"] = values["supply_temp_c"] - values["return_temp_c"]
            expected[MEASUREMENT[device.kind]][(device_id, ts)] = values

        for measurement, want in expected.items():
            # A field every simulated point of the measurement has.
            field = next(
                iter(next(k for k in KINDS.values() if k.measurement == measurement).fields)
            )

            async def arrived(m: str = measurement, f: str = field, n: int = len(want)) -> bool:
                return await count(settings, m, f) >= n

            await wait_until(arrived, timeout=30)
            got = await rows(settings, measurement)
            assert len(got) == len(want), measurement
            for row in got:
                device = registry.get(row["device"])
                assert device is not None
                assert row["site"] == "kera"
                assert row["space"] == device.space
                if measurement == "waste_bin":
                    assert row["fraction"] == device.fraction.value  # type: ignore[union-attr]
                values = want[(row["device"], row["time"])]
                for name, value in values.items():
                    assert row[name] == pytest.approx(value), (row["device"], name)
                extra = {k for k, v in row.items() if v is not None} - set(values)
                assert extra <= {"time", "site", "space", "device", "fraction", "role"}

        # Every device announced itself online; the end of the run is a clean disconnect, with
        # no offline message and no last will, so no offline alert fires.
        status = await rows(settings, "device_status")
        assert {r["device"] for r in status} == {d.id for d in registry}
        assert {r["online"] for r in status} == {True}
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(30) == 0
        log.close()
    text = (tmp_path / "ingest.log").read_text()
    assert "rejected" not in text.split("stopped:")[0], text


async def test_empty_path_settings_write_nothing_into_the_working_directory(
    settings: IngestSettings, tmp_path: Path
) -> None:
    """`KERA_SPOOL_DIR=` and the other path settings set but empty, as compose files and shells
    leave them: the ingestor (which evaluates alerts, with its state, spool and dead letters)
    and the simulator run in an empty working directory and leave it empty; the spool is in the
    state directory under HOME."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_STATE_HOME="",
        KERA_MQTT_URL=settings.mqtt_url,
        KERA_INFLUX_URL=settings.influx_url,
        KERA_INFLUX_DB=settings.influx_db,
        KERA_MQTT_CLIENT_ID="empty-paths",
        KERA_FLUSH_INTERVAL_S="0.05",
        KERA_HEALTH_PORT="0",
        KERA_DEV_MODE="true",
        KERA_SPOOL_DIR="",
        KERA_STATE_DIR="",
        KERA_SITE_CONFIG="",
        KERA_SETTINGS_FILE="",
        KERA_ROLLUPS_RP="",
        KERA_EVALUATION_SHARD="",
    )
    log_path = tmp_path / "ingest.log"
    with log_path.open("w") as log:
        ingest = subprocess.Popen(
            [_bin("kera-ingest"), "run"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
        )
    try:

        async def subscribed() -> bool:
            if ingest.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            return "connected to" in log_path.read_text()

        await wait_until(subscribed)
        subprocess.run(
            [_bin("kera-sim"), "send", "occ-cafe", "people=4", "co2_ppm=650"],
            env=env, cwd=work, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

        async def stored() -> bool:
            return await count(settings, "occupancy", "people") == 1

        await wait_until(stored, timeout=30)
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(60) == 0, log_path.read_text()[-3000:]
    assert list(work.iterdir()) == []
    assert (home / ".local/state/kera/spool/empty-paths/LOCK").exists()
