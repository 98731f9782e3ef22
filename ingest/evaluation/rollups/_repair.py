"""The repair of late readings: a reading that would change a final hour is held (`observe`),
grouped with its device's (or its space's sensors') others (`take_late`), and its hours are
recomputed from its neighbours read back from InfluxDB (`repair_steps`, driven by `repair_late`
in _storage.py) in a scratch engine, then imported into the live one."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from devices import AnyDevice
from devices.site import (
    EnergyMeter,
    OccupancySensor,
    WasteBin,
)
from ingest.reading import Reading

from ._energy import HOUR_MS
from ._hourly import HourLines
from ._hours import Hours
from ._kinds import (
    CounterMeter,
    rolled_values,
)
from ._series import Series
from ._space import SpaceHour
from ._waste import SPAN, Emptying

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Repair:
    """Late readings whose hours are recomputed together: a device's, or for occupancy every
    sensor of the space (a space's hour combines its sensors)."""

    devices: tuple[AnyDevice, ...]  # whose stored readings the repair reads
    since_ms: int  # the earliest late reading
    late: dict[str, Series]  # by device id

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.late.values())


class Repairs(HourLines):
    """The repairing part of `Rollups`, which inherits it; the state below is the engine's."""

    _late: dict[str, Series]
    _late_n: int
    _keep_ms: int
    _oldest: int
    _dirty: dict[str, int]
    too_late: int
    repaired: int

    def _scratch(self) -> Self:
        """An engine that keeps every reading it is given and writes nothing."""
        raise NotImplementedError

    def _put(self, device_id: str, t: int, primary: float, secondary: float | None) -> None:
        raise NotImplementedError

    def load(self, device_id: str, t: int, primary: float, secondary: float | None) -> None:
        """A reading into the window as it is, late or not (a scratch engine's input)."""
        self._put(device_id, t, primary, secondary)

    def window(self, device_id: str) -> Series | None:
        """The device's readings in the window."""
        return self._raw.get(device_id)

    def space_hours(self, space: str) -> Hours[SpaceHour] | None:
        """The space's computed hours."""
        return self._spaces.get(space)

    def flush_steps(self, write: bool = True) -> Generator[None, None, int]:
        raise NotImplementedError

    @property
    def late(self) -> int:
        """Late readings held for a repair."""
        return self._late_n

    def take_late(self) -> list[Repair]:
        """The late readings held so far, grouped into repairs; they are the caller's now."""
        late, self._late, self._late_n = self._late, {}, 0
        groups: dict[str, list[str]] = {}
        for device_id in late:
            device = self._registry.get(device_id)
            if device is None:
                continue
            key = f"space:{device.space}" if isinstance(device, OccupancySensor) else device_id
            groups.setdefault(key, []).append(device_id)
        repairs = []
        for key, ids in groups.items():
            devices: tuple[AnyDevice, ...]
            if key.startswith("space:"):
                space = key.removeprefix("space:")
                devices = tuple(
                    d for d in self._space_devices[space] if isinstance(d, OccupancySensor)
                )
            else:
                devices = tuple(d for i in ids if (d := self._registry.get(i)) is not None)
            since = min(late[i].times[0] for i in ids)
            repairs.append(Repair(devices, since, {i: late[i] for i in ids}))
        return repairs

    def give_back(self, repairs: Sequence[Repair]) -> None:
        """Late readings a repair could not finish (InfluxDB unreachable): held again."""
        for repair in repairs:
            for device_id, series in repair.late.items():
                held = self._late.get(device_id)
                if held is None:
                    held = self._late[device_id] = Series()
                for i in range(len(series)):
                    t = series.times[i]
                    self._late_n += held.put(t, series.primary[i], series.secondary_at(i))

    def repair_steps(
        self, repair: Repair, since_hour: int, stored: Mapping[str, Sequence[Reading]]
    ) -> Generator[None, None, int]:
        """Recompute the hours from `since_hour` to each device's horizon from `stored` (their
        readings from InfluxDB: from the SPAN + 1 before `since_hour` to the horizon), the live
        window and the late readings, and write what changed with the days they are part of.
        `since_hour` is the hour of the SPAN + 1-th stored reading before the earliest late
        one: that far back a late reading can change an interval, a hold or a median. In steps,
        like `flush_steps`; never run the two at the same time."""
        if self._day(since_hour) < self._oldest:
            # The other hours of that day are gone: only a recompute can give it whole.
            self.too_late += repair.readings
            log.warning(
                "rollups: %d readings of %s came later than the %d days the rollups keep; "
                "`kera-ingest rollups` recomputes their days",
                repair.readings, ", ".join(sorted(repair.late)), self._keep_ms // (24 * HOUR_MS),
            )  # fmt: skip
            return 0
        temp = self._scratch()
        for d in repair.devices:
            for reading in stored.get(d.id, ()):
                values = rolled_values(reading)
                if values is not None and values[0] is not None:
                    temp.load(d.id, reading.time_ms, values[0], values[1])
            for series in (self._raw.get(d.id), repair.late.get(d.id)):
                for i in range(len(series or ())):
                    assert series is not None
                    temp.load(d.id, series.times[i], series.primary[i], series.secondary_at(i))
        yield
        yield from temp.flush_steps(write=False)

        lines: list[str] = []
        device_days: set[tuple[str, int]] = set()
        space_hours: set[tuple[str, int]] = set()
        emptyings: list[tuple[WasteBin, Emptying, bool]] = []
        for d in repair.devices:
            yield
            lines += self._import_device(d, temp, since_hour, device_days, space_hours, emptyings)
            self._restore_window(d.id, temp.window(d.id), repair.late.get(d.id))
        occupancy = [d for d in repair.devices if isinstance(d, OccupancySensor)]
        if occupancy:
            space = occupancy[0].space
            end = max(self.horizon(d.id) for d in occupancy)
            fresh = temp.space_hours(space)
            if fresh is not None:
                _replace(self._spaces, space, fresh, since_hour, end)
            for hour in range(since_hour, end, HOUR_MS):
                space_hours.add((space, hour))
        written = self._write_emptyings(emptyings, device_days, True)
        lines += yield from self._aggregate_lines(device_days, space_hours)
        self.repaired += repair.readings
        return written + self._emit(lines, True)

    def _import_device(
        self,
        d: AnyDevice,
        temp: Self,
        since_hour: int,
        device_days: set[tuple[str, int]],
        space_hours: set[tuple[str, int]],
        emptyings: list[tuple[WasteBin, Emptying, bool]],
    ) -> list[str]:
        """A repair's hours of one device, from `temp` into the live caches; its hourly lines."""
        end = self.horizon(d.id)
        lines: list[str] = []
        for caches, fresh in ((self._counts, temp._counts), (self._energy, temp._energy)):
            if d.id in fresh:
                _replace(caches, d.id, fresh[d.id], since_hour, end)
        if d.id in temp._counts:
            for hour, _ in temp._counts[d.id].rows(since_hour, end):
                device_days.add((d.id, self._day(hour)))
        if isinstance(d, CounterMeter) and d.id in temp._energy:
            for hour, _ in temp._energy[d.id].rows(since_hour, end):
                lines.append(self._energy_line(d, hour))
                device_days.add((d.id, self._day(hour)))
                if isinstance(d, EnergyMeter):
                    space_hours.add((d.space, hour))
        elif isinstance(d, WasteBin):
            fresh_e = {t: e for t, e in temp._emptyings.get(d.id, {}).items()
                       if since_hour <= t < end}  # fmt: skip
            known = self._emptyings.get(d.id, {})
            emptyings += [(d, e, False) for t, e in fresh_e.items() if known.get(t) != e]
            emptyings += [(d, e, True) for t, e in known.items()
                          if since_hour <= t < end and t not in fresh_e]  # fmt: skip
        return lines

    def _restore_window(self, device_id: str, known: Series | None, late: Series | None) -> None:
        """The live window again holds every reading from the SPAN + 1 before the horizon on:
        late readings there, and those they needed from storage, change hours the next flush
        computes from the window (those from the horizon on, and the interval or hold that
        crosses it). A reading the window already has stays, unless a late one replaces it:
        the window may have received newer values while the repair read storage."""
        if known is None:
            return
        raw = self._raw.get(device_id)
        if raw is None:
            raw = self._raw[device_id] = Series()
        since = None
        for i in range(max(0, known.index(self.horizon(device_id)) - SPAN - 1), len(known)):
            t = known.times[i]
            j = raw.index(t)
            if j < len(raw) and raw.times[j] == t:
                continue
            raw.put(t, known.primary[i], known.secondary_at(i))
            since = t if since is None else min(since, t)
        for i in range(len(late or ())):
            assert late is not None
            t = late.times[i]
            if t >= raw.times[0]:
                raw.put(t, late.primary[i], late.secondary_at(i))
                since = t if since is None else min(since, t)
        if since is not None:
            self._dirty[device_id] = min(self._dirty.get(device_id, since), since)


def _replace(
    caches: dict[str, Hours[Any]], key: str, fresh: Hours[Any], start: int, end: int
) -> None:
    """The hours [start, end) of `key` become those of `fresh`."""
    hours = caches.get(key)
    if hours is None:
        hours = caches[key] = fresh.empty()
    hours.clear(start, end)
    for hour, row in fresh.rows(start, end):
        hours.put(hour, row)
