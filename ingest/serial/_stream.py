"""A serial port as a reconnecting byte stream, read by the event loop without blocking it.

The port is opened non-blocking with pyserial and watched with `loop.add_reader`, so a slow or
silent device costs nothing while MQTT messages keep flowing. When the adapter disappears (a
USB unplug shows as EIO or end of file), the stream closes it, counts `disconnects`, and opens it
again with capped exponential backoff and jitter until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import serial

from devices.site import SerialPort
from ingest.backoff import Backoff
from ingest.observability.counters import Stats

log = logging.getLogger(__name__)


class SerialStream:
    def __init__(
        self,
        link: SerialPort,
        on_bytes: Callable[[bytes], None],
        stats: Stats,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.link = link
        self._on_bytes = on_bytes
        self._stats = stats
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self.connected = False

    def _open(self) -> serial.Serial:
        link = self.link
        return serial.Serial(
            link.port,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
            timeout=0,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff
        while True:
            try:
                port = self._open()
            except (serial.SerialException, OSError) as exc:
                if backoff.attempt == 0:
                    log.warning(
                        "serial %s: cannot open %s: %s", self.link.name, self.link.port, exc
                    )
                self._stats.serial_error(self.link.name, "open_failed")
                await asyncio.sleep(backoff.next())
                continue
            if backoff.attempt:
                log.info("serial %s: %s is back", self.link.name, self.link.port)
            backoff.reset()
            self.connected = True
            lost: asyncio.Future[str] = loop.create_future()
            fd = port.fileno()

            def readable(port: serial.Serial = port, lost: asyncio.Future[str] = lost) -> None:
                try:
                    data = os.read(port.fileno(), 4096)
                except BlockingIOError:
                    return
                except OSError as exc:
                    if not lost.done():
                        lost.set_result(str(exc))
                    return
                if not data:
                    if not lost.done():
                        lost.set_result("end of file")
                    return
                self._on_bytes(data)

            loop.add_reader(fd, readable)
            try:
                why = await lost
            finally:
                loop.remove_reader(fd)
                port.close()
                self.connected = False
            log.warning("serial %s: lost %s (%s); reopening", self.link.name, self.link.port, why)
            self._stats.serial_error(self.link.name, "disconnects")
            # The first reopen waits like a first attempt; one that fails goes on from there.
            await asyncio.sleep(backoff.next())
