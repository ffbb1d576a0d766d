"""The mapping spec language: what an integrator writes in ``mappings/<partner>/<version>/``.

One YAML file per message and direction (``<message>.yaml``); a ``codes/`` folder of code lists;
an ``examples/`` folder of golden examples. A field rule is either a JMESPath expression (the
source value as is) or an object::

    TargetField: source.path                      # copy
    TargetField:
      from: source.path                           # JMESPath over the source message
      codes: status                               # translate through codes/status.yaml
      date: yyyyMMddHHmmss                        # convert between a partner date format and ISO
      type: string                                # coerce: string, integer, number, boolean
      default: "0"                                # when the source has no value
      required: true                              # when the source has no value: an error
    Other: {value: KS}                            # a constant
    Agency: {context: agency}                     # a value the caller supplies
    Items: {each: documents, fields: {...}}       # a list, one object per source item
    Child: {fields: {...}}                        # a nested object built from the same source
    data: {from: data, xml: {root: hoSoKhaiSinh, schema: civil_status/ho-so-khai-sinh.xsd},
           fields: {...}}                         # an embedded XML document

Expressions are parsed by the ``jmespath`` library; the bus adds no expression syntax of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Direction = Literal["inbound", "outbound"]
"""``inbound``: partner → canonical contract. ``outbound``: canonical contract → partner."""

ValueType = Literal["string", "integer", "number", "boolean"]
M = TypeVar("M", bound=BaseModel)


class SpecError(ValueError):
    """Raised when a mapping spec or code list is malformed; says which file and where."""


def expand_shorthand(rules: Any) -> Any:
    """``Target: expression`` is short for ``Target: {from: expression}``."""
    if isinstance(rules, dict):
        return {k: ({"from": v} if isinstance(v, str) else v) for k, v in rules.items()}
    return rules


class XmlDocument(BaseModel):
    """An XML document embedded in a field (built outbound, parsed inbound)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = Field(description="Name of the root element")
    schema_: str | None = Field(
        default=None,
        alias="schema",
        description="XSD under contracts/partners/, validated on both directions",
    )


class Precision(BaseModel):
    """Where an inbound partial date finds its precision flag (full, year-month, year only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_: str = Field(alias="from")
    codes: str = Field(description="Code list from the partner's flag to day, month or year")


class FieldRule(BaseModel):
    """How one target field gets its value."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    value: Any = None
    context: str | None = None
    codes: str | None = None
    date: str | None = None
    as_: Literal["date", "datetime"] | None = Field(default=None, alias="as")
    precision: Precision | None = None
    date_precision: bool = Field(
        default=False, description="Outbound: the precision (day, month, year) of an ISO date"
    )
    type: ValueType | None = None
    default: Any = None
    required: bool = False
    each: str | None = None
    fields: dict[str, FieldRule] | None = None
    xml: XmlDocument | None = None

    @field_validator("fields", mode="before")
    @classmethod
    def _expand_shorthand(cls, value: Any) -> Any:
        return expand_shorthand(value)

    def model_post_init(self, _context: Any) -> None:
        sources = [self.from_ is not None, self.value is not None, self.context is not None]
        if self.each is not None:
            if self.fields is None:
                raise ValueError("'each' needs 'fields': what to build for every item")
            if any(sources):
                raise ValueError("'each' takes its items from its own expression; drop 'from'")
        elif self.fields is None and sum(sources) != 1:
            raise ValueError("give exactly one of 'from', 'value' or 'context'")
        if self.xml is not None and self.fields is None:
            raise ValueError("'xml' needs 'fields': the document's content")


class MessageSpec(BaseModel):
    """One message of a partner in one direction: the unit a connector asks the engine for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    direction: Direction
    contract: Literal["dossier", "status-change"] = Field(
        description="The canonical contract on the bus side of this message"
    )
    complete: bool = Field(
        default=True,
        description="Inbound: the result is a whole canonical contract and is validated as one. "
        "False for partners that carry only part of it (their result is merged by the caller)",
    )
    partner_format: Literal["json", "xml"] = Field(default="json", alias="format")
    xml: XmlDocument | None = Field(
        default=None, description="For an XML message: its root element and XSD"
    )
    fields: dict[str, FieldRule]

    @field_validator("fields", mode="before")
    @classmethod
    def _expand_shorthand(cls, value: Any) -> Any:
        return expand_shorthand(value)


class NoPartnerCode(BaseModel):
    """Canonical values a partner has no code for, by design (not a gap to fill)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    reason: str = Field(min_length=1)
    values: list[Any] = Field(min_length=1)

    def covers(self, value: Any) -> bool:
        """Whether ``value`` is one of the declared values (compared as text)."""
        return str(value) in {str(v) for v in self.values}


class CodeList(BaseModel):
    """A code list: partner code → canonical value, and the reverse for outbound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    codes: dict[str, Any] = Field(min_length=1, description="partner code: canonical value")
    outbound: dict[str, str] | None = Field(
        default=None,
        description="canonical value: partner code, when several partner codes share a value",
    )
    no_partner_code: NoPartnerCode | None = Field(
        default=None,
        description="Canonical values this partner cannot express at all, and why",
    )

    def reverse(self) -> dict[str, str]:
        """canonical value (as text) → partner code."""
        if self.outbound is not None:
            return {str(k): str(v) for k, v in self.outbound.items()}
        reverse: dict[str, str] = {}
        for partner, canonical in self.codes.items():
            key = str(canonical)
            if key in reverse:
                raise ValueError(
                    f"canonical value {canonical!r} has two partner codes ({reverse[key]!r}, "
                    f"{partner!r}); add an 'outbound' section that picks one"
                )
            reverse[key] = str(partner)
        return reverse


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, naming the file and line on a syntax error."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc


def load_message(path: Path) -> MessageSpec:
    """Read and check one message spec file."""
    return _validated(MessageSpec, read_yaml(path), path)


def load_code_list(path: Path) -> CodeList:
    """Read and check one code list file."""
    code_list = _validated(CodeList, read_yaml(path), path)
    try:
        code_list.reverse()
    except ValueError as exc:
        raise SpecError(f"{path}: {exc}") from exc
    return code_list


def _validated(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{path}: {problems}") from exc
