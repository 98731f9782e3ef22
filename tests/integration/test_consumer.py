"""The MQTT consumer on its own against a real Mosquitto, through a TCP proxy that cuts the link:
it acknowledges a message only when told, on the connection that delivered it, and never on a
later one (ingest.storage.ports.Connection). The broker's redelivery after a cut is the judge:
what was acknowledged does not come back, what was not comes back, once per cut."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from devices.onboarding import set_password
from devstack.services import Mosquitto, free_port
from ingest.mqtt import V5, V311, MqttConsumer, MqttTarget, Publish
from ingest.storage.ports import Connection
from tests.faultproxy import FaultProxy
from tests.helpers import wait_until


class Received:
    """A `Receiver` that keeps each message and the connection it came on."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int, Connection]] = []

    def receive(self, messages: list[Publish], received_ms: int, connection: Connection) -> None:
        assert received_ms > 0
        self.messages += [(payload, mid, connection) for _, payload, mid in messages]


def _publish(port: int, payloads: list[bytes]) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="consumer-test-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for p in payloads:
            pub.publish("kera/kera/em-1/telemetry", p, qos=1).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()


@pytest.mark.parametrize("version", [V5, V311])
async def test_acknowledged_only_when_told_and_only_on_the_live_connection(
    broker: Mosquitto, version: int
) -> None:
    received = Received()
    async with FaultProxy(broker.port) as proxy:
        consumer = MqttConsumer(
            MqttTarget("127.0.0.1", proxy.port), "consumer-test", ["kera/kera/+/telemetry"],
            received, backoff_initial_s=0.05, backoff_max_s=0.2, protocol_version=version,
        )  # fmt: skip
        task = asyncio.create_task(consumer.run())
        try:
            await wait_until(lambda: consumer.connected, timeout=10)
            await asyncio.to_thread(_publish, broker.port, [b"1", b"2", b"3"])
            await wait_until(lambda: len(received.messages) == 3, timeout=10)
            first = received.messages[0][2]
            assert all(c is first for *_, c in received.messages)
            first.ack([mid for _, mid, _ in received.messages[:2]])
            await asyncio.sleep(0.3)  # the PUBACKs reach the broker

            # Cut: only the unacknowledged reading comes again, on a new connection.
            proxy.cut()
            await wait_until(lambda: len(received.messages) == 4, timeout=10)
            payload, mid3, second = received.messages[3]
            assert payload == b"3"
            assert second is not first
            assert second is consumer.connection
            # The old connection acknowledges nothing now, not even an id the broker reused.
            first.ack([mid3])
            await asyncio.sleep(0.3)
            proxy.cut()
            await wait_until(lambda: len(received.messages) == 5, timeout=10)
            assert received.messages[4][0] == b"3"
            third = received.messages[4][2]
            third.ack([received.messages[4][1]])
            await asyncio.sleep(0.3)

            # Acknowledged on its own connection: a cut brings nothing back.
            proxy.cut()
            await wait_until(lambda: consumer.connected and consumer.connection is not third)
            await asyncio.sleep(1.0)
            assert [p for p, _, _ in received.messages] == [b"1", b"2", b"3", b"3", b"3"]
            assert consumer.reconnects == 3
        finally:
            await consumer.stop(timeout_s=1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _consume(consumer: MqttConsumer, until: Callable[[], Any], timeout: float = 10) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(until, timeout=timeout)
    finally:
        await consumer.stop(timeout_s=1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _consume_a_while(consumer: MqttConsumer, seconds: float = 0.5) -> None:
    """Connect, take what the broker sends for `seconds`, and stop."""

    async def settled() -> bool:
        if not consumer.connected:
            return False
        await asyncio.sleep(seconds)
        return True

    await _consume(consumer, settled)


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a certificate it signed for 127.0.0.1 (valid from an hour
    ago for a day: relative to the clock, so the test passes on any date)."""
    now = dt.datetime.now(dt.UTC)

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey, ca: bool,
    ) -> x509.Certificate:  # fmt: skip
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            b = b.add_extension(x509.SubjectAlternativeName([ip]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("kera test CA", ca_key, None, ca_key, ca=True)
    server = cert("127.0.0.1", key, ca.subject, ca_key, ca=False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls_with_the_sites_own_ca_and_refused_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca, certfile, keyfile = _certificates(tmp_path)
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncertfile {certfile}\nkeyfile {keyfile}"
    with Mosquitto(tmp_path / "m", extra_conf=extra).start() as broker:
        received = Received()
        target = MqttTarget("127.0.0.1", tls_port, tls=True, ca_file=str(ca))
        consumer = MqttConsumer(target, "tls-test", ["kera/kera/+/telemetry"], received)

        async def delivered() -> bool:
            if consumer.connected and not received.messages:
                await asyncio.to_thread(_publish, broker.port, [b"over tls"])
            return bool(received.messages)

        await _consume(consumer, delivered)
        assert received.messages[0][0] == b"over tls"

        # The system's CAs do not know the test CA: refused, and the log says why.
        caplog.set_level(logging.WARNING, "ingest.mqtt")
        plain = MqttTarget("127.0.0.1", tls_port, tls=True)
        refused = MqttConsumer(plain, "tls-test-2", ["x"], Received(), backoff_initial_s=0.05)
        await _consume(refused, lambda: refused.reconnects >= 1)
        assert not refused.connected
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def _reconnected(consumer: MqttConsumer) -> bool:
    return consumer.reconnects >= 1


async def test_a_refused_login_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    passwd, acl_file = tmp_path / "passwd", tmp_path / "acl"
    acl_file.write_text("user kera-ingest\ntopic read #\n")
    set_password(passwd, "kera-ingest", "right")
    caplog.set_level(logging.WARNING, "ingest.mqtt")
    with Mosquitto(tmp_path / "m", password_file=passwd, acl_file=acl_file).start() as broker:
        for version in (V5, V311):
            target = MqttTarget("127.0.0.1", broker.port, "kera-ingest", "wrong")
            c = MqttConsumer(target, "login", ["x"], Received(), protocol_version=version)
            await _consume(c, partial(_reconnected, c))
            assert not c.connected
        good = MqttConsumer(MqttTarget("127.0.0.1", broker.port, "kera-ingest", "right"), "ok",
                            ["x"], Received())  # fmt: skip
        await _consume(good, lambda: good.connected)
    refusals = [r.getMessage() for r in caplog.records if "refused the connection" in r.message]
    # MQTT 5 names the reason; MQTT 3.1.1's return code 4 or 5 is given its MQTT 5 name.
    assert any("bad user name or password (0x86)" in m or "not authorized" in m for m in refusals)
    assert len(refusals) >= 2


async def test_reading_waits_while_storage_is_behind(broker: Mosquitto) -> None:
    """Backpressure: with more unstored readings than the bound, the consumer reads nothing
    more; the broker keeps the rest until storage has caught up to half the bound."""
    received = Received()
    backlog = [1_000]  # what the writer has not stored yet: over the bound from the start
    consumer = MqttConsumer(
        MqttTarget("127.0.0.1", broker.port), "hold-test", ["kera/kera/+/telemetry"], received,
        backlog=lambda: backlog[0], max_backlog=100,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: consumer.connected, timeout=10)
        payloads = [str(i).encode() for i in range(50)]
        await asyncio.to_thread(_publish, broker.port, payloads)
        await wait_until(lambda: received.messages, timeout=10)
        await asyncio.sleep(1.0)
        first = len(received.messages)
        assert first < 50, "read on while storage was behind"
        backlog[0] = 60  # stored some, but not down to half the bound: still held
        await asyncio.sleep(0.5)
        assert len(received.messages) == first
        backlog[0] = 50
        await wait_until(lambda: len(received.messages) == 50, timeout=10)
        assert [p for p, _, _ in received.messages] == payloads
    finally:
        await consumer.stop(timeout_s=1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_oversized_message_on_mqtt_3_is_cut_acknowledged_and_not_sent_again(
    broker: Mosquitto,
) -> None:
    """MQTT 3.1.1 cannot tell the broker the largest packet we take (MQTT 5 can: the broker
    then never sends one). Such a message is handed on cut, so the pipeline refuses it as too
    large and it is acknowledged, instead of a reconnect that would bring it back forever."""
    target = MqttTarget("127.0.0.1", broker.port)
    received = Received()

    def consumer() -> MqttConsumer:
        return MqttConsumer(target, "big-test", ["kera/kera/+/telemetry"], received,
                            protocol_version=V311, max_packet_bytes=10_000)  # fmt: skip

    first = consumer()
    task = asyncio.create_task(first.run())
    try:
        await wait_until(lambda: first.connected, timeout=10)
        await asyncio.to_thread(_publish, broker.port, [b"x" * 200_000, b"after"])
        await wait_until(lambda: len(received.messages) == 2, timeout=10)
        (big, big_mid, connection), (after, after_mid, _) = received.messages
        assert 9_000 < len(big) < 10_000
        assert after == b"after"
        assert first.connected
        assert first.reconnects == 0
        connection.ack([big_mid, after_mid])
        await asyncio.sleep(0.3)
    finally:
        await first.stop(timeout_s=1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # The session resumed: nothing comes back.
    await _consume_a_while(consumer())
    assert len(received.messages) == 2


async def test_a_silent_broker_is_left_and_found_again(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """A link that stays open but carries nothing back (a half-open TCP connection, a hung
    broker) is noticed by the keep-alive: nothing from the broker for 1.5 keep-alives, and the
    consumer reconnects. The proxy delays every answer, as such a link does."""
    caplog.set_level(logging.WARNING, "ingest.mqtt")
    async with FaultProxy(broker.port) as proxy:
        consumer = MqttConsumer(
            MqttTarget("127.0.0.1", proxy.port), "silent-test", ["kera/kera/+/telemetry"],
            Received(), keepalive_s=1, backoff_initial_s=0.05, backoff_max_s=0.2,
        )  # fmt: skip
        task = asyncio.create_task(consumer.run())
        try:
            await wait_until(lambda: consumer.connected, timeout=10)
            proxy.delay_s = 60.0  # the broker's PINGRESPs stop coming back
            await wait_until(lambda: consumer.reconnects >= 1, timeout=10)
            assert "silent for" in caplog.text
            proxy.delay_s = 0.0
            proxy.cut()  # the delayed links go; new ones answer at once
            await wait_until(lambda: consumer.connected, timeout=10)
        finally:
            await consumer.stop(timeout_s=1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("expiry_s", [0, 3600])
async def test_the_session_lasts_as_long_as_its_expiry_says(
    broker: Mosquitto, expiry_s: int
) -> None:
    """MQTT 5 Session Expiry: kept (3600 s, the ingestor's default), a reading published while
    the consumer is away comes when it is back; 0 (the evaluator's own subscription), the
    broker forgets the session at the disconnect, and nothing comes."""
    received = Received()

    def consumer() -> MqttConsumer:
        return MqttConsumer(
            MqttTarget("127.0.0.1", broker.port), f"expiry-{expiry_s}", ["kera/kera/+/telemetry"],
            received, session_expiry_s=expiry_s,
        )  # fmt: skip

    first = consumer()
    await _consume(first, lambda: first.connected)  # subscribed, then disconnected
    await asyncio.to_thread(_publish, broker.port, [b"while away"])
    await _consume_a_while(consumer())
    assert [p for p, _, _ in received.messages] == ([b"while away"] if expiry_s else [])
