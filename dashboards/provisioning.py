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


def dashboard_provider(path: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "kera",
                "orgId": 1,
                "folder": "Kera",
                "folderUid": "kera",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": path, "foldersFromFilesStructure": False},
            }
        ],
    }


def _influx(ref: str, query: str, seconds: int) -> dict[str, Any]:
    return {
        "refId": ref,
        "relativeTimeRange": {"from": seconds, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {"refId": ref, "query": query, "rawQuery": True, "resultFormat": "time_series"},
    }


def _expr(ref: str, model: dict[str, Any]) -> dict[str, Any]:
    return {"refId": ref, "datasourceUid": "__expr__", "model": {"refId": ref, **model}}


def _rule(
    uid: str,
    title: str,
    query: str,
    seconds: int,
    op: str,
    limit: float,
    for_: str,
    summary: str,
    no_data: str = "OK",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            _influx("A", query, seconds),
            _expr("B", {"type": "reduce", "expression": "A", "reducer": "last"}),
            _expr(
                "C",
                {
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": op, "params": [limit]}}],
                },
            ),
        ],
        "noDataState": no_data,
        "execErrState": "Error",
        "for": for_,
        "annotations": {"summary": summary, "runbook_url": "docs/operators.md"},
        "labels": {"team": "kera-operators"},
    }


# Grafana-side rules watch the pipeline itself; the device alerts (bins, CO2, offline, ...) are
# evaluated by the ingestor and arrive in the `alerts` measurement, which the first rule follows.
ALERT_RULE_QUERIES: dict[str, str] = {
    "kera-alert-firing": (
        'SELECT count("last") FROM (SELECT last("firing") FROM "alerts" WHERE time > now() - 30d '
        'GROUP BY "rule", "device") WHERE "last" = true'
    ),
    "kera-ingestor-silent": 'SELECT sum("messages") FROM "pipeline" WHERE time > now() - 10m',
    "kera-spool-not-draining": (
        'SELECT last("spool_bytes") FROM "pipeline" WHERE time > now() - 15m GROUP BY "instance"'
    ),
    "kera-rejections-high": (
        'SELECT sum("rejected") / sum("messages") FROM "pipeline" WHERE time > now() - 15m'
    ),
    "kera-clock-wrong": (
        'SELECT last("clock_suspect") FROM "pipeline" WHERE time > now() - 15m GROUP BY "instance"'
    ),
}


def alert_rules() -> dict[str, Any]:
    q = ALERT_RULE_QUERIES
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "kera-pipeline",
                "folder": "Kera",
                "interval": "1m",
                "rules": [
                    _rule("kera-alert-firing", "A Kera alert is firing", q["kera-alert-firing"],
                          30 * 86400, "gt", 0, "0s",
                          "A device alert is firing: see the overview's alert timeline."),
                    _rule("kera-ingestor-silent", "Ingestor silent", q["kera-ingestor-silent"],
                          600, "lt", 1, "5m",
                          "No messages reached the ingestor for 10 minutes.", "Alerting"),
                    _rule("kera-spool-not-draining", "Spool not draining",
                          q["kera-spool-not-draining"], 900, "gt", 0, "15m",
                          "InfluxDB has not taken the spooled backlog for 15 minutes."),
                    _rule("kera-rejections-high", "Many readings rejected",
                          q["kera-rejections-high"], 900, "gt", 0.2, "15m",
                          "Over 20 % of messages rejected: a device or partner sends bad data."),
                    _rule("kera-clock-wrong", "Ingestor clock wrong", q["kera-clock-wrong"],
                          900, "gt", 0, "10m",
                          "Most devices' clocks disagree with an ingestor's by over a minute: "
                          "set its host's clock (NTP); /healthz says by how much."),
                ],
            }
        ],
    }  # fmt: skip


def contact_points() -> dict[str, Any]:
    """A webhook contact point and the policy that routes Kera's rules to it; the URL is an
    environment reference, never a literal."""
    return {
        "apiVersion": 1,
        "contactPoints": [
            {
                "orgId": 1,
                "name": "kera-operators",
                "receivers": [
                    {
                        "uid": "kera-operators-webhook",
                        "type": "webhook",
                        "settings": {
                            "url": "$__env{KERA_ALERT_WEBHOOK_URL}",
                            "httpMethod": "POST",
                        },
                        "disableResolveMessage": False,
                    }
                ],
            }
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": "kera-operators",
                "group_by": ["alertname"],
                "routes": [
                    {
                        "receiver": "kera-operators",
                        "object_matchers": [["team", "=", "kera-operators"]],
                    }
                ],
            }
        ],
    }


def _yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_tree(
    out: Path,
    dashboards: dict[str, dict[str, Any]],
    database: str = "kera",
    dashboards_path: str = "/etc/grafana/provisioning/dashboards/kera",
) -> list[Path]:
    """A complete Grafana provisioning tree: datasource, dashboard provider and JSON, alert
    rules and a contact point."""
    import json

    written = [write_datasource(out, database)]
    written.append(_yaml(out / "dashboards" / "kera.yaml", dashboard_provider(dashboards_path)))
    for uid, board in sorted(dashboards.items()):
        path = out / "dashboards" / "kera" / f"{uid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(board, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    written.append(_yaml(out / "alerting" / "kera-rules.yaml", alert_rules()))
    written.append(_yaml(out / "alerting" / "kera-contact-points.yaml", contact_points()))
    return written
