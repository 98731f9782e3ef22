"""The README's try-it path, as a newcomer runs it: `kera-stack up`, then every operator and
technician command in order against it, each as its own process with only the stack's export
lines for settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from devstack.services import free_port
from ingest.storage.query import influxql

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def _run(env: dict[str, str], *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=env, cwd=ROOT, check=False, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


async def _newest(url: str, what: str) -> int:
    series = await influxql(url, f"SELECT {what}", "kera")
    return int(series[0]["values"][0][0]) if series else 0


async def test_every_readme_command_against_the_local_stack(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = dict(os.environ, KERA_STATE_DIR=str(state))
    stack = subprocess.Popen(
        [str(BIN / "kera-stack"), "up", "--json", "--for", "600",
         "--mqtt-port", str(free_port()), "--influx-port", str(free_port())],
        env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    ingest = None
    ingest_log = (tmp_path / "ingest.log").open("w")
    try:
        assert stack.stdout is not None
        started = json.loads(stack.stdout.readline())
        env = dict(base)
        for line in started["exports"]:
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                env[name] = value
        assert env["KERA_DEV_MODE"] == "true"
        env["KERA_HEALTH_PORT"] = str(free_port())
        ingest = subprocess.Popen(
            [str(BIN / "kera-ingest"), "run"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=ingest_log,
        )  # fmt: skip
        _run(env, "kera-ingest", "check-site", "devices/sites/kera.yaml")
        watcher = subprocess.Popen(
            [str(BIN / "kera-sim"), "watch", "occ-cafe", "--count", "1", "--timeout", "60",
             "--json"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # The watcher subscribes in its own time: send until it has seen a reading.
        for _ in range(30):
            sent = _run(env, "kera-sim", "send", "occ-cafe", "people=4", "co2_ppm=650")
            assert "the ingestor will accept it" in sent.stderr
            if watcher.poll() is not None:
                break
            await asyncio.sleep(1)
        out, err = watcher.communicate(timeout=90)
        assert watcher.returncode == 0, err
        assert json.loads(out.splitlines()[0])["accepted"] is True

        _run(env, "kera-sim", "backfill", "--days", "1", "--quiet")
        # The rollups catch up within a flush or two (every 30 s) of the last reading.
        url = env["KERA_INFLUX_URL"]
        deadline = time.monotonic() + 180
        while True:
            reading = await _newest(url, 'last("energy_kwh") FROM "energy"')
            rolled = await _newest(url, 'last("kwh") FROM "energy_hourly"')
            if reading and rolled >= reading - reading % 3_600_000 - 3_600_000:
                break
            assert time.monotonic() < deadline, (reading, rolled)
            await asyncio.sleep(2)

        year, week, _ = datetime.now(ZoneInfo("Europe/Helsinki")).isocalendar()
        iso = f"{year}-W{week:02d}"
        report = tmp_path / "report"
        _run(env, "kera-dashboards", "report", "--week", iso, "--out", str(report))
        assert sorted(p.suffix for p in report.iterdir()) == [".html", ".pdf"]

        site = tmp_path / "my-site.yaml"
        site.write_text((ROOT / "devices/sites/kera.yaml").read_text())
        passwd = tmp_path / "mosquitto-passwd"
        passwd.touch()
        added = _run(
            env, "kera-ingest", "device", "add", "air-lab-1", "--kind", "indoor_air",
            "--space", "lab", "--profile", "milesight-am307", "--site-file", str(site),
            "--passwd", str(passwd),
        )  # fmt: skip
        assert "MQTT password:" in added.stdout
        assert "air-lab-1" in site.read_text()
        _run(env, "kera-ingest", "quarantine")
        _run(env, "kera-ingest", "unknown-fields")
        recomputed = _run(env, "kera-ingest", "rollups", "--week", iso)
        assert "rollup points for 7 days" in recomputed.stderr
    finally:
        if ingest is not None:
            ingest.send_signal(signal.SIGTERM)
            assert ingest.wait(60) == 0
        stack.send_signal(signal.SIGINT)
        stack.communicate(timeout=60)  # waits, and closes its pipes
        ingest_log.close()
    assert stack.returncode == 0
    assert (state / "stack" / "influxdb").is_dir()
