"""The MQTT consumer on its own against a real Mosquitto, through a TCP proxy that cuts the link:
it acknowledges a message only when told, on the connection that delivered it, and never on a
later one (ingest.storage.ports.Connection). The broker's redelivery after a cut is the judge:
what was acknowledged does not come back, what was not comes back, once per cut."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devstack.services import Mosquitto
from ingest.mqtt import MqttConsumer, MqttTarget
from ingest.storage.ports import Connection
from tests.faultproxy import FaultProxy
from tests.helpers import wait_until


class Received:
    """A `Receiver` that keeps each message and the connection it came on."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int, Connection]] = []

    def receive(
        self, topic: str, payload: bytes, mid: int, received_ms: int, connection: Connection
    ) -> None:
        assert received_ms > 0
        self.messages.append((payload, mid, connection))


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


async def test_acknowledged_only_when_told_and_only_on_the_live_connection(
    broker: Mosquitto,
) -> None:
    received = Received()
    async with FaultProxy(broker.port) as proxy:
        consumer = MqttConsumer(
            MqttTarget("127.0.0.1", proxy.port), "consumer-test", ["kera/kera/+/telemetry"],
            received, backoff_initial_s=0.05, backoff_max_s=0.2,
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
