"""InfluxQL targets for grafana-foundation-sdk panels.

The SDK has no InfluxDB query builder, so this is one through its custom-query mechanism: a
`Dataquery` variant for the `influxdb` datasource type, registered with the SDK's runtime so a
dashboard's JSON reads back (`Dashboard.from_json`) into the same objects.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants

from dashboards.provisioning import DATASOURCE_UID

DATASOURCE_TYPE = "influxdb"
ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    def __init__(
        self,
        ref_id: str = "A",
        query: str = "",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource_uid: str = DATASOURCE_UID,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.datasource_uid = datasource_uid

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": self.datasource_uid},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            out["alias"] = self.alias
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            ref_id=data.get("refId", "A"),
            query=data.get("query", ""),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource_uid=(data.get("datasource") or {}).get("uid", DATASOURCE_UID),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InfluxQLQuery) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """`InfluxQL("SELECT ...").ref_id("B").table()`."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json)
)
