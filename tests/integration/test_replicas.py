"""Two ingestor replicas on an MQTT v5 shared subscription: every reading is written exactly
once in effect, each replica takes a share, and a replica killed mid-stream loses nothing once
it is back (its session keeps its unacknowledged readings)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack.services import Mosquitto, free_port
from firmware_sim.commission import send
from ingest.mqtt import parse_mqtt_url
from ingest.settings import IngestSettings
from tests.helpers import (
    IngestProcess,
    Publisher,
    count,
    ingest_process,
    running_ingestor,
    wait_until,
)


async def test_two_replicas_write_every_reading_once(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    n = 12_000
    shared = settings.model_copy(update={"mqtt_share_group": "kera-test"})
    a = shared.model_copy(update={"mqtt_client_id": "replica-a", "spool_dir": tmp_path / "a"})
    b = shared.model_copy(update={"mqtt_client_id": "replica-b", "spool_dir": tmp_path / "b",
                                  "evaluate": False})  # fmt: skip
    async with (
        ingest_process(a, tmp_path / "a.log") as ra,
        ingest_process(b, tmp_path / "b.log") as rb,
    ):
        with Publisher(broker.port, "replica-pub") as pub:
            base = int(time.time() * 1000) - 3_600_000
            thread = threading.Thread(target=pub.energy, args=(n, base, 1500.0), daemon=True)
            thread.start()
            await asyncio.sleep(3)
            rb.kill()  # one replica dies mid-stream ...
            await asyncio.sleep(1)
            rb.start()  # ... and is restarted, as the supervisor does
            await rb.wait_connected()
            thread.join()

            async def landed() -> bool:
                return await count(settings, "energy", "power_w") >= n

            await wait_until(landed, timeout=60)
            # A redelivered reading overwrites its own point (same series and time), so the
            # count can only reach n, never pass it: n means none lost and none doubled.
            assert await count(settings, "energy", "power_w") == n
            got_a = (await ra.metrics())["kera_ingest_messages_total"]
            got_b = (await rb.metrics())["kera_ingest_messages_total"]
        # Both took a share (b's counter restarted with it), and together no more than all of
        # them plus what b had in flight when it was killed.
        assert got_a > n * 0.2
        assert got_b > 0
        assert ra.terminate() == 0
        assert rb.terminate() == 0


def free_pair() -> int:
    """A port that is free with the next one: a free port's neighbour may be a client
    connection's ephemeral port (CI saw a worker fail to bind port + 1 five times)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row on 127.0.0.1")


async def test_workers_option_starts_a_shared_group(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    port = free_pair()  # worker k serves /healthz on port + k
    s = settings.model_copy(
        update={"mqtt_client_id": "pool", "spool_dir": tmp_path / "spool", "health_port": port}
    )
    env = {**os.environ, **s.as_env()}
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    proc = subprocess.Popen([exe, "run", "--workers", "2"], env=env)
    try:
        workers = [
            IngestProcess(s.model_copy(update={"health_port": port + k}), tmp_path / f"{k}.log")
            for k in range(2)
        ]
        for w in workers:
            await w.wait_connected()
        with Publisher(broker.port, "workers-pub") as pub:
            pub.energy(4000, int(time.time() * 1000) - 600_000, 4000.0)

            async def landed() -> bool:
                return await count(settings, "energy", "power_w") == 4000

            await wait_until(landed, timeout=60)
        shares = [(await w.metrics())["kera_ingest_messages_total"] for w in workers]
        assert all(x > 0 for x in shares)
        assert sum(shares) >= 4000
        assert {p.name for p in (tmp_path / "spool").iterdir()} == {"worker-0", "worker-1"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


async def test_alerts_see_every_reading_on_a_shared_subscription(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    """The evaluating replica subscribes without the share for its alert engine, so a reading
    that the other replica stores still raises the alert, once."""
    shared = settings.model_copy(update={"mqtt_share_group": "kera-alerts"})
    evaluator = shared.model_copy(update={"mqtt_client_id": "eval", "spool_dir": tmp_path / "e"})
    other = shared.model_copy(
        update={"mqtt_client_id": "other", "spool_dir": tmp_path / "o", "evaluate": False}
    )
    target = parse_mqtt_url(settings.mqtt_url)
    now = int(time.time() * 1000)
    async with running_ingestor(evaluator) as e, running_ingestor(other) as o:
        for i in range(20):  # enough that both replicas store some
            send(target, "kera", "bin-plastic-1", {"ts": now - 60_000 + i, "distance_mm": 600})
        send(target, "kera", "bin-plastic-1", {"ts": now - 1000, "distance_mm": 30})

        async def fired() -> bool:
            return await count(settings, "alerts", "level") == 1

        await wait_until(fired, timeout=20)

        def all_taken() -> bool:
            return e.stats.messages + o.stats.messages == 21

        await wait_until(all_taken, timeout=20)
        assert e.stats.messages > 0
        assert o.stats.messages > 0
    assert e.alerts is not None
    assert e.alerts.firing() == [("bin_fill", "bin-plastic-1", "critical")]
