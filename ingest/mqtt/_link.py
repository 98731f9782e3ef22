"""One TCP (or TLS) connection to the broker, as an asyncio protocol: bytes in, packets out.

Reads arrive as whatever the socket holds (up to asyncio's 256 KiB per read); each is split
into its packets in one call (`_codec.Splitter`) and the PUBLISHes handed on in arrival order.
A read is worked through in slices of `READ_SLICE_S`: when one is used up the link stops
reading and gives the event loop a turn before the next slice, so the writer and `/healthz`
keep running under a backlog (docs/performance.md, "District scale").
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

from ingest.mqtt._codec import Control, ProtocolError, Publish, Splitter

# How long one slice of reading may run before the event loop gets a turn.
READ_SLICE_S: Final = 0.003


class LinkOwner(Protocol):
    """The consumer, as a link sees it."""

    def on_publishes(self, link: Link, publishes: list[Publish]) -> None: ...

    def on_control(self, link: Link, packet: Control) -> None: ...

    def on_lost(self, link: Link, reason: str | None) -> None: ...


class Link(asyncio.Protocol):
    __slots__ = (
        "_loop", "_owner", "_paused", "_reason", "_split", "_transport", "_waiting", "held",
        "last_in",
    )  # fmt: skip

    def __init__(self, owner: LinkOwner, splitter: Splitter) -> None:
        self._owner = owner
        self._split = splitter
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # A slice ran out: the rest of the buffer waits for the next loop turn.
        self._waiting = False
        # Reading paused by the owner (shutdown), not only between slices.
        self._paused = False
        # Reading held by the owner while the readings read are not yet stored (backpressure).
        self.held = False
        self._reason: str | None = None
        self.last_in = time.monotonic()

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause(self) -> None:
        self._paused = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def hold(self) -> None:
        if not self.held:
            self.held = True
            if self.open:
                assert self._transport is not None
                self._transport.pause_reading()

    def release(self) -> None:
        if self.held:
            self.held = False
            self.last_in = time.monotonic()  # the broker's silence is counted from here
            self._resume()

    def _resume(self) -> None:
        if self.open and not (self._waiting or self._paused or self.held):
            assert self._transport is not None
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_in = time.monotonic()
        self._split.feed(data)
        if not self._waiting:
            self._work()

    def _work(self) -> None:
        self._waiting = False
        split = self._split
        deadline = time.perf_counter() + READ_SLICE_S
        owner = self._owner
        try:
            while True:
                publishes: list[Publish] = []
                control = split.split(publishes, deadline)
                if publishes:
                    owner.on_publishes(self, publishes)
                if control is not None:
                    owner.on_control(self, control)
                    if not self.open:
                        return
                    continue
                break
        except ProtocolError as exc:
            self._lost_by(str(exc))
            return
        if split.pending and time.perf_counter() >= deadline and self.open:
            # Out of time with whole packets left: read nothing more until they are done.
            self._waiting = True
            assert self._transport is not None
            self._transport.pause_reading()
            self._loop.call_soon(self._next_slice)

    def _next_slice(self) -> None:
        if not self.open:
            return
        self._work()
        self._resume()

    def _lost_by(self, reason: str) -> None:
        # Closed here; connection_lost tells the owner, with this reason.
        self._reason = reason
        self.abort()

    def eof_received(self) -> bool:
        return False  # the broker closed: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._reason or (str(exc) if exc else None)
        self._transport = None
        self._owner.on_lost(self, reason)
