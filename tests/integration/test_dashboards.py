"""Every dashboard is built, round-trips through the SDK's model, and every panel, variable,
annotation and Grafana alert-rule query returns data from the real InfluxDB, filled by the
simulator through the real ingestor (Grafana's macros and variables substituted)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from aiohttp import web
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from paho.mqtt.enums import CallbackAPIVersion

from dashboards.cli import all_dashboards
from dashboards.provisioning import ALERT_RULE_QUERIES, write_tree
from dashboards.push import push
from devices import Registry
from devices.contract import status_topic
from devstack.services import Mosquitto, free_port
from firmware_sim import Format, Links, run
from firmware_sim.commission import send
from ingest.mqtt import parse_mqtt_url
from ingest.settings import IngestSettings
from tests.helpers import count, query, running_ingestor, wait_until

PILOTS_ANNOTATION = "Kera pilots"
SUBSTITUTIONS = {
    "$timeFilter": "time > now() - 2d",
    "$__interval": "10m",
    "$site": "kera",
    "$space": ".*",
    "$device": ".*",
    "$instance": ".*",
}


def substitute(q: str) -> str:
    for macro, value in sorted(SUBSTITUTIONS.items(), key=lambda kv: -len(kv[0])):
        q = q.replace(macro, value)
    assert "$" not in q.replace("$/", "/").replace("^", ""), q
    return q


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r}", target["query"]))
    for var in board.get("templating", {}).get("list", []):
        out.append((f"variable {var['name']}", var["query"]))
    for ann in board.get("annotations", {}).get("list", []):
        if "query" in ann:
            out.append((f"annotation {ann['name']}", ann["query"]))
    return out


def test_dashboards_round_trip_through_the_sdk_model() -> None:
    for uid, board in all_dashboards().items():
        again = json.loads(JSONEncoder(sort_keys=True).encode(dm.Dashboard.from_json(board)))
        # The SDK's annotation model has no InfluxQL query field (dashboards.boards explains).
        annotations: dict[str, Any] = board.get("annotations", {})  # type: ignore[assignment]
        for ann in annotations.get("list", []):
            ann.pop("query", None)
            ann.pop("rawQuery", None)
        assert again == board, uid
        assert re.fullmatch(r"kera-[a-z]+", uid)


def test_provisioning_tree_holds_no_secrets(tmp_path: Path) -> None:
    paths = write_tree(tmp_path, all_dashboards())
    assert {p.relative_to(tmp_path).parts[0] for p in paths} == {
        "datasources",
        "dashboards",
        "alerting",
    }
    ds = yaml.safe_load((tmp_path / "datasources" / "kera-influxdb.yaml").read_text())
    secrets = json.dumps(ds["datasources"][0]["secureJsonData"]) + ds["datasources"][0]["user"]
    assert set(re.findall(r"\$__env\{(\w+)\}", secrets)) == {
        "KERA_INFLUX_PASSWORD",
        "KERA_INFLUX_TOKEN",
        "KERA_INFLUX_USER",
    }
    cp = yaml.safe_load((tmp_path / "alerting" / "kera-contact-points.yaml").read_text())
    assert cp["contactPoints"][0]["receivers"][0]["settings"]["url"].startswith("$__env{")
    rules = yaml.safe_load((tmp_path / "alerting" / "kera-rules.yaml").read_text())
    assert {r["uid"] for r in rules["groups"][0]["rules"]} == set(ALERT_RULE_QUERIES)


async def test_every_query_returns_data(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"pipeline_interval_s": 1.0})
    registry = Registry.load()
    target = parse_mqtt_url(settings.mqtt_url)
    now = int(time.time() * 1000)
    async with running_ingestor(settings):
        # A simulated day, then an hour of LoRaWAN uplinks (radio metadata) for the bins.
        for fmt, span_s, seed in ((Format.NATIVE, 86400.0, 1), (Format.TTS_V3, 3600.0, 2)):
            links = Links(target, "kera", client_prefix=f"dash-{fmt.value}")
            await asyncio.to_thread(
                run,
                registry,
                links,
                seed=seed,
                start_ms=now - round(span_s * 1000) - 60_000,
                duration_s=span_s,
                speed=0,
                fmt=fmt,
            )
        # An emptying, a bin left full (an alert firing), and rejected readings.
        for i, distance in enumerate((80, 120, 950)):
            send(target, "kera", "bin-mixed-1", {"ts": now - 3_600_000 + i * 1_800_000,
                                                 "distance_mm": distance})  # fmt: skip
        send(target, "kera", "bin-glass-1", {"ts": now - 1000, "distance_mm": 20})
        send(target, "kera", "occ-cafe", {"people": "many"})
        # A device that dropped off: the broker publishes its last will (the simulator's runs
        # end with clean disconnects, which leave every device online).
        will = paho.Client(CallbackAPIVersion.VERSION2, client_id="dash-will")
        will.connect(target.host, target.port)
        will.loop_start()
        will.publish(
            status_topic("kera", "em-ev-charging"), b"offline", qos=1, retain=True
        ).wait_for_publish(5)
        will.disconnect()
        will.loop_stop()

        async def settled() -> bool:
            return await count(settings, "alerts", "level") >= 3

        await wait_until(settled, timeout=60)

        async def rejection_counted() -> bool:
            # The pipeline point of the interval with the rejection, and its per-device point.
            most = await query(settings, 'SELECT max("rejected") FROM "pipeline"')
            counted = bool(most) and (most[0]["values"][0][1] or 0) > 0
            return counted and await count(settings, "rejections", "rejected") >= 1

        await wait_until(rejection_counted, timeout=30)

    empty: list[str] = []
    checked = 0
    # The Pilots board and the pilot annotations read pilot results, which need weeks of
    # simulated data: they run in tests/integration/test_pilots.py against five simulated weeks.
    boards = {uid: b for uid, b in all_dashboards().items() if uid != "kera-pilots"}
    named = [
        (f"{uid} {what}", q)
        for uid, b in boards.items()
        for what, q in queries(b)
        if what != f"annotation {PILOTS_ANNOTATION}"
    ]
    named += [(f"alert rule {uid}", q) for uid, q in ALERT_RULE_QUERIES.items()]
    for name, q in named:
        series = await query(settings, substitute(q))
        checked += 1
        if not series or not any(s.get("values") for s in series):
            empty.append(f"{name}: {q}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert checked > 40


class GrafanaStandIn:
    """Grafana cannot be installed here: a small HTTP server with the endpoints `push` uses,
    keeping objects by uid as Grafana does, so idempotence can be checked over real HTTP."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.store: dict[str, dict[str, Any]] = {
            "datasource": {}, "folder": {}, "dashboard": {}, "rule": {}, "contact": {}
        }  # fmt: skip
        self.calls: list[str] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/api/datasources/uid/{uid}", self._get("datasource"))
        r.add_post("/api/datasources", self._put("datasource"))
        r.add_put("/api/datasources/uid/{uid}", self._put("datasource"))
        r.add_get("/api/folders/{uid}", self._get("folder"))
        r.add_post("/api/folders", self._put("folder"))
        r.add_post("/api/dashboards/db", self._dashboard)
        r.add_get("/api/v1/provisioning/alert-rules/{uid}", self._get("rule"))
        r.add_post("/api/v1/provisioning/alert-rules", self._put("rule"))
        r.add_put("/api/v1/provisioning/alert-rules/{uid}", self._put("rule"))
        r.add_get("/api/v1/provisioning/contact-points", self._list("contact"))
        r.add_post("/api/v1/provisioning/contact-points", self._put("contact"))
        r.add_put("/api/v1/provisioning/contact-points/{uid}", self._put("contact"))
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(f"{request.method} {request.path}")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def _get(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            obj = self.store[kind].get(request.match_info["uid"])
            if obj is None:
                return web.json_response({"message": "not found"}, status=404)
            return web.json_response(obj)

        return handler

    def _put(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = await request.json()
            self.store[kind][body["uid"]] = body
            return web.json_response(body)

        return handler

    def _list(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(list(self.store[kind].values()))

        return handler

    async def _dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.store["dashboard"][body["dashboard"]["uid"]] = body
        return web.json_response({"status": "success", "uid": body["dashboard"]["uid"]})


async def test_push_is_idempotent_by_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    grafana = GrafanaStandIn(token=secrets.token_urlsafe(16))  # made up per run
    monkeypatch.setenv("KERA_INFLUX_URL", "http://influx.internal:8086")
    monkeypatch.setenv("KERA_ALERT_WEBHOOK_URL", "https://hooks.example/kera")
    runner = web.AppRunner(grafana.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}"
        first = await asyncio.to_thread(push, url, grafana.token, all_dashboards())
        second = await asyncio.to_thread(push, url, grafana.token, all_dashboards())
    finally:
        await runner.cleanup()
    assert first["datasource created"] == 1
    assert first["alert rule created"] == len(ALERT_RULE_QUERIES)
    assert second["datasource updated"] == 1
    assert second["alert rule updated"] == len(ALERT_RULE_QUERIES)
    assert second["contact point updated"] == 1
    assert "folder created" not in second
    s = grafana.store
    assert {k: len(v) for k, v in s.items()} == {
        "datasource": 1, "folder": 1, "dashboard": len(all_dashboards()),
        "rule": len(ALERT_RULE_QUERIES), "contact": 1,
    }  # fmt: skip
    assert s["datasource"]["kera-influxql"]["url"] == "http://influx.internal:8086"
    assert s["contact"]["kera-operators-webhook"]["settings"]["url"] == "https://hooks.example/kera"
    assert all(b["overwrite"] and b["folderUid"] == "kera" for b in s["dashboard"].values())
    assert grafana.token not in json.dumps(s)
