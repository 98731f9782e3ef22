"""The site file's constrained texts: ids, tag values, EUIs, topic names."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    StringConstraints,
)

DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
SiteId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
# Tag values end up in line protocol, where a newline or control character cannot be escaped
# and InfluxDB 1.x reads a backslash literally.
TagText = Annotated[
    str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\\]+$", min_length=1, max_length=128)
]
DevEui = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{16}$", to_lower=True)]
# What a firmware calls the device in its topics: any text one topic level can hold.
MqttName = Annotated[
    str, StringConstraints(pattern=r"^[^/+#\x00-\x1f\x7f]+$", min_length=1, max_length=128)
]
