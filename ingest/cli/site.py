"""Checking a site file and what it can use: `check-site`, `kinds`, `profiles`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from devices import Registry, SiteConfigError, terminal
from ingest.cli._common import JsonOut, console, json_lines

if TYPE_CHECKING:
    from ingest.evaluation.rollups import EmissionFactors
    from ingest.reading import Rejected


def check_site(
    config: Annotated[
        Path | None, typer.Argument(help="Site file; default: the bundled Kera site")
    ] = None,
    example: Annotated[
        Path | None,
        typer.Option(
            help="A JSON payload as the device's decoder emits it (or a bare LoRaWAN frame in "
            "hex, for a device with a codec): print the points the ingestor would write"
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="The device --example is from")] = None,
    topic: Annotated[
        str | None,
        typer.Option(
            help="The topic the --example payload came on: the whole message then goes the "
            "ingestor's way (source, template, device name, codec, mapping, limits)"
        ),
    ] = None,
    message: Annotated[
        Path | None,
        typer.Option(
            help="A file with one line as `mosquitto_sub -v` prints it (topic, space, payload; "
            "the topic may hold spaces): print the points it would become, or why not"
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Validate a site file: every kind, mapping expression, profile and codec compiles, and
    the emission factor series reads; list the devices. With --example, run a device's mapping
    on a payload and print the line-protocol points it would write; with --topic, or a whole
    message from `mosquitto_sub -v` (--message), run the message as the ingestor would."""
    registry, factors = _load(config)
    if message is not None:
        raise typer.Exit(_run_message_file(registry, message))
    if example is not None and topic is not None:
        try:
            body = example.read_bytes().strip()
        except OSError as exc:
            console.print(f"[red]{example}: cannot read the example: {exc.strerror}[/red]")
            raise typer.Exit(2) from None
        raise typer.Exit(asyncio.run(_run_message(registry, topic, body)))
    if example is not None:
        raise typer.Exit(_run_example(registry, example, device))
    if json_out:
        json_lines(
            [
                {"device": d.id, "kind": d.kind, "space": d.space,
                 "interval_s": d.expected_interval_s, "tags": d.extra_tags(),
                 "profile": d.profile,
                 "codec": str(d.codec_path) if d.codec_path is not None else None}
                for d in registry
            ]
        )  # fmt: skip
        return
    _show(registry, factors)


def _load(config: Path | None) -> tuple[Registry, EmissionFactors]:
    """The site, its codecs compiled and its emission factors read; exits 2 saying what is
    wrong otherwise. Warns of example figures."""
    from ingest.codecs import CodecError, PayloadCodec
    from ingest.evaluation.rollups import EmissionFactors

    try:
        registry = Registry.load(config)
        factors = EmissionFactors.from_impact(registry.site.impact)
        for d in registry:
            if d.codec_path is not None:
                PayloadCodec(d.codec_path)
    except (SiteConfigError, CodecError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for notice in registry.site.impact.example_notices():
        # A warning, not an error: a demo site or one still waiting for its figure may run,
        # but nobody should read its emissions as a statistic unawares.
        console.print(f"[yellow]warning: {notice}[/yellow]", soft_wrap=True)
    return registry, factors


def _show(registry: Registry, factors: EmissionFactors) -> None:
    """The devices, pilots and emission factors as tables, for a person."""
    table = Table(title=f"site {registry.site_id}: {len(registry)} devices")
    for col in ("device", "kind", "space", "interval s", "details"):
        table.add_column(col)
    for d in registry:
        details = [f"{k}={v}" for k, v in d.extra_tags().items()]
        if d.profile:
            details.append(f"profile={d.profile}")
        if d.codec_path is not None:
            details.append(f"codec={d.codec_path.name}")
        table.add_row(d.id, d.kind, d.space, f"{d.expected_interval_s:g}", ", ".join(details))
    terminal.console().print(table)
    if registry.site.pilots:
        terminal.console().print(_pilots_table(registry))
    if factors.hourly:
        from datetime import UTC, datetime

        first, last = (
            datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            for t in (min(factors.hourly), max(factors.hourly))
        )
        terminal.console().print(
            f"emission factors: {len(factors.hourly)} hours from the CSV, {first} to {last}; "
            f"other hours: {factors.constant} kg/kWh"
        )


def _pilots_table(registry: Registry) -> Table:
    table = Table(title=f"{len(registry.site.pilots)} pilots")
    for col in ("pilot", "scope", "metrics", "baseline", "intervention", "control"):
        table.add_column(col)
    for p in registry.site.pilots:
        base = p.baseline_period
        table.add_row(
            p.id,
            ", ".join((*p.scope.spaces, *p.scope.devices)),
            ", ".join(m.value for m in p.metrics),
            f"{base.start}..{base.end} ({base.days} d)",
            f"{p.start}..{p.end or 'running'}",
            ", ".join(p.control_spaces) or "-",
        )
    return table


async def _codec(
    path: Path, frame: bytes, now: int, device_id: str
) -> dict[str, object] | Rejected:
    from ingest.codecs import CodecSandbox
    from ingest.reading import Rejected

    sandbox = CodecSandbox()
    try:
        return await sandbox.decode(path, frame, 1, now, device_id)
    except Rejected as exc:
        return exc
    finally:
        await sandbox.close()


def _run_message_file(registry: Registry, path: Path) -> int:
    from ingest.codecs import Router

    try:
        line = path.read_bytes().strip()
    except OSError as exc:
        console.print(f"[red]{path}: cannot read the message: {exc.strerror}[/red]")
        return 2
    # mosquitto_sub -v prints "topic payload"; a topic may hold spaces (a Zigbee2MQTT friendly
    # name), so the split is the first space after which the topic goes to one of the sources.
    # A cut before a JSON document wins over one inside the topic ("zigbee2mqtt/Hall sensor").
    router = Router(registry.site)
    cuts = [
        i
        for i, byte in enumerate(line)
        if byte == 0x20 and router.source_of(line[:i].decode("utf-8", "replace")) is not None
    ]
    json_cuts = [i for i in cuts if line[i + 1 :].lstrip()[:1] in (b"{", b"[")]
    for i in json_cuts[:1] or cuts[:1]:
        topic = line[:i].decode("utf-8", "replace")
        return asyncio.run(_run_message(registry, topic, line[i + 1 :].strip()))
    console.print(
        f"[red]{path}: no topic at the start of the line goes to a source of the site "
        f"({', '.join(router.filters)}); is it a `mosquitto_sub -v` line?[/red]"
    )
    return 2


async def _run_message(registry: Registry, topic: str, payload: bytes) -> int:
    """A message as the ingestor takes it: the points on stdout as line protocol, the source
    it went to and anything ignored or refused on stderr."""
    import time

    from ingest.codecs import CodecSandbox, Router
    from ingest.observability.counters import Stats
    from ingest.pipeline import Deferred, Pipeline
    from ingest.settings import IngestSettings

    limits = IngestSettings.model_fields
    stats = Stats()
    sandbox = CodecSandbox()
    pipeline = Pipeline(
        registry, stats,
        max_future_s=limits["max_future_s"].default, max_age_s=limits["max_age_s"].default,
        sandbox=sandbox,
    )  # fmt: skip
    # The verdict is printed below; the service's rejection log would say it twice.
    logging.getLogger("ingest.rejected").setLevel(logging.ERROR)
    err = terminal.console(stderr=True)
    where = Router(registry.site).source_of(topic)
    err.print(f"source: {where or 'none of the site sources'}", soft_wrap=True, markup=False)
    try:
        verdict = pipeline.take(topic, payload, time.time_ns() // 1_000_000)
        if isinstance(verdict, Deferred):
            verdict = await verdict.verdict()
    finally:
        await sandbox.close()
    if not isinstance(verdict, list):
        err.print(
            f"rejected {verdict.reason.value}: {verdict.detail}", soft_wrap=True, markup=False
        )
        for line in verdict.kept:
            print(line)
        return 1
    for line in verdict:
        print(line)
    if not verdict:
        err.print("no reading (counted, not dead-lettered)")
    ignored = sorted({name for _, name in stats.unknown_fields})
    if ignored:
        err.print(f"ignored (not mapped): {', '.join(ignored)}", soft_wrap=True, markup=False)
    return 0


def _run_example(registry: Registry, path: Path, device_id: str | None) -> int:
    """The points a device's payload becomes, on stdout as plain line protocol."""
    import time

    from ingest.reading import Decoded, NoReading, Rejected
    from ingest.storage.lineproto import LineEncoder
    from ingest.validate import Validator

    if device_id is None or registry.get(device_id) is None:
        console.print(f"[red]--example needs --device, one of: {', '.join(d.id for d in registry)}")
        return 2
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        console.print(f"[red]{path}: cannot read the example: {exc.strerror}[/red]")
        return 2
    now = time.time_ns() // 1_000_000
    decoded: Decoded
    if text.startswith("{"):
        try:
            values = json.loads(text)
        except ValueError as exc:
            console.print(f"[red]{path}: not JSON: {exc}[/red]")
            return 2
        decoded = Decoded(device_id, None, values)
    else:
        try:
            raw = bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            console.print(
                f"[red]{path}: neither a JSON object nor a frame in hex; for a plain value "
                "(a Shelly or ESPHome topic), give the topic it came on: --topic[/red]"
            )
            return 2
        decoded = Decoded(device_id, None, {}, frm_payload=raw, f_port=1)
    device = registry.get(device_id)
    codec_out = None
    if decoded.frm_payload is not None and device is not None and device.codec_path is not None:
        # In its worker process with the service's deadline, as the ingestor runs it: a codec
        # that runs away costs this command a second, not a hang.
        codec_out = asyncio.run(_codec(device.codec_path, decoded.frm_payload, now, device_id))
    try:
        reading = Validator(registry).check(decoded, now, codec_out=codec_out)
    except NoReading as exc:
        console.print(f"no reading: {exc.detail}")
        return 0
    except Rejected as exc:
        console.print(f"[red]rejected {exc.reason.value}[/red]: {exc.detail}")
        return 1
    print(LineEncoder(registry.site_id).encode(reading))
    if reading.ignored:
        console.print(f"ignored (not mapped): {', '.join(reading.ignored)}")
    return 0


def kinds(
    markdown: Annotated[
        bool, typer.Option(help="The field tables of docs/data-model.md, as Markdown")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file: its own kinds too")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """The device catalogue: every kind, its measurement and fields."""
    from devices.catalogue_doc import markdown_tables

    try:
        catalogue = Registry.load(config).site.catalogue
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if markdown:
        print(markdown_tables(catalogue), end="")
        return
    if json_out:
        json_lines(
            [
                {"kind": spec.kind, "measurement": spec.measurement,
                 "extra_tags": list(spec.extra_tags), "default_interval_s": spec.default_interval_s,
                 "fields": {f.name: {"type": f.type, "unit": f.unit, "min": f.minimum,
                                     "max": f.maximum, "required": f.required}
                            for f in spec.fields.values()},
                 "derived": {d.spec.name: d.expr.source for d in spec.derived}}
                for spec in catalogue.values()
            ]
        )  # fmt: skip
        return
    table = Table(title="device kinds")
    for col in ("kind", "measurement", "fields", "derived"):
        table.add_column(col)
    for spec in catalogue.values():
        table.add_row(
            spec.kind,
            spec.measurement,
            ", ".join(spec.fields),
            ", ".join(d.spec.name for d in spec.derived),
        )
    terminal.console().print(table)


def profiles(
    name: Annotated[
        str | None, typer.Argument(help="One profile: its whole field map and messages")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """The bundled device profiles (`profile:` on a device in the site file); with a NAME, that
    profile's whole field map, its source preset and its published messages."""
    from devices.profiles import ProfileError, load_profile, profile_names

    names = profile_names()
    if name is not None:
        try:
            names = [load_profile(name).name]
        except ProfileError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if json_out:
        json_lines([load_profile(n).model_dump(mode="json") for n in names])
        return
    out = terminal.console()
    if name is not None:
        p = load_profile(name)
        out.print(f"{p.name}: {p.vendor} {p.model}, kind {p.kind}", markup=False)
        out.print(f"documentation: {p.documentation}", markup=False)
        if p.preset is not None:
            out.print(f"source preset: {p.preset.value}", markup=False)
        table = Table(title="field map (a device's own entries come first)")
        for col in ("vendor field", "contract field", "how"):
            table.add_column(col)
        for key, m in p.field_map.items():
            how = ", ".join(
                f"{k}={v}" for k, v in m.model_dump(exclude_defaults=True, exclude={"to"}).items()
            )
            target = key if m.expr is not None else (m.to or "(dropped)")
            table.add_row(key if m.expr is None else "(expression)", target, how)
        out.print(table)
        for message in p.messages:
            out.print(f"{message.topic} {message.payload}", markup=False, soft_wrap=True)
            out.print(f"  from: {message.source}", markup=False, soft_wrap=True)
        return
    table = Table(title="device profiles")
    for col in ("profile", "vendor", "model", "kind", "preset", "codec"):
        table.add_column(col)
    for n in names:
        p = load_profile(n)
        table.add_row(n, p.vendor, p.model, p.kind, p.preset or "", p.codec or "")
    out.print(table)
