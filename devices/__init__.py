"""Kera device registry and data contract.

`Registry` answers which devices exist; `devices.contract` says what each kind of device sends
and how it is stored.
"""

from devices.contract import KINDS, CatalogueError, FieldSpec, KindSpec
from devices.registry import AnyDevice, Registry
from devices.site import (
    Codec,
    FieldMap,
    Site,
    SiteConfigError,
    Source,
    UnknownFields,
    WasteFraction,
    load_site,
    parse_site,
)

__all__ = [
    "KINDS",
    "AnyDevice",
    "CatalogueError",
    "Codec",
    "FieldMap",
    "FieldSpec",
    "KindSpec",
    "Registry",
    "Site",
    "SiteConfigError",
    "Source",
    "UnknownFields",
    "WasteFraction",
    "load_site",
    "parse_site",
]
