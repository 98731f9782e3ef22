"""Grafana provisioning files. Credentials are `$__env{...}` references that Grafana resolves
from its own environment at start-up, so no secret is ever written to disk by us."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DATASOURCE_UID = "kera-influxql"


def datasource(database: str = "kera", url_env: str = "KERA_INFLUX_URL") -> dict[str, Any]:
    """An InfluxQL datasource: the query language that InfluxDB 1.x, 2.x (v1 compatibility with
    a DBRP mapping) and 3.x all answer, so one set of dashboards serves every version."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Kera InfluxDB",
                "uid": DATASOURCE_UID,
                "type": "influxdb",
                "access": "proxy",
                "url": f"$__env{{{url_env}}}",
                "isDefault": True,
                "jsonData": {
                    "dbName": database,
                    "httpMode": "POST",
                    "timeInterval": "10s",
                    "httpHeaderName1": "Authorization",
                },
                # 1.x with auth: user and password; 2.x/3.x: the token as an Authorization header.
                "user": "$__env{KERA_INFLUX_USER}",
                "secureJsonData": {
                    "password": "$__env{KERA_INFLUX_PASSWORD}",
                    "httpHeaderValue1": "Token $__env{KERA_INFLUX_TOKEN}",
                },
            }
        ],
    }


def write_datasource(out: Path, database: str = "kera") -> Path:
    folder = out / "datasources"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kera-influxdb.yaml"
    path.write_text(yaml.safe_dump(datasource(database), sort_keys=False), encoding="utf-8")
    return path
