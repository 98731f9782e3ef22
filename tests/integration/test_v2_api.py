"""The v2 write path (influxdb-client) over real HTTP.

InfluxDB 1.6 has no /api/v2/write, so a small front in this test speaks the v2 write API
(token, org, bucket, precision) and stores the body in the real InfluxDB through /write. What is
checked is what our client sends and how it handles answers, the first one a 503.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from devstack.services import InfluxDB, Mosquitto
from tests.helpers import (
    Publisher,
    count,
    http_server,
    local_settings,
    running_ingestor,
    wait_until,
)


async def test_v2_api_writes_through_influxdb_client(
    broker: Mosquitto, influx: InfluxDB, database: str, tmp_path: Path
) -> None:
    seen: list[dict[str, str]] = []

    async def write(request: web.Request) -> web.Response:
        seen.append({**request.query, "auth": request.headers.get("Authorization", "")})
        if len(seen) == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        if request.headers.get("Authorization") != "Token tk-1":
            return web.json_response({"message": "unauthorized"}, status=401)
        body = await request.read()
        async with aiohttp.ClientSession() as s:
            await s.post(f"{influx.url}/query", data={"q": f'CREATE DATABASE "{database}"'})
            params = {"db": request.query["bucket"], "precision": request.query["precision"]}
            async with s.post(f"{influx.url}/write", params=params, data=body) as r:
                return web.Response(status=r.status, body=await r.read())

    async with http_server("/api/v2/write", write) as url:
        settings = local_settings(
            broker.url,
            url,
            database,
            tmp_path,
            influx_api="v2",
            influx_token="tk-1",
            influx_org="kera-org",
        )
        with Publisher(broker.port, "v2-pub") as pub:
            async with running_ingestor(settings) as ingestor:
                base = int(time.time() * 1000) - 10_000
                for i in range(20):
                    body = {"ts": base + i, "people": i, "co2_ppm": 500 + i}
                    pub.client.publish("kera/kera/occ-cafe/telemetry", json.dumps(body), qos=1)
                in_influx = settings.model_copy(update={"influx_url": influx.url})

                async def landed() -> bool:
                    return await count(in_influx, "occupancy", "people") == 20

                await wait_until(landed)
                assert ingestor.stats.write_retries >= 1
    assert seen[0]["bucket"] == database
    assert seen[0]["org"] == "kera-org"
    assert seen[0]["precision"] == "ms"
    assert all(s["auth"] == "Token tk-1" for s in seen)
