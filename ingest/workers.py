"""`kera-ingest run --workers N`: N ingestor processes on one host, sharing the readings
through an MQTT v5 shared subscription, each with its own client id (so its own persistent
session), spool and health port. The parent only supervises: it forwards SIGTERM/SIGINT and
restarts a worker that dies, after a short backoff, so its session's unacknowledged readings are
taken up again (the broker keeps them for that session, not for the group).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from ingest.backoff import Backoff
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def worker_env(settings: IngestSettings, k: int) -> dict[str, str]:
    env = settings.as_env()
    env["KERA_MQTT_CLIENT_ID"] = f"{settings.mqtt_client_id}-{k}"
    env["KERA_MQTT_SHARE_GROUP"] = settings.mqtt_share_group or "kera-ingest"
    env["KERA_SPOOL_DIR"] = str(settings.spool_path() / f"worker-{k}")
    env["KERA_HEALTH_PORT"] = str(settings.health_port + k if settings.health_port else 0)
    # One evaluator: worker 0, which subscribes without the share for it.
    env["KERA_EVALUATE"] = "true" if settings.evaluate and k == 0 else "false"
    return env


def run_workers(settings: IngestSettings, n: int) -> int:
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    stopping = False

    def start(k: int) -> subprocess.Popen[bytes]:
        log.info("starting worker %d", k)
        return subprocess.Popen([exe, "run"], env={**os.environ, **worker_env(settings, k)})

    procs = {k: start(k) for k in range(n)}

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A worker that keeps dying is restarted less and less often, up to every 30 s.
    backoff = {k: Backoff(initial_s=1.0) for k in procs}
    while True:
        time.sleep(0.2)
        if stopping:
            codes = [p.wait(settings.shutdown_timeout_s + 10) for p in procs.values()]
            return max(codes, default=0)
        for k, proc in list(procs.items()):
            code = proc.poll()
            if code is not None:
                delay = backoff[k].next()
                log.error("worker %d exited with %d; restarting in %.1fs", k, code, delay)
                time.sleep(delay)
                procs[k] = start(k)
