"""Kera device registry and data contract.

`Registry` answers which devices exist; `devices.contract` says what each kind of device sends
and how it is stored.
"""

from devices.contract import KINDS, DeviceKind, FieldSpec, KindSpec
from devices.registry import AnyDevice, Registry
from devices.site import (
    Codec,
    FieldMap,
    Site,
    SiteConfigError,
    Source,
    WasteFraction,
    load_site,
    parse_site,
)

__all__ = [
    "KINDS",
    "AnyDevice",
    "Codec",
    "DeviceKind",
    "FieldMap",
    "FieldSpec",
    "KindSpec",
    "Registry",
    "Site",
    "SiteConfigError",
    "Source",
    "WasteFraction",
    "load_site",
    "parse_site",
]
