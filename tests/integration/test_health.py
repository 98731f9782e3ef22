"""/healthz and /metrics of a running ingestor, read over HTTP."""

from __future__ import annotations

import json

import aiohttp
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devstack.services import InfluxDB, free_port
from ingest.settings import IngestSettings
from tests.helpers import count, running_ingestor, wait_until


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.text()


async def test_health_and_metrics(settings: IngestSettings, influx: InfluxDB) -> None:
    port = free_port()
    settings = settings.model_copy(update={"health_port": port})
    base = f"http://127.0.0.1:{port}"
    async with running_ingestor(settings) as ingestor:
        status, text = await _get(f"{base}/healthz")
        assert status == 200
        body = json.loads(text)
        assert body["status"] == "ok"
        assert body["broker_connected"]
        assert body["writer_healthy"]
        assert body["problems"] == []
        free = body["spool"].pop("disk_free_bytes")
        assert isinstance(free, int)
        assert free > 0
        assert body["spool"] == {
            "records": 0,
            "bytes": 0,
            "max_bytes": settings.spool_max_bytes,
            "full": False,
            "disk_full": False,
            "disk_error": None,
            "disk_low": False,
        }

        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="health-pub")
        pub.connect("127.0.0.1", int(settings.mqtt_url.rsplit(":", 1)[1]))
        pub.loop_start()
        try:
            for i in range(5):
                body_ = {"power_w": 1.0 + i, "energy_kwh": 2.0}
                pub.publish(
                    "kera/kera/em-main/telemetry", json.dumps(body_), qos=1
                ).wait_for_publish()
            pub.publish("kera/kera/em-main/telemetry", b"{not json", qos=1).wait_for_publish()
        finally:
            pub.disconnect()
            pub.loop_stop()

        async def written() -> bool:
            return ingestor.stats.points_written >= 5

        await wait_until(written)
        assert await count(settings, "energy", "power_w") >= 1
        status, text = await _get(f"{base}/metrics")
        assert status == 200
        samples = dict(
            line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
        )
        assert float(samples["kera_ingest_messages_total"]) == 6
        assert float(samples["kera_ingest_accepted_total"]) == 5
        assert float(samples['kera_ingest_rejected_total{reason="bad_json"}']) == 1
        assert float(samples["kera_ingest_points_written_total"]) >= 5
        assert float(samples["kera_ingest_mqtt_connected"]) == 1
        assert float(samples["kera_ingest_spool_full"]) == 0
        assert float(samples["kera_ingest_spool_disk_full"]) == 0
        assert float(samples["kera_ingest_spool_disk_free_bytes"]) > 0
        assert "# TYPE kera_ingest_spool_bytes gauge" in text
