"""Look-ups over a validated site: the one place that answers "is this a device we know?"."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from devices.site import (
    CatalogueDevice,
    EnergyMeter,
    HeatMeter,
    IndoorAirSensor,
    OccupancySensor,
    PeopleCounter,
    Site,
    WasteBin,
    WaterMeter,
    WeatherStation,
    load_site,
)

AnyDevice = (
    EnergyMeter
    | OccupancySensor
    | WasteBin
    | HeatMeter
    | WaterMeter
    | IndoorAirSensor
    | WeatherStation
    | PeopleCounter
    | CatalogueDevice
)


class Registry:
    """Immutable index of a site's devices by id (and by LoRaWAN dev_eui where given)."""

    __slots__ = ("_by_eui", "_by_id", "site")

    def __init__(self, site: Site) -> None:
        self.site = site
        self._by_id: Mapping[str, AnyDevice] = MappingProxyType({d.id: d for d in site.devices})
        self._by_eui: Mapping[str, AnyDevice] = MappingProxyType(
            {d.dev_eui: d for d in site.devices if d.dev_eui is not None}
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Registry:
        return cls(load_site(path))

    @property
    def site_id(self) -> str:
        return self.site.site

    def get(self, device_id: str) -> AnyDevice | None:
        return self._by_id.get(device_id)

    def by_dev_eui(self, dev_eui: str) -> AnyDevice | None:
        return self._by_eui.get(dev_eui.lower())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._by_id

    def __iter__(self) -> Iterator[AnyDevice]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
