"""Kera device registry and data contract.

`Registry` answers which devices exist; `devices.contract` says what each kind of device sends
and how it is stored.
"""

from devices.contract import KINDS, DeviceKind, FieldSpec, KindSpec
from devices.registry import AnyDevice, Registry
from devices.site import Site, SiteConfigError, WasteFraction, load_site, parse_site

__all__ = [
    "KINDS",
    "AnyDevice",
    "DeviceKind",
    "FieldSpec",
    "KindSpec",
    "Registry",
    "Site",
    "SiteConfigError",
    "WasteFraction",
    "load_site",
    "parse_site",
]
