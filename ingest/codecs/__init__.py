"""Payload formats. Each codec turns (topic, payload) into a `Decoded` or raises `Rejected`;
checking against the registry and the contract happens after, in `ingest.validate`, the same
for every codec and every source."""

from ingest.codecs import native

__all__ = ["native"]
