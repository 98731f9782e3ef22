"""Serial devices for technicians and tests: a Modbus RTU meter bus, a HAN/P1 port, a radio
concentrator, each behind a pseudo-terminal that the ingestor opens like a USB adapter.

`PtyLink` makes two pseudo-terminals and relays bytes between them: the simulated device opens
one (`device_port`), the ingestor opens a stable symlink to the other (`path`), as it would
/dev/serial/by-id/... Unplugging closes the ingestor's side (its reads fail as a pulled USB
adapter's do) and removes the symlink; plugging back makes a new terminal behind the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import select
import threading
import time
import tty
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import serial
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSimulatorContext,
)
from pymodbus.server import ModbusSerialServer

from devices.site import EnergyMeter
from firmware_sim.fleet import SimEnergyMeter
from ingest.serial.lines import frame
from ingest.serial.modbus import REGISTER_MAPS

log = logging.getLogger(__name__)


class PtyLink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._dev_master, self._dev_slave = os.openpty()
        tty.setraw(self._dev_slave)
        self.device_port = os.ttyname(self._dev_slave)
        self._host: tuple[int, int] | None = None
        self._lock = threading.Lock()
        # Unplugged terminals the relay thread closes itself, between two selects: closed from
        # another thread, a descriptor number could be reused at once (by an HTTP socket, say)
        # while the relay still selects and reads it, and the relay would eat that socket's bytes.
        self._retired: list[tuple[int, int]] = []
        self._retired_gone = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.plug()
        self._thread = threading.Thread(target=self._relay, name="pty-relay", daemon=True)
        self._thread.start()

    @property
    def plugged(self) -> bool:
        return self._host is not None

    def plug(self) -> None:
        with self._lock:
            if self._host is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            tmp = self.path.with_name(self.path.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.ttyname(slave))
            os.replace(tmp, self.path)
            self._host = (master, slave)

    def unplug(self) -> None:
        """Pull the adapter; returns once its terminal is closed."""
        with self._lock:
            if self._host is None:
                return
            host, self._host = self._host, None
            self.path.unlink(missing_ok=True)
            self.counts["unplugged"] += 1
            if self._thread.is_alive():
                self._retired.append(host)
                self._retired_gone.wait_for(lambda: host not in self._retired, timeout=5)
                if host not in self._retired:
                    return
                self._retired.remove(host)  # the relay is stuck; nobody else reads it now
            _close(host)

    def _relay(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._retired:
                    for retired in self._retired:
                        _close(retired)
                    self._retired.clear()
                    self._retired_gone.notify_all()
                host = self._host[0] if self._host else None
            fds = [self._dev_master] + ([host] if host is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                with self._lock:
                    if fd == self._dev_master:
                        if self._host is not None:
                            os.write(self._host[0], data)
                    elif self._host is not None and fd == self._host[0]:
                        os.write(self._dev_master, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.unplug()
        _close((self._dev_slave, self._dev_master))


def _close(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _meter_state(device_id: str, seed: int, role: str = "sub-meter") -> SimEnergyMeter:
    device = EnergyMeter(id=device_id, kind="energy_meter", space="serial", role=role)
    return SimEnergyMeter(device, "kera", seed, ZoneInfo("Europe/Helsinki"))


def meter_values(meter: SimEnergyMeter, time_ms: int, dt_s: float, phases: int) -> dict[str, float]:
    """A meter's readings now, per phase: power split unevenly over the phases."""
    v = meter.step(time_ms, dt_s)
    power = float(v["power_w"])
    out = {
        "power_w": power,
        "energy_kwh": float(v["energy_kwh"]),
        "energy_export_kwh": meter.export_kwh,
        "frequency_hz": round(meter.rng.gauss(50.0, 0.02), 3),
    }
    shares = (0.45, 0.3, 0.25) if phases == 3 else (1.0,)
    for n, share in enumerate(shares, 1):
        voltage = round(meter.rng.gauss(230.0, 1.2), 1)
        out[f"voltage_l{n}_v"] = voltage
        out[f"current_l{n}_a"] = round(abs(power) * share / voltage, 3)
    return out


# -- Modbus RTU meters --------------------------------------------------------------------------


class ModbusBusSim:
    """A pymodbus RTU server on `port` holding one register block per meter (unit id), with
    values that change every `update_s` as a real meter's do."""

    def __init__(self, port: str, meters: list[tuple[int, str, str]], seed: int = 1) -> None:
        self.meters = meters  # (unit, model, device id)
        self._states = {unit: _meter_state(dev, seed) for unit, _, dev in meters}
        devices: dict[int, ModbusDeviceContext | ModbusSimulatorContext] = {
            unit: ModbusDeviceContext(
                # 1: this (deprecated) block counts addresses from 1; register 0 is its first.
                ir=ModbusSequentialDataBlock(1, [0] * 0x60)  # type: ignore[no-untyped-call]
            )
            for unit, _, _ in meters
        }
        self.context = ModbusServerContext(devices=devices, single=False)
        self.server = ModbusSerialServer(
            self.context, port=port, baudrate=9600, timeout=0.5, reconnect_delay=0.5
        )
        self.values: dict[int, dict[str, float]] = {}
        self._last_ms = 0

    async def update(self) -> None:
        now = time.time_ns() // 1_000_000
        dt = (now - self._last_ms) / 1000 if self._last_ms else 0.0
        self._last_ms = now
        for unit, model, _ in self.meters:
            v = meter_values(self._states[unit], now, dt, 3 if model == "sdm630" else 1)
            if model == "sdm120":
                v["voltage_v"], v["current_a"] = v["voltage_l1_v"], v["current_l1_a"]
            self.values[unit] = v
            for name, address in REGISTER_MAPS[model].items():
                regs = AsyncModbusSerialClient.convert_to_registers(
                    float(v[name]), AsyncModbusSerialClient.DATATYPE.FLOAT32
                )
                await self.server.async_setValues(unit, 4, address, regs)

    async def run(self, update_s: float = 1.0, stop: asyncio.Event | None = None) -> None:
        await self.update()
        serve = asyncio.create_task(self.server.serve_forever())
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), update_s)
                await self.update()
        finally:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            serve.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serve


# -- P1 / HAN -----------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/ARC (polynomial 0xA001 reflected, initial 0), as DSMR P1 telegrams use."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def p1_telegram(values: dict[str, float], time_ms: int, tz: ZoneInfo) -> bytes:
    """A Finnish HAN (Nordic OBIS list) telegram, with its CRC."""
    local = datetime.fromtimestamp(time_ms / 1000, UTC).astimezone(tz)
    season = "S" if local.dst() else "W"
    power = values["power_w"] / 1000
    lines = [
        "/ADN9 6534",
        "",
        f"0-0:1.0.0({local:%y%m%d%H%M%S}{season})",
        f"1-0:1.8.0({values['energy_kwh']:012.3f}*kWh)",
        f"1-0:2.8.0({values['energy_export_kwh']:012.3f}*kWh)",
        f"1-0:1.7.0({max(power, 0):08.3f}*kW)",
        f"1-0:2.7.0({max(-power, 0):08.3f}*kW)",
        *(f"1-0:{20 * n + 12}.7.0({values[f'voltage_l{n}_v']:05.1f}*V)" for n in (1, 2, 3)),
        *(f"1-0:{20 * n + 11}.7.0({values[f'current_l{n}_a']:05.1f}*A)" for n in (1, 2, 3)),
        "!",
    ]
    body = "\r\n".join(lines).encode("ascii")
    return body + f"{crc16(body):04X}\r\n".encode()


class P1Sim:
    def __init__(
        self, port: str, interval_s: float = 10.0, bad_crc: float = 0.0, seed: int = 1
    ) -> None:
        self._port = serial.Serial(port, baudrate=115200)
        self.interval_s = interval_s
        self.bad_crc = bad_crc
        self._meter = _meter_state("han", seed, role="main-supply")
        self._rng = random.Random(f"{seed}:p1")
        self.tz = ZoneInfo("Europe/Helsinki")
        self.sent: list[tuple[int, dict[str, float], bool]] = []  # (time, values, crc good)

    def send_one(self, time_ms: int | None = None) -> None:
        now = time_ms or time.time_ns() // 1_000_000
        dt = (now - self.sent[-1][0]) / 1000 if self.sent else self.interval_s
        values = meter_values(self._meter, now, dt, 3)
        telegram = p1_telegram(values, now, self.tz)
        good = self._rng.random() >= self.bad_crc
        if not good:
            wrong = b"0000" if telegram[-6:-2] != b"0000" else b"FFFF"
            telegram = telegram[:-6] + wrong + b"\r\n"
        self._port.write(telegram)
        self._port.flush()
        self.sent.append((now, values, good))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.send_one()
            stop.wait(self.interval_s)

    def close(self) -> None:
        self._port.close()


# -- line concentrator --------------------------------------------------------------------------


class LineSim:
    """A USB radio concentrator printing one reading per line, with switchable faults."""

    def __init__(
        self,
        link: PtyLink | str,  # a pseudo-terminal pair, or a real port's path
        devices: list[tuple[str, str]],  # (device id, kind)
        interval_s: float = 1.0,
        noise: float = 0.0,
        cut: float = 0.0,
        bad_checksum: float = 0.0,
        seed: int = 1,
    ) -> None:
        self.link = link if isinstance(link, PtyLink) else None
        port = link.device_port if isinstance(link, PtyLink) else link
        self._port = serial.Serial(port, baudrate=115200)
        self.devices = devices
        self.interval_s = interval_s
        self.noise, self.cut, self.bad_checksum = noise, cut, bad_checksum
        self._rng = random.Random(f"{seed}:lines")
        self.counts: Counter[str] = Counter()
        self.sent: list[dict[str, object]] = []  # the readings sent whole and valid
        self._cut_pending = False

    def reading(self, device: str, kind: str, time_ms: int) -> dict[str, object]:
        r = self._rng
        if kind == "waste_bin":
            return {"device": device, "ts": time_ms, "distance_mm": round(r.uniform(100, 900))}
        if kind == "occupancy":
            return {"device": device, "ts": time_ms, "people": r.randint(0, 30)}
        return {"device": device, "ts": time_ms, "power_w": round(r.uniform(0, 5000), 1),
                "energy_kwh": round(1000 + time_ms / 3.6e9, 3)}  # fmt: skip

    def send_round(self) -> None:
        now = time.time_ns() // 1_000_000
        for i, (device, kind) in enumerate(self.devices):
            obj = self.reading(device, kind, now + i)
            line = frame(obj)
            r = self._rng.random()
            if r < self.noise:
                # Radio noise the concentrator printed as a line of its own.
                self._port.write(bytes(self._rng.randrange(256) for _ in range(12)) + b"\n")
                self.counts["noise"] += 1
            r = self._rng.random()
            # A cut frame runs into the next line, which is then lost with it.
            lost_to_cut, self._cut_pending = self._cut_pending, False
            if r < self.cut:
                line = line[: len(line) // 2]
                self.counts["cut"] += 1
                self._cut_pending = True
            elif r < self.cut + self.bad_checksum:
                line = line[:-3] + (b"00" if line[-3:-1] != b"00" else b"11") + b"\n"
                self.counts["bad_checksum"] += 1
            elif not lost_to_cut:
                self.sent.append(obj)
            self._port.write(line)
        self._port.flush()

    def run(self, stop: threading.Event, unplug_every_s: float = 0.0) -> None:
        """Rounds until `stop`; pulling the (simulated) adapter for 2 s every `unplug_every_s`."""
        link = self.link
        every = unplug_every_s if link is not None else 0.0
        next_unplug = time.monotonic() + every if every else float("inf")
        while not stop.is_set():
            if link is not None and time.monotonic() >= next_unplug:
                link.unplug()
                stop.wait(2.0)
                link.plug()
                next_unplug = time.monotonic() + every
            if link is None or link.plugged:
                self.send_round()
            stop.wait(self.interval_s)

    def close(self) -> None:
        self._port.close()


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))
