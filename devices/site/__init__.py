"""The site file: which devices exist, where they are, and what the pipeline may accept from them.

Tags in InfluxDB come only from here, never from a payload, so a device cannot invent series
and the number of series stays bounded by this file.

One module per part of the file, imported from here:
- `_sources`: codecs and the topics they decode (templates, presets, time rules);
- `_devices`: the devices, one model per kind; `devices.field_maps`: their field_map entries;
- `_serial`: serial links (Modbus RTU, P1/HAN, line-framed);
- `_alerts`: alert rules and webhooks; `_impact`: emission factors and opening hours;
- `_site`: the site, its parts checked against each other, each device bound once to its kind,
  profile, mapping and codec; `_loading`: YAML to a `Site`, with errors that name the field.
"""

from devices.field_maps import FieldMap, LevelName, UnknownFields, field_map_shorthand
from devices.site._alerts import DEFAULT_RULES, AlertRule, Alerts, Webhook, redacted_url
from devices.site._devices import (
    AttributeValue,
    CatalogueDevice,
    Device,
    EnergyMeter,
    HeatMeter,
    IndoorAirSensor,
    OccupancySensor,
    PeopleCounter,
    WasteBin,
    WasteFraction,
    WaterMeter,
    WeatherStation,
)
from devices.site._impact import WEEKDAYS, Impact, Weekday
from devices.site._loading import (
    DEFAULT_SITE_RESOURCE,
    SiteConfigError,
    default_site_text,
    load_site,
    parse_site,
)
from devices.site._serial import (
    LinePort,
    MeterModel,
    ModbusBus,
    ModbusMeter,
    P1Port,
    SerialPort,
    SerialSource,
)
from devices.site._site import Discovery, Site
from devices.site._sources import DEFAULT_TOPICS, Codec, Source, TimeFormat, TimeRule
from devices.site._types import DevEui, DeviceId, MqttName, SiteId, TagText

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_SITE_RESOURCE",
    "DEFAULT_TOPICS",
    "WEEKDAYS",
    "AlertRule",
    "Alerts",
    "AttributeValue",
    "CatalogueDevice",
    "Codec",
    "DevEui",
    "Device",
    "DeviceId",
    "Discovery",
    "EnergyMeter",
    "FieldMap",
    "HeatMeter",
    "Impact",
    "IndoorAirSensor",
    "LevelName",
    "LinePort",
    "MeterModel",
    "ModbusBus",
    "ModbusMeter",
    "MqttName",
    "OccupancySensor",
    "P1Port",
    "PeopleCounter",
    "SerialPort",
    "SerialSource",
    "Site",
    "SiteConfigError",
    "SiteId",
    "Source",
    "TagText",
    "TimeFormat",
    "TimeRule",
    "UnknownFields",
    "WasteBin",
    "WasteFraction",
    "WaterMeter",
    "WeatherStation",
    "Webhook",
    "Weekday",
    "default_site_text",
    "field_map_shorthand",
    "load_site",
    "parse_site",
    "redacted_url",
]
