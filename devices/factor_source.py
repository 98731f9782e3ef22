"""Where an emission factor comes from: a publication, or an example that is not one.

A report multiplies kWh by a factor and publishes the product, so the factor's origin travels
with it: the site file says what kind of source each factor has, the rollups store that with
the emissions they compute (`impact_daily`), and the weekly report, the pilot report, the Impact
dashboard and `check-site` show it. An example factor is allowed (a demo site, a site still
looking for its figure) but is never presented as a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Free text that ends up in reports, dashboards and a line-protocol string field, where a
# newline cannot be written: one line (a YAML `>-` block folds to one).
SourceText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]

# The prefixes of the fields that store a factor's source beside the emissions computed with it
# (`impact_daily`: `factor_source`, `factor_example`, `heat_factor_source`, ...).
GRID_FIELD = "factor"
HEAT_FIELD = "heat_factor"

# What to do about an example factor, said wherever one is shown.
ELECTRICITY_HOW_TO = (
    "set impact.emission_factor_kg_per_kwh in the site file to Statistics Finland's annual "
    "emission coefficient of electricity (table 14qt) for the reporting year, or load Fingrid's "
    "emission factor of electricity consumed in Finland (dataset 265) with "
    "impact.emission_factors_csv, and describe it as kind: published (docs/impact.md)"
)
HEAT_HOW_TO = (
    "set impact.heat_emission_factor_kg_per_kwh in the site file to the district-heat "
    "supplier's published figure for the reporting year, and describe it as kind: published "
    "(docs/impact.md)"
)


class PublishedFactor(BaseModel):
    """A figure somebody published: who, for which year, and where it can be checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["published"]
    publisher: SourceText = Field(description="who published the figure, e.g. Fortum")
    year: int = Field(ge=1990, le=2100, description="the year the figure describes")
    where: SourceText = Field(
        description="where it is published: the table, dataset or page, and what it measures"
    )

    @property
    def example(self) -> bool:
        return False

    def label(self) -> str:
        return f"{self.publisher}, {self.year}: {self.where}"


class ExampleFactor(BaseModel):
    """A value that no publication stands behind: the bundled demo site's, or a site's while it
    waits for its figure. Reports and dashboards say so on their first screen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["example"]
    note: SourceText | None = Field(None, description="why this value, for the reader")

    @property
    def example(self) -> bool:
        return True

    def label(self) -> str:
        text = "EXAMPLE factor, not a published statistic"
        return f"{text} ({self.note})" if self.note else text


FactorSource = Annotated[PublishedFactor | ExampleFactor, Field(discriminator="kind")]


@dataclass(frozen=True, slots=True)
class Factor:
    """One of a site's emission factors, as every place that shows it names it."""

    energy: str  # "electricity", "district heat"
    field: str  # the prefix of its stored fields: `<field>_source`, `<field>_example`
    value: str  # "0.05 kg/kWh", or the hourly series and the constant for other hours
    source: PublishedFactor | ExampleFactor
    how_to: str  # how to set a published one


SOURCE_FORMS = (
    "give it as {kind: published, publisher: ..., year: ..., where: ...} for a published "
    "figure, or {kind: example, note: ...} for a value that is not one"
)


def refuse_plain_text(value: Any, name: str) -> Any:
    """A plain string says nothing about whether a figure was published: ask for the form."""
    if isinstance(value, str):
        raise ValueError(f"{name} {value!r} is plain text; {SOURCE_FORMS}")  # noqa: TRY004
    return value
