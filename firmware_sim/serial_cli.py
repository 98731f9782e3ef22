"""`kera-sim serial ...`: serial devices (a Modbus RTU bus, a HAN/P1 port, a line-framed gateway)
behind a pseudo-terminal or a real port (docs/serial.md)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from firmware_sim.serial import PtyLink

from firmware_sim._cli_common import Config, console, load_registry

serial_app = typer.Typer(
    add_completion=False, help="Serial devices behind a pseudo-terminal (docs/serial.md)."
)

Link = Annotated[
    Path,
    typer.Option(
        help="Path the ingestor opens (a symlink to the pseudo-terminal); use it as "
        "the serial link's `port` in the site file"
    ),
]
Duration = Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C")]
DevicePort = Annotated[
    str | None,
    typer.Option(
        "--port",
        help="Play the device on this real serial port (e.g. a USB adapter wired to the "
        "gateway under test) instead of a pseudo-terminal",
    ),
]


def _device_side(link: Path, port: str | None) -> tuple[PtyLink | None, str]:
    from firmware_sim.serial import PtyLink

    if port is not None:
        return None, port
    pty = PtyLink(link)
    return pty, pty.device_port


def _until(duration: float) -> float:
    return time.monotonic() + duration if duration > 0 else float("inf")


# The default links in /tmp (bandit's S108): PtyLink.plug makes the symlink under a new name and
# renames it into place, so a file another user left at the path is neither followed nor
# replaced (sticky /tmp refuses the rename) and the command fails saying so.
@serial_app.command("modbus")
def serial_modbus(
    link: Link = Path("/tmp/kera-tty-modbus"),  # noqa: S108 - renamed into place, see above
    meter: Annotated[
        list[str] | None, typer.Option(help="unit:model, e.g. 1:sdm630 (repeatable)")
    ] = None,
    update_s: Annotated[float, typer.Option(help="How often the registers change")] = 1.0,
    duration: Duration = 0.0,
    seed: Annotated[int, typer.Option()] = 1,
    port: DevicePort = None,
) -> None:
    """A Modbus RTU bus of energy meters (a real pymodbus server), 9600 8N1."""
    import asyncio

    from firmware_sim.serial import ModbusBusSim

    meters = []
    for spec in meter or ["1:sdm630", "2:sdm120"]:
        unit, _, model = spec.partition(":")
        if model not in ("sdm630", "sdm120") or not unit.isdigit():
            raise typer.BadParameter(f"{spec!r}: give unit:model, model sdm630 or sdm120")
        meters.append((int(unit), model, f"meter-{unit}"))
    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # its deprecation notice
    pty, device_port = _device_side(link, port)
    console.print(f"Modbus RTU bus on [bold]{port or link}[/bold] (9600 8N1): {meters}")

    async def main() -> None:
        stop = asyncio.Event()
        bus = ModbusBusSim(device_port, meters, seed)
        task = asyncio.create_task(bus.run(update_s, stop))
        try:
            if duration > 0:
                await asyncio.sleep(duration)
            else:
                await asyncio.Event().wait()  # until Ctrl-C
        finally:
            stop.set()
            await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if pty is not None:
            pty.close()


@serial_app.command("p1")
def serial_p1(
    link: Link = Path("/tmp/kera-tty-han"),  # noqa: S108 - renamed into place, see above
    interval: Annotated[float, typer.Option(help="Seconds between telegrams")] = 10.0,
    bad_crc: Annotated[float, typer.Option(help="Share of telegrams with a wrong CRC")] = 0.0,
    duration: Duration = 0.0,
    seed: Annotated[int, typer.Option()] = 1,
    port: DevicePort = None,
) -> None:
    """A Finnish HAN port: a P1 telegram (Nordic OBIS list, CRC16) every `interval`, 115200 8N1."""
    import threading

    from firmware_sim.serial import P1Sim

    pty, device_port = _device_side(link, port)
    sim = P1Sim(device_port, interval, bad_crc, seed)
    console.print(f"HAN/P1 on [bold]{port or link}[/bold] (115200 8N1), every {interval} s")
    stop = threading.Event()
    try:
        deadline = _until(duration)
        while not stop.is_set() and time.monotonic() < deadline:
            sim.send_one()
            stop.wait(min(interval, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
        if pty is not None:
            pty.close()
    good = sum(1 for _, _, ok in sim.sent if ok)
    console.print(f"{len(sim.sent)} telegrams, {len(sim.sent) - good} with a wrong CRC")


@serial_app.command("line")
def serial_line(
    link: Link = Path("/tmp/kera-tty-radio"),  # noqa: S108 - renamed into place, see above
    device: Annotated[
        list[str] | None, typer.Option(help="Devices it relays (default: the site's bins)")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between rounds")] = 5.0,
    noise: Annotated[float, typer.Option(help="Share of rounds with a line of noise")] = 0.0,
    cut: Annotated[float, typer.Option(help="Share of lines cut short")] = 0.0,
    bad_checksum: Annotated[float, typer.Option(help="Share with a wrong checksum")] = 0.0,
    unplug_every: Annotated[
        float, typer.Option(help="Pull the USB adapter for 2 s every N seconds (0: never)")
    ] = 0.0,
    duration: Duration = 0.0,
    config: Config = None,
    seed: Annotated[int, typer.Option()] = 1,
    port: DevicePort = None,
) -> None:
    """A USB radio concentrator printing one JSON reading per line with a checksum."""
    import threading

    from firmware_sim.serial import LineSim

    registry = load_registry(config)
    chosen = [d for d in registry if (d.id in device if device else d.kind == "waste_bin")]
    if not chosen:
        raise typer.BadParameter("no such devices in the site file")
    pty, device_port = _device_side(link, port)
    sim = LineSim(
        pty or device_port,
        [(d.id, d.kind) for d in chosen],
        interval,
        noise,
        cut,
        bad_checksum,
        seed,
    )
    console.print(
        f"concentrator on [bold]{port or link}[/bold] (115200 8N1): {len(chosen)} devices"
    )
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop, unplug_every), daemon=True)
    runner.start()
    try:
        deadline = _until(duration)
        while runner.is_alive() and time.monotonic() < deadline:
            runner.join(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        runner.join(5)
        sim.close()
        if pty is not None:
            pty.close()
    console.print(f"{len(sim.sent)} good lines; faults {dict(sim.counts)}")
