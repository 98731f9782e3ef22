"""Serial links the ingestor reads: Modbus RTU buses, P1/HAN ports and line-framed ports
(docs/serial.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from devices.site._types import (
    DeviceId,
)


class SerialPort(BaseModel):
    """A serial link: where it is and how its bytes are framed (docs/serial.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: DeviceId = Field(description="names the link in logs and metrics")
    port: str = Field(min_length=1, description="e.g. /dev/serial/by-id/usb-FTDI_...-if00-port0")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    republish: bool = Field(
        False,
        description="publish readings on kera/{site}/{device}/telemetry instead of writing "
        "them directly; the ingestor then takes them from the broker like any device",
    )


MeterModel = Literal["sdm630", "sdm120"]


class ModbusMeter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: DeviceId = Field(description="an energy_meter of the site")
    unit: int = Field(ge=1, le=247, description="Modbus unit (slave) id on the bus")
    model: MeterModel = Field(description="register map: sdm630 (3-phase) or sdm120 (1-phase)")
    interval_s: float = Field(10.0, gt=0, description="poll interval")


class ModbusBus(SerialPort):
    framing: Literal["modbus_rtu"]
    timeout_s: float = Field(1.0, gt=0, description="answer timeout per request")
    retries: int = Field(2, ge=0, le=10, description="retries per request before it fails")
    offline_after: int = Field(
        3, ge=1, description="failed polls in a row before the meter is marked offline"
    )
    meters: list[ModbusMeter] = Field(min_length=1)


class P1Port(SerialPort):
    framing: Literal["p1"]
    baudrate: int = 115200
    device: DeviceId = Field(description="the energy_meter the HAN/P1 port belongs to")
    spec: Literal["nordic", "dsmr5"] = Field(
        "nordic",
        description="OBIS list: nordic (Finnish/Swedish HAN: 1.8.0/2.8.0 totals) or dsmr5 "
        "(Dutch DSMR 5: tariff registers)",
    )


class LinePort(SerialPort):
    framing: Literal["lines"]
    baudrate: int = 115200
    max_line_bytes: int = Field(4096, ge=64, description="longer lines are cut frames")


SerialSource = Annotated[ModbusBus | P1Port | LinePort, Field(discriminator="framing")]
