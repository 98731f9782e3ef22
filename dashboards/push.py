"""`kera-dashboards push`: datasource, folder, dashboards, alert rules and contact point into a
running Grafana through its HTTP API (grafana-client), idempotently by uid: what exists is
updated, what is missing is created, nothing is duplicated.

The API does not resolve `$__env{...}` references as provisioning files do, so the datasource's
and contact point's credentials are read from this process's environment (KERA_INFLUX_URL,
KERA_INFLUX_USER, KERA_INFLUX_PASSWORD, KERA_INFLUX_TOKEN, KERA_ALERT_WEBHOOK_URL) and sent to
Grafana, never written anywhere.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.provisioning import alert_rules, contact_points, datasource

FOLDER_UID = "kera"


def _env(value: Any) -> Any:
    """Provisioning-file `$__env{NAME}` references, resolved from this environment."""
    if isinstance(value, str):
        out = value
        while "$__env{" in out:
            start = out.index("$__env{")
            end = out.index("}", start)
            out = out[:start] + os.environ.get(out[start + 7 : end], "") + out[end + 1 :]
        return out
    if isinstance(value, dict):
        return {k: _env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_env(v) for v in value]
    return value


def _exists(call: Any, *args: Any) -> Any | None:
    try:
        return call(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def push(
    url: str, token: str, dashboards: dict[str, dict[str, Any]], database: str = "kera"
) -> Counter[str]:
    """Upload everything; returns how many objects were created and updated, by kind."""
    api = GrafanaApi.from_url(url, credential=token)
    try:
        return _push(api, dashboards, database)
    finally:
        # Its connections, not left to the garbage collector (an unclosed-socket warning).
        api.client.s.close()


def _push(api: Any, dashboards: dict[str, dict[str, Any]], database: str) -> Counter[str]:
    done: Counter[str] = Counter()

    ds = _env(datasource(database)["datasources"][0])
    if _exists(api.datasource.get_datasource_by_uid, ds["uid"]):
        api.datasource.update_datasource_by_uid(ds["uid"], ds)
        done["datasource updated"] += 1
    else:
        api.datasource.create_datasource(ds)
        done["datasource created"] += 1

    if not _exists(api.folder.get_folder, FOLDER_UID):
        api.folder.create_folder("Kera", uid=FOLDER_UID)
        done["folder created"] += 1

    for board in dashboards.values():
        api.dashboard.update_dashboard(
            {
                "dashboard": {**board, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "kera-dashboards push",
            }
        )
        done["dashboard"] += 1

    for group in alert_rules()["groups"]:
        for rule in group["rules"]:
            body = {**rule, "folderUID": FOLDER_UID, "ruleGroup": group["name"], "orgID": 1}
            if _exists(api.alertingprovisioning.get_alertrule, rule["uid"]):
                api.alertingprovisioning.update_alertrule(rule["uid"], body)
                done["alert rule updated"] += 1
            else:
                api.alertingprovisioning.create_alertrule(body)
                done["alert rule created"] += 1

    existing = {c.get("uid") for c in api.alertingprovisioning.get_contactpoints() or []}
    for cp in contact_points()["contactPoints"]:
        for receiver in cp["receivers"]:
            body = _env({**receiver, "name": cp["name"]})
            if receiver["uid"] in existing:
                api.alertingprovisioning.update_contactpoint(receiver["uid"], body)
                done["contact point updated"] += 1
            else:
                api.alertingprovisioning.create_contactpoint(body)
                done["contact point created"] += 1
    return done
