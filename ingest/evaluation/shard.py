"""Splitting a site's evaluation over several evaluators (`KERA_EVALUATION_SHARD=k/n`).

The unit is the space: a space's rollups combine all its sensors and meters, so all of a
space's devices go to one evaluator, chosen by a stable hash of the space id (CRC-32, the same
in every process and version, unlike Python's salted `hash`). Each evaluator rolls up and
alerts on its spaces' devices only, and writes its share of the site's day (`impact_daily`)
with a `shard` tag; the site's figures are the sums over the shards, which every query of
`impact_daily` already takes (docs/deployment.md).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from devices import Codec, Registry

_FORM = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0 .. count - 1
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'1/4' (the second of four); ValueError saying what is wrong otherwise."""
        m = _FORM.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"{text!r} is not a shard like 0/4 (this one's number / how many)")
        index, count = int(m.group(1)), int(m.group(2))
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard {text!r}: the number must be 0 to {max(count, 1) - 1}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, space: str) -> bool:
        return zlib.crc32(space.encode()) % self.count == self.index

    def devices(self, registry: Registry) -> frozenset[str]:
        return frozenset(d.id for d in registry if self.owns(d.space))

    def filters(self, registry: Registry) -> list[str]:
        """This shard's subscription: a native source's filter with the device id as its third
        level (`kera/{site}/+/telemetry`) becomes one per device of the shard, so the broker
        sends only those; any other (LoRaWAN servers, SenML) stays whole, and the evaluator
        drops the other shards' readings after decoding."""
        site = registry.site
        mine = sorted(self.devices(registry))
        prefix = f"kera/{site.site}/+/"
        out: list[str] = []
        for source in site.sources:
            for f in source.filters(site.site):
                rest = f.removeprefix(prefix)
                if (
                    source.codec is Codec.NATIVE
                    and rest != f
                    and "+" not in rest
                    and "#" not in rest
                ):
                    out += [f"kera/{site.site}/{device}/{rest}" for device in mine]
                else:
                    out.append(f)
        return out
