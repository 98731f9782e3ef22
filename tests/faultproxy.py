"""A TCP proxy on loopback that makes a server slow: the first bytes of every answer wait
`delay_s` (an HTTP answer comes that much later, however many packets its request took). For the
slow-database probes (issue 26), in the test's own event loop; `delay_s` can change while it
runs. `cut()` drops every connection through it at once, as a broken link does (issue 28's
consumer test)."""

from __future__ import annotations

import asyncio
import contextlib

from devstack.services import free_port


class FaultProxy:
    def __init__(self, target_port: int, delay_s: float = 0.0) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = free_port()
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in list(self._writers):
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Close every connection through the proxy, both ends; new ones are accepted."""
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        # Set when the client sent something the server has not answered yet.
        asked = asyncio.Event()
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, asked, answering=False)),
            asyncio.create_task(self._pump(up_reader, writer, asked, answering=True)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                w.close()

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        asked: asyncio.Event,
        answering: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(1 << 16):
                if not answering:
                    asked.set()
                elif asked.is_set():
                    # The first bytes of an answer: late by delay_s.
                    asked.clear()
                    self.requests += 1
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                dst.write(data)
                await dst.drain()
