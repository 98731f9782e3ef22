"""The ingestor's MQTT side: where the broker is (`MqttTarget`), and the persistent-session
QoS 1 subscriber (`MqttConsumer`) that hands each message to a `Receiver`.

Modules: `_target` (the URL), `_codec` (packets, no I/O), `_link` (one connection as an
asyncio protocol), `_consumer` (sessions, reconnects, acknowledgements, the outbox).
"""

from ingest.mqtt._codec import V5, V311, Publish
from ingest.mqtt._consumer import MqttConnectError, MqttConsumer, Receiver
from ingest.mqtt._target import MqttTarget, parse_mqtt_url

__all__ = [
    "V5",
    "V311",
    "MqttConnectError",
    "MqttConsumer",
    "MqttTarget",
    "Publish",
    "Receiver",
    "parse_mqtt_url",
]
