"""A device's field_map entries as the site file and the device profiles write them (how vendor
fields become contract fields; devices/mapping.py compiles and applies them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# What happens to a payload field that is neither a contract field nor mapped: `ignore` stores
# the rest of the reading and counts the field per device; `reject` dead-letters the message.
UnknownFields = Literal["ignore", "reject"]

LevelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class FieldMap(BaseModel):
    """How vendor fields become a contract field (devices/mapping.py has the rules): `to` (None
    drops it), then enum, unit, value * scale + offset; or `expr`, which writes the field the
    entry is keyed by. E.g. a decoder's `distance` in cm: {to: distance_mm, scale: 10}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: str | None = None
    scale: float = Field(1.0, allow_inf_nan=False)
    offset: float = Field(0.0, allow_inf_nan=False)
    unit: str | None = Field(
        None, description="the vendor's unit, converted to the field's contract unit"
    )
    enum: dict[str | int | bool, float | int | bool | str] | None = Field(
        None, description="vendor value -> contract value, e.g. {normal: false, tilt: true}"
    )
    expr: str | None = Field(
        None,
        description="an expression over the payload's fields (devices/expressions.py); the "
        "entry's key is the contract field it writes",
    )
    when: dict[LevelName, Annotated[str, StringConstraints(max_length=256)]] | None = Field(
        None,
        description="apply only to messages whose topic template bound these named levels to "
        "these texts, e.g. {channel: '0'} (json sources)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> FieldMap:
        if self.expr is not None:
            extra = {"to", "unit", "enum", "scale", "offset"} & self.model_fields_set
            if extra:
                raise ValueError(
                    f"an `expr` entry writes the field named by its key; {sorted(extra)} do "
                    "not apply (put the arithmetic in the expression)"
                )
        elif "to" not in self.model_fields_set:
            raise ValueError("give `to` (the contract field, or null to drop) or `expr`")
        return self


def field_map_shorthand(cls: type, raw: Any) -> Any:
    """`name` and `null` entries as the {to: ...} they stand for."""
    if not isinstance(raw, dict):
        return raw
    return {k: {"to": v} if v is None or isinstance(v, str) else v for k, v in raw.items()}
