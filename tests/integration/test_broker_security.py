"""The production broker model on a real Mosquitto: password file and ACL from
`devices.onboarding` (the same as `kera-ingest device ...` writes). Device A cannot publish as
device B, anonymous clients are refused, the ingestor reads everything it needs, and the
ingestor itself refuses to connect anonymously outside dev mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry, SiteConfigError
from devices.contract import INGEST_USER
from devices.onboarding import acl, add_device, set_password
from devices.site import default_site_text
from devstack.services import InfluxDB, Mosquitto
from ingest.service import Ingestor
from tests.helpers import count, local_settings, running_ingestor, wait_until


def client(port: int, user: str | None, password: str | None, name: str) -> tuple[paho.Client, int]:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    result: list[int] = []
    done = threading.Event()

    def on_connect(cl: paho.Client, u: object, f: object, reason: object, p: object) -> None:
        result.append(reason.value)  # type: ignore[attr-defined]
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(5)
    return c, result[0] if result else -1


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    passwd, acl_file = tmp_path / "passwd", tmp_path / "acl"
    acl_file.write_text(acl("kera"))
    creds = {"em-main": "pw-em-main", "occ-cafe": "pw-occ-cafe", INGEST_USER: "pw-ingest"}
    for user, pw in creds.items():
        set_password(passwd, user, pw)
    broker = Mosquitto(tmp_path / "m", password_file=passwd, acl_file=acl_file).start()
    yield broker, creds
    broker.stop()


def subscribe(c: paho.Client, topics: list[tuple[str, int]]) -> None:
    """Subscribe and return once the broker's SUBACK is in."""
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(topics)
    assert done.wait(5), "no SUBACK"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_devices_publish_only_as_themselves_and_anonymous_is_refused(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    broker, creds = secured
    _, anonymous = client(broker.port, None, None, "anon")
    assert anonymous == 135  # Not authorized
    _, wrong = client(broker.port, "em-main", "guess", "wrong")
    assert wrong in (134, 135)  # Bad user name or password / Not authorized

    seen: list[str] = []
    ingest, rc = client(broker.port, INGEST_USER, creds[INGEST_USER], "ingest")
    assert rc == 0
    ingest.on_message = lambda c, u, m: seen.append(m.topic)
    subscribe(ingest, [("$share/g/kera/kera/+/telemetry", 1), ("kera/kera/+/status", 1)])

    dev, rc = client(broker.port, "em-main", creds["em-main"], "em-main")
    assert rc == 0
    dev.publish(
        "kera/kera/em-main/telemetry", b'{"power_w":1,"energy_kwh":1}', qos=1
    ).wait_for_publish(5)
    dev.publish("kera/kera/em-main/status", b"online", qos=1).wait_for_publish(5)
    dev.publish("kera/kera/occ-cafe/telemetry", b'{"people":99}', qos=1).wait_for_publish(5)
    # The broker delivers one publisher's messages in order: once this one has arrived, the
    # refused one would have arrived before it.
    dev.publish("kera/kera/em-main/status", b"offline", qos=1).wait_for_publish(5)
    wait_for(lambda: len(seen) >= 3)
    assert sorted(seen) == ["kera/kera/em-main/status"] * 2 + ["kera/kera/em-main/telemetry"]
    # A device cannot read the others' readings either.
    spy: list[str] = []
    other, rc = client(broker.port, "occ-cafe", creds["occ-cafe"], "occ-cafe")
    other.on_message = lambda c, u, m: spy.append(m.topic)
    subscribe(other, [("kera/kera/#", 1)])
    dev.publish(
        "kera/kera/em-main/telemetry", b'{"power_w":2,"energy_kwh":1}', qos=1
    ).wait_for_publish(5)
    wait_for(lambda: len(seen) >= 4)  # routed: the broker has decided about the spy too
    # The spy's own acknowledged publish comes back after anything queued for it before.
    other.publish("kera/kera/occ-cafe/status", b"online", qos=1).wait_for_publish(5)
    assert spy == []
    for c in (ingest, dev, other):
        c.disconnect()
        c.loop_stop()


async def test_the_ingestor_reads_through_the_acl(
    secured: tuple[Mosquitto, dict[str, str]], influx: InfluxDB, database: str, tmp_path: Path
) -> None:
    broker, creds = secured
    url = f"mqtt://{INGEST_USER}:{creds[INGEST_USER]}@127.0.0.1:{broker.port}"
    settings = local_settings(url, influx.url, database, tmp_path, dev_mode=False)
    async with running_ingestor(settings):
        dev, rc = client(broker.port, "em-main", creds["em-main"], "em-main-2")
        assert rc == 0
        now = int(time.time() * 1000)
        for i in range(5):
            body = f'{{"ts":{now - 10_000 + i},"power_w":{i}.5,"energy_kwh":1.0}}'.encode()
            dev.publish("kera/kera/em-main/telemetry", body, qos=1).wait_for_publish(5)
        dev.disconnect()
        dev.loop_stop()

        async def landed() -> bool:
            return await count(settings, "energy", "power_w") == 5

        await wait_until(landed, timeout=20)


def test_anonymous_ingestor_refused_outside_dev_mode(tmp_path: Path) -> None:
    settings = local_settings("mqtt://127.0.0.1:1883", "http://127.0.0.1:8086", "x", tmp_path,
                              dev_mode=False)  # fmt: skip
    with pytest.raises(ValueError, match="anonymous"):
        Ingestor(settings)


def test_onboarding_adds_a_valid_device_only(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(default_site_text())
    add_device(site, {"id": "occ-lobby", "kind": "occupancy", "space": "lobby"})
    assert Registry.load(site).get("occ-lobby") is not None
    # Into the devices list, before the sections after it, every comment kept.
    text = site.read_text()
    assert (
        text.index("occ-lobby")
        < text.index("\n# Pilots (docs/pilots.md)")
        < text.index("\npilots:")
    )
    assert len(Registry.load(site).site.pilots) == 3
    assert [line for line in default_site_text().splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if line.startswith("#")
    ]
    with pytest.raises(SiteConfigError, match="appears more than once"):
        add_device(site, {"id": "occ-lobby", "kind": "occupancy", "space": "lobby"})
    with pytest.raises(SiteConfigError, match="depth_mm"):
        add_device(site, {"id": "bin-new", "kind": "waste_bin", "space": "yard"})
    assert Registry.load(site).get("bin-new") is None
