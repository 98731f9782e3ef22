"""Automated alerts, evaluated on the stream of readings and device status (docs/operators.md).

Rule kinds:
- `threshold`: a field at or over `warning` / `critical` (or under, with `below: true`) for at
  least `for_s`; it clears only once back past `clear` (hysteresis), so a value hovering at the
  threshold does not flap. A boolean field fires on `true` (a tilted bin).
- `rate`: a field changing faster than `warning` / `critical` units per minute.
- `offline`: a device's last will (`online=false`), or no reading within `intervals` times the
  device's expected interval. Silence is measured on `steady_ms`, this process's clock that
  never steps: a wall clock set 2 h forward fired every device offline before.

`power_max` style limits per device come from the site file's `thresholds`
(`limit_key: max_power_w` takes the device's `thresholds.max_power_w`).

Every transition (firing at a level, or resolved) goes to the `notify` callback once; the
service publishes it retained on `kera/{site}/alerts/{rule}/{device}`, writes it to the `alerts`
measurement and hands it to the webhooks. The state is saved to a JSON file on each transition
and loaded at start, so a restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from devices import Registry
from devices.contract import DEVICE_STATUS_MEASUREMENT
from devices.site import DEFAULT_RULES, AlertRule
from ingest.reading import Reading
from ingest.storage.files import private

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Transition:
    rule: str
    device: str
    firing: bool
    level: str  # warning, critical, or ok when resolved
    value: float | None
    time_ms: int
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class _State:
    level: str = "ok"
    pending_since_ms: int | None = None
    pending_level: str | None = None
    last_value: float | None = None
    last_ms: int | None = None


def _num(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _past(value: float, limit: float | None, below: bool) -> bool:
    if limit is None:
        return False
    return value <= limit if below else value >= limit


class AlertEngine:
    def __init__(
        self,
        registry: Registry,
        rules: Iterable[AlertRule],
        notify: Callable[[Transition], None],
        state_file: Path | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._registry = registry
        # When a reading arrives, for silence; `tick` is given the same clock's time.
        self._clock = clock or steady_ms
        self.rules = list(rules)
        self._notify = notify
        self._state_file = state_file
        self._by_measurement: dict[str, list[AlertRule]] = {}
        for rule in self.rules:
            if rule.kind in ("threshold", "rate") and rule.measurement:
                self._by_measurement.setdefault(rule.measurement, []).append(rule)
        self._offline = [r for r in self.rules if r.kind == "offline"]
        # Each rule's levels as numbers, once (they were converted for every reading).
        self._fixed = {r.name: (_num(r.warning), _num(r.critical)) for r in self.rules}
        self._state: dict[tuple[str, str], _State] = {}
        self.last_seen_ms: dict[str, int] = {}
        # Transitions delivered whose state could not be saved (a full disk).
        self.save_errors = 0
        # Devices with an offline rule not "ok": every reading asks, so a set, not the rules.
        self._silent: set[str] = set()
        self._load()

    # -- the stream -----------------------------------------------------------------------------

    def observe(self, reading: Reading) -> None:
        """Called for every stored reading; cheap when no rule looks at its measurement."""
        device = reading.device.id
        if reading.measurement == DEVICE_STATUS_MEASUREMENT:
            online = reading.fields.get("online")
            if online is False:
                for rule in self._offline:
                    self._set(rule, device, "critical", None, reading.time_ms, "last will")
            elif online is True:
                self.last_seen_ms[device] = self._clock()
                for rule in self._offline:
                    self._set(rule, device, "ok", None, reading.time_ms, "back online")
            return
        # Silence is judged by when readings arrive (a backfill's old timestamps are not
        # silence), on the steady clock (a step of the wall clock is not silence either).
        self.last_seen_ms[device] = self._clock()
        for rule in self._offline if device in self._silent else ():
            st = self._state.get((rule.name, device))
            if st is not None and st.level != "ok":
                self._set(rule, device, "ok", None, reading.time_ms, "reporting again")
        rules = self._by_measurement.get(reading.measurement)
        if not rules:
            return
        for rule in rules:
            value = reading.fields.get(rule.field_name or "")
            if value is None:
                continue
            if rule.kind == "threshold":
                self._threshold(rule, reading, value)
            else:
                self._rate(rule, reading, value)

    def tick(self, now_ms: int) -> None:
        """No-data check, called periodically: a device silent for `intervals` expected
        intervals is offline."""
        for rule in self._offline:
            for device in self._registry:
                seen = self.last_seen_ms.get(device.id)
                if seen is None:
                    continue
                limit = rule.intervals * device.expected_interval_s * 1000
                if now_ms - seen > limit:
                    st = self._state.get((rule.name, device.id))
                    if st is None or st.level == "ok":
                        self._set(
                            rule,
                            device.id,
                            "critical",
                            None,
                            now_ms,
                            f"no reading for {(now_ms - seen) / 1000:.0f} s",
                        )

    # -- rule kinds -----------------------------------------------------------------------------

    def _levels(self, rule: AlertRule, device_id: str) -> tuple[float | None, float | None]:
        warning, critical = self._fixed[rule.name]
        if rule.limit_key:
            device = self._registry.get(device_id)
            limit = device.thresholds.get(rule.limit_key) if device else None
            if limit is None:
                return None, None
            critical = float(limit)
        return warning, critical

    def _threshold(self, rule: AlertRule, reading: Reading, raw: object) -> None:
        value = _num(raw)
        if value is None:
            return
        device = reading.device.id
        warning, critical = self._levels(rule, device)
        if warning is None and critical is None:
            return
        below = rule.below
        level = (
            "critical"
            if _past(value, critical, below)
            else "warning"
            if _past(value, warning, below)
            else "ok"
        )
        st = self._state.setdefault((rule.name, device), _State())
        if level == "ok" and st.level != "ok":
            clear = rule.clear
            if clear is None:
                clear = warning if warning is not None else critical
            assert clear is not None
            still = value < clear if rule.below else value > clear
            if still:
                level = st.level  # hysteresis: hold until past the clear level
        st.last_value = value
        if level == st.level or (level != "ok" and _rank(level) < _rank(st.level)):
            # No change, or a firing alert easing from critical to warning: keep it simple and
            # report only escalations and the resolution.
            st.pending_since_ms = None
            return
        if level != "ok" and rule.for_s:
            if st.pending_level != level or st.pending_since_ms is None:
                st.pending_level, st.pending_since_ms = level, reading.time_ms
                return
            if reading.time_ms - st.pending_since_ms < rule.for_s * 1000:
                return
        st.pending_since_ms = st.pending_level = None
        unit = reading.device.spec.all_fields().get(rule.field_name or "")
        unit_text = f" {unit.unit}" if unit is not None and unit.unit else ""
        msg = (
            f"{rule.field_name}={raw}{unit_text}"
            if level != "ok"
            else f"{rule.field_name} back to {raw}{unit_text}"
        )
        self._set(rule, device, level, value, reading.time_ms, msg)

    def _rate(self, rule: AlertRule, reading: Reading, raw: object) -> None:
        value = _num(raw)
        if value is None:
            return
        st = self._state.setdefault((rule.name, reading.device.id), _State())
        prev, prev_ms = st.last_value, st.last_ms
        st.last_value, st.last_ms = value, reading.time_ms
        if prev is None or prev_ms is None or reading.time_ms <= prev_ms:
            return
        per_min = (value - prev) / ((reading.time_ms - prev_ms) / 60_000)
        warning, critical = self._fixed[rule.name]
        level = (
            "critical"
            if critical is not None and abs(per_min) >= critical
            else "warning"
            if warning is not None and abs(per_min) >= warning
            else "ok"
        )
        if level != st.level:
            self._set(
                rule,
                reading.device.id,
                level,
                per_min,
                reading.time_ms,
                f"{rule.field_name} changing {per_min:+.1f}/min",
            )

    # -- transitions and state ------------------------------------------------------------------

    def _set(
        self, rule: AlertRule, device: str, level: str, value: float | None, time_ms: int, msg: str
    ) -> None:
        st = self._state.setdefault((rule.name, device), _State())
        if st.level == level:
            return
        st.level = level
        if rule.kind == "offline":
            self._mark_silent(device)
        t = Transition(rule.name, device, level != "ok", level, value, time_ms, msg)
        log.warning(
            "alert %s %s on %s: %s", rule.name, "FIRING " + level if t.firing else "resolved",
            device, msg,
        )  # fmt: skip
        # Delivered first: a disk that refuses the state file must not swallow the alert.
        self._notify(t)
        try:
            self._save()
        except OSError as exc:
            self.save_errors += 1
            log.error(
                "alert state not saved to %s (%s): after a restart this transition may be "
                "announced again",
                self._state_file,
                exc,
            )

    def _mark_silent(self, device: str) -> None:
        state = self._state
        if any(
            (st := state.get((r.name, device))) is not None and st.level != "ok"
            for r in self._offline
        ):
            self._silent.add(device)
        else:
            self._silent.discard(device)

    def firing(self) -> list[tuple[str, str, str]]:
        return sorted((r, d, s.level) for (r, d), s in self._state.items() if s.level != "ok")

    def _save(self) -> None:
        if self._state_file is None:
            return
        data = {
            "firing": [
                {"rule": r, "device": d, "level": s.level}
                for (r, d), s in self._state.items()
                if s.level != "ok"
            ],
            "last_seen_ms": self.last_seen_ms,
        }
        tmp = self._state_file.with_suffix(".tmp")
        self._state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Owner-only: device names and their alert history are the site's business.
        with open(tmp, "w", opener=private) as f:
            f.write(json.dumps(data))
        os.replace(tmp, self._state_file)

    def _load(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            data = json.loads(self._state_file.read_text())
            for item in data.get("firing", []):
                self._state[(item["rule"], item["device"])] = _State(level=item["level"])
                self._mark_silent(item["device"])
            self.last_seen_ms.update({k: int(v) for k, v in data.get("last_seen_ms", {}).items()})
        except (ValueError, KeyError, TypeError) as exc:
            log.error("alert state %s unreadable (%s); starting clean", self._state_file, exc)


_RANKS = {"ok": 0, "warning": 1, "critical": 2}


def _rank(level: str) -> int:
    return _RANKS[level]


_WALL0_NS = time.time_ns()
_MONO0_NS = time.monotonic_ns()


def steady_ms() -> int:
    """Milliseconds on a clock that reads the wall clock's time at start and then only moves
    forward, at the monotonic clock's pace: silence measured on it ignores NTP steps and a
    clock someone sets by hand."""
    return (_WALL0_NS + time.monotonic_ns() - _MONO0_NS) // 1_000_000


__all__ = ["DEFAULT_RULES", "AlertEngine", "AlertRule", "Transition"]
