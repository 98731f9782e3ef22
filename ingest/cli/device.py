"""Commissioning devices: `device add`, `device acl`, `device user`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devices import Registry, SiteConfigError
from devices.contract import status_topic, telemetry_topic
from ingest.cli._common import console

device_app = typer.Typer(add_completion=False, help="Commissioning devices: site file and broker.")


@device_app.command("add")
def device_add(
    device_id: Annotated[str, typer.Argument(help="The new device's id")],
    kind: Annotated[str, typer.Option(help="a kind of the catalogue (kera-ingest kinds)")],
    space: Annotated[str, typer.Option(help="Where it is (a tag)")],
    site_file: Annotated[Path, typer.Option(help="The site file to add it to")],
    passwd: Annotated[Path, typer.Option(help="The broker's password file")],
    dev_eui: Annotated[str | None, typer.Option(help="LoRaWAN DevEUI")] = None,
    depth_mm: Annotated[float | None, typer.Option(help="waste_bin: sensor to bottom")] = None,
    fraction: Annotated[str | None, typer.Option(help="waste_bin: sorting fraction")] = None,
    profile: Annotated[
        str | None, typer.Option(help="a device profile (kera-ingest profiles)")
    ] = None,
) -> None:
    """Add a device to the site file and give it broker credentials. The password is printed
    once, for the device's configuration; the broker keeps only its hash."""
    from devices.onboarding import add_device, new_password, set_password

    device: dict[str, object] = {"id": device_id, "kind": kind, "space": space}
    for key, value in (
        ("dev_eui", dev_eui),
        ("depth_mm", depth_mm),
        ("fraction", fraction),
        ("profile", profile),
    ):
        if value is not None:
            device[key] = value
    try:
        add_device(site_file, device)
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except OSError as exc:
        console.print(f"[red]cannot update the site file {site_file}: {exc.strerror}[/red]")
        raise typer.Exit(2) from None
    generated = new_password()  # random per device, shown once, stored only as a hash
    set_password(passwd, device_id, generated)
    site = Registry.load(site_file).site_id
    console.print(f"added {device_id} to {site_file}; broker user {device_id} in {passwd}")
    console.print("Reload the broker (SIGHUP) and restart the ingestor. Give the device:")
    typer.echo(f"MQTT user:     {device_id}")
    typer.echo(f"MQTT password: {generated}")
    typer.echo(
        f"publish to:    {telemetry_topic(site, device_id)} and {status_topic(site, device_id)}"
    )


@device_app.command("acl")
def device_acl(
    out: Annotated[Path, typer.Option(help="The broker's ACL file to write")],
    config: Annotated[Path | None, typer.Option("--config", help="Site file")] = None,
) -> None:
    """Write the broker ACL: devices publish only under their own topics, the ingestor reads."""
    from devices.onboarding import acl

    out.write_text(acl(Registry.load(config).site_id))
    console.print(f"wrote {out}")


@device_app.command("user")
def device_user(
    user: Annotated[str, typer.Argument(help="Broker user, e.g. kera-ingest")],
    passwd: Annotated[Path, typer.Option(help="The broker's password file")],
) -> None:
    """Set a broker user's password (e.g. the ingestor's) from KERA_NEW_PASSWORD, or a new
    random one, printed once."""
    import os

    from devices.onboarding import new_password, set_password

    password = os.environ.get("KERA_NEW_PASSWORD") or new_password()
    set_password(passwd, user, password)
    if "KERA_NEW_PASSWORD" not in os.environ:
        typer.echo(f"MQTT password for {user}: {password}")
