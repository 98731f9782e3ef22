"""Payload formats to `Decoded`, one module per format, chosen by topic (the site's `sources`).

Every codec is a function (topic, payload, site id, receive time in ms) -> list[Decoded] that
raises only `Rejected`. The validator does the rest, whichever codec a message came through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices import Codec, Site, Source, UnknownFields
from ingest.codecs import chirpstack, native, senml, tts_v3
from ingest.codecs._cache import remember
from ingest.codecs._js import CodecError as CodecError
from ingest.codecs._js import PayloadCodec as PayloadCodec
from ingest.codecs._sandbox import CodecSandbox as CodecSandbox
from ingest.codecs.discovery import DiscoveryCodec
from ingest.codecs.templated import TemplateCodec
from ingest.reading import Decoded, Reason, Rejected

DecodeFn = Callable[[str, bytes, str, int], list[Decoded]]

CODECS: dict[Codec, DecodeFn] = {
    Codec.NATIVE: native.decode,
    Codec.SENML: senml.decode,
    Codec.TTS_V3: tts_v3.decode,
    Codec.CHIRPSTACK_V4: chirpstack.decode,
    Codec.CHIRPSTACK_V3: chirpstack.decode,
}


@dataclass(frozen=True, slots=True)
class Route:
    """What a topic's messages go through: the source's codec and its unknown-field policy."""

    decode: DecodeFn
    unknown_fields: UnknownFields


def _decoder(source: Source, site: Site) -> DecodeFn:
    if source.codec is Codec.JSON:
        # Its own instance: the source's templates and the site's device names.
        return TemplateCodec(source, site).decode
    return CODECS[source.codec]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (+ one level, # the rest), as the broker does it."""
    f = topic_filter.split("/")
    t = topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


class Router:
    """Topic -> codec, first matching source wins. Remembers its answer per topic: a site has
    a few topics per device, so the cache stays small, and it is cleared if hostile traffic on
    made-up topics fills it."""

    __slots__ = ("_cache", "_routes", "_site", "filters")

    def __init__(self, site: Site) -> None:
        self._site = site
        self._routes: list[tuple[str, Route]] = []
        for source in site.sources:
            route = Route(_decoder(source, site), source.unknown_fields)
            self._routes += [(f, route) for f in source.filters(site.site)]
        if site.discovery.enabled:
            announced = Route(DiscoveryCodec(site).decode, "ignore")
            self._routes += [(f, announced) for f in site.discovery.filters()]
        self.filters = [f for f, _ in self._routes]
        self._cache: dict[str, Route | None] = {}

    def source_of(self, topic: str) -> str | None:
        """Which source and template take a topic, in words (check-site), or None."""
        for i, source in enumerate(self._site.sources):
            filters = source.filters(self._site.site)
            if not any(topic_matches(f, topic) for f in filters):
                continue
            what = f"sources[{i}] ({source.preset.value if source.preset else source.codec.value})"
            if source.codec is Codec.JSON:
                levels = topic.split("/")
                for t in (
                    *source.status_templates(self._site.site),
                    *source.templates(self._site.site),
                ):
                    bound = t.match(levels)
                    if bound is not None:
                        names = ", ".join(f"{k}={v!r}" for k, v in bound.items())
                        return f"{what}, template {t.text} ({names})"
            return f"{what}, filter {next(f for f in filters if topic_matches(f, topic))}"
        return None

    def route(self, topic: str) -> Route:
        try:
            fn = self._cache[topic]
        except KeyError:
            fn = remember(
                self._cache,
                topic,
                next((c for f, c in self._routes if topic_matches(f, topic)), None),
            )
        if fn is None:
            raise Rejected(
                Reason.BAD_TOPIC,
                f"topic {topic[:120]!r} matches none of the site's sources "
                f"({', '.join(self.filters)})",
            )
        return fn
