"""Modbus RTU energy meters on an RS-485 bus, polled with pymodbus (async).

Register maps: Eastron SDM630 (three-phase) and SDM120 (single-phase), input registers read with
function code 04, each value an IEEE-754 float32 over two registers, high word first, addresses
as in Eastron's published Modbus protocol documents. One bus is polled by one client, meter after
meter (RS-485 is half duplex), each at its own interval. A meter that fails `offline_after`
polls in a row is marked offline in `device_status`, and online again when it answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from devices.site import ModbusBus, ModbusMeter
from ingest.backoff import Backoff
from ingest.reading import Decoded

log = logging.getLogger(__name__)

# field -> input register address (function code 04, float32, 2 registers).
REGISTER_MAPS: dict[str, dict[str, int]] = {
    "sdm630": {
        "voltage_l1_v": 0x0000,
        "voltage_l2_v": 0x0002,
        "voltage_l3_v": 0x0004,
        "current_l1_a": 0x0006,
        "current_l2_a": 0x0008,
        "current_l3_a": 0x000A,
        "power_w": 0x0034,  # total system power
        "frequency_hz": 0x0046,
        "energy_kwh": 0x0048,  # total import
        "energy_export_kwh": 0x004A,  # total export
    },
    "sdm120": {
        "voltage_v": 0x0000,
        "current_a": 0x0006,
        "power_w": 0x000C,
        "frequency_hz": 0x0046,
        "energy_kwh": 0x0048,
        "energy_export_kwh": 0x004A,
    },
}


def blocks(register_map: dict[str, int], max_gap: int = 10) -> list[tuple[int, int]]:
    """(first address, register count) reads that cover the map: one request per block of
    nearby registers instead of one per value."""
    addresses = sorted(register_map.values())
    out: list[list[int]] = []
    for a in addresses:
        if out and a - (out[-1][0] + out[-1][1]) <= max_gap:
            out[-1][1] = a + 2 - out[-1][0]
        else:
            out.append([a, 2])
    return [(a, n) for a, n in out]


def decode_registers(model: str, registers: dict[int, int]) -> dict[str, object]:
    """Field values from register contents (address -> 16-bit word)."""
    values: dict[str, float] = {}
    for name, address in REGISTER_MAPS[model].items():
        words = [registers[address], registers[address + 1]]
        value = AsyncModbusSerialClient.convert_from_registers(
            words, AsyncModbusSerialClient.DATATYPE.FLOAT32
        )
        assert isinstance(value, float)
        values[name] = round(value, 4)
    if model == "sdm630":
        values["voltage_v"] = round(sum(values[f"voltage_l{n}_v"] for n in (1, 2, 3)) / 3, 2)
        values["current_a"] = round(sum(values[f"current_l{n}_a"] for n in (1, 2, 3)) / 3, 3)
    return dict(values)


class ModbusPoller:
    def __init__(
        self,
        bus: ModbusBus,
        emit: Callable[[Decoded], None],
        counts: Counter[str],
        backoff_max_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self._emit = emit
        self._counts = counts
        self._backoff = Backoff(max_s=backoff_max_s)
        self._failures: dict[str, int] = {m.device: 0 for m in bus.meters}
        self._offline: set[str] = set()

    def _client(self) -> AsyncModbusSerialClient:
        b = self.bus
        return AsyncModbusSerialClient(
            b.port,
            baudrate=b.baudrate,
            bytesize=b.bytesize,
            parity=b.parity,
            stopbits=b.stopbits,
            timeout=b.timeout_s,
            retries=b.retries,
            reconnect_delay=0,  # reconnecting is ours, with backoff, below
        )

    async def run(self) -> None:
        due = {m.device: 0.0 for m in self.bus.meters}
        backoff = self._backoff
        while True:
            client = self._client()
            try:
                connected = await client.connect()
            except (OSError, ModbusException):
                connected = False
            if not connected:
                client.close()
                self._counts["open_failed"] += 1
                for m in self.bus.meters:
                    self._failed(m)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            try:
                while client.connected:
                    meter = min(self.bus.meters, key=lambda m: due[m.device])
                    wait = due[meter.device] - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    due[meter.device] = time.monotonic() + meter.interval_s
                    await self._poll(client, meter)
            finally:
                client.close()
            self._counts["disconnects"] += 1
            await asyncio.sleep(0.5)

    async def _poll(self, client: AsyncModbusSerialClient, meter: ModbusMeter) -> None:
        registers: dict[int, int] = {}
        try:
            for address, count in blocks(REGISTER_MAPS[meter.model]):
                rr = await client.read_input_registers(address, count=count, device_id=meter.unit)
                if rr.isError():
                    self._counts["modbus_exception"] += 1
                    self._failed(meter)
                    return
                registers.update(zip(range(address, address + count), rr.registers, strict=True))
        except (ModbusException, TimeoutError, OSError) as exc:
            self._counts["timeout" if "timeout" in str(exc).lower() else "modbus_error"] += 1
            self._failed(meter)
            return
        values = decode_registers(meter.model, registers)
        self._counts["polls"] += 1
        self._failures[meter.device] = 0
        if meter.device in self._offline:
            self._offline.discard(meter.device)
            self._emit(Decoded(meter.device, None, {"online": True}, status=True))
        self._emit(Decoded(meter.device, None, values))

    def _failed(self, meter: ModbusMeter) -> None:
        n = self._failures[meter.device] = self._failures[meter.device] + 1
        if n >= self.bus.offline_after and meter.device not in self._offline:
            self._offline.add(meter.device)
            log.warning(
                "serial %s: meter %s (unit %d) stopped answering; marked offline",
                self.bus.name,
                meter.device,
                meter.unit,
            )
            self._emit(Decoded(meter.device, None, {"online": False}, status=True))
