"""The mapping catalogue: every partner, version and message under ``mappings/``, compiled.

A mapping is referred to as ``<partner>/<version>/<message>``, e.g.
``dvcqg/1.0/dossier-sync.out``; that reference travels with every message it shaped and is
written to the transaction log, so any record can be traced to the exact mapping used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from bus.errors import MappingError
from bus.mapping import xmldoc
from bus.mapping.compiler import Compiler, Context, masked
from bus.mapping.spec import (
    CodeList,
    Direction,
    FieldRule,
    MessageSpec,
    SpecError,
    load_code_list,
    load_message,
)
from contracts import Dossier, StatusChange

#: The canonical model each ``contract`` name stands for.
CONTRACTS: dict[str, type[BaseModel]] = {"dossier": Dossier, "status-change": StatusChange}


def default_root() -> Path:
    """``BUS_MAPPINGS_DIR``, else the ``mappings/`` folder beside the installed sources."""
    configured = os.environ.get("BUS_MAPPINGS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "mappings"


@dataclass
class MessageMapping:
    """One compiled message mapping."""

    partner: str
    version: str
    message: str
    spec: MessageSpec
    folder: Path
    _build: Any = field(repr=False)

    @property
    def ref(self) -> str:
        """``partner/version/message``: what messages and the transaction log record."""
        return f"{self.partner}/{self.version}/{self.message}"

    @property
    def contract(self) -> type[BaseModel]:
        """The canonical model on the bus side."""
        return CONTRACTS[self.spec.contract]

    def apply(self, source: Mapping[str, Any], context: Context | None = None) -> dict[str, Any]:
        """Map one message; raises :class:`MappingError` naming the field that failed."""
        if not isinstance(source, Mapping):
            raise MappingError(
                f"{self.ref}: expected a JSON object, got {type(source).__name__}", mapping=self.ref
            )
        result: dict[str, Any] = self._build(source, context or {})
        return result

    def to_canonical(self, source: Mapping[str, Any], context: Context | None = None) -> BaseModel:
        """Inbound: map and validate against the canonical contract."""
        if self.spec.direction != "inbound":
            raise TypeError(f"{self.ref} maps canonical → partner; it has no canonical output")
        mapped = self.apply(source, context)
        try:
            return self.contract.model_validate(mapped)
        except ValidationError as exc:
            first = exc.errors()[0]
            target = ".".join(str(p) for p in first["loc"]) or "(contract)"
            rule = _rule_at(self.spec.fields, target)
            source_path = rule.from_ if rule is not None and rule.from_ else "(mapped value)"
            value = first.get("input")
            raise MappingError(
                f"{self.ref}: {source_path} → {target}: the mapped value breaks the "
                f"{self.spec.contract} contract: {first['msg']}, value {masked(value)}",
                mapping=self.ref,
                source_path=source_path,
                target_field=target,
                value=masked(value),
            ) from exc

    def decode_partner(self, raw: bytes) -> dict[str, Any]:
        """A partner message on the wire (JSON or XML) as the dict expressions read."""
        if self.spec.partner_format == "xml":
            assert self.spec.xml is not None
            try:
                return xmldoc.to_dict(raw, root=self.spec.xml.root, xsd=self.spec.xml.schema_)
            except xmldoc.XmlMappingError as exc:
                raise MappingError(f"{self.ref}: {exc}", mapping=self.ref) from exc
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MappingError(f"{self.ref}: not JSON: {exc}", mapping=self.ref) from exc
        if not isinstance(value, dict):
            raise MappingError(f"{self.ref}: expected a JSON object", mapping=self.ref)
        return value

    def encode_partner(self, message: dict[str, Any]) -> bytes:
        """A mapped outbound message as the partner receives it (JSON or XML)."""
        if self.spec.partner_format == "xml":
            assert self.spec.xml is not None
            try:
                return xmldoc.from_dict(
                    message, root=self.spec.xml.root, xsd=self.spec.xml.schema_
                ).encode("utf-8")
            except xmldoc.XmlMappingError as exc:
                raise MappingError(f"{self.ref}: {exc}", mapping=self.ref) from exc
        return orjson.dumps(message)


class MappingCatalog:
    """All compiled mappings, by reference."""

    def __init__(self, mappings: Mapping[str, MessageMapping], root: Path) -> None:
        self._mappings = dict(mappings)
        self.root = root

    @classmethod
    def load(
        cls, root: Path | None = None, *, partners: tuple[str, ...] | None = None
    ) -> MappingCatalog:
        """Read and compile ``root/<partner>/<version>/*.yaml``; a bad spec is a SpecError.

        ``partners`` limits loading to those partners, so a connector is not stopped by a
        broken spec of a partner it never talks to.
        """
        root = root or default_root()
        if not root.is_dir():
            raise SpecError(f"no mappings folder at {root} (set BUS_MAPPINGS_DIR)")
        mappings: dict[str, MessageMapping] = {}
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if partners is not None:
            folders = [p for p in folders if p.name in partners]
            missing = set(partners) - {p.name for p in folders}
            if missing:
                raise SpecError(f"no mappings for {', '.join(sorted(missing))} under {root}")
        for partner_dir in folders:
            for version_dir in sorted(v for v in partner_dir.iterdir() if v.is_dir()):
                for mapping in load_version(version_dir):
                    mappings[mapping.ref] = mapping
        return cls(mappings, root)

    def get(self, ref: str) -> MessageMapping:
        """The mapping ``partner/version/message``."""
        try:
            return self._mappings[ref]
        except KeyError:
            raise SpecError(
                f"no mapping {ref!r}; known: {', '.join(sorted(self._mappings)) or 'none'}"
            ) from None

    def expect(
        self, ref: str, *, direction: Direction, contract: type[BaseModel]
    ) -> MessageMapping:
        """The mapping ``ref``, checked to map ``contract`` in ``direction``.

        A connector asks for its mappings this way when it is built, so a mapping that names
        the wrong contract or direction stops the worker at start-up, not at the first dossier.
        """
        mapping = self.get(ref)
        if mapping.spec.direction != direction or mapping.contract is not contract:
            raise SpecError(f"{ref} must map the {contract.__name__} contract {direction}")
        return mapping

    def __iter__(self) -> Iterator[MessageMapping]:
        return iter(self._mappings[ref] for ref in sorted(self._mappings))

    def __len__(self) -> int:
        return len(self._mappings)


def load_version(folder: Path) -> list[MessageMapping]:
    """Compile every message of one partner version folder."""
    partner, version = folder.parent.name, folder.name
    codes_dir = folder / "codes"
    code_lists: dict[str, CodeList] = (
        {p.stem: load_code_list(p) for p in sorted(codes_dir.glob("*.yaml"))}
        if codes_dir.is_dir()
        else {}
    )
    mappings = []
    for path in sorted(folder.glob("*.yaml")):
        spec = load_message(path)
        ref = f"{partner}/{version}/{path.stem}"
        compiler = Compiler(mapping=ref, direction=spec.direction, code_lists=code_lists)
        mappings.append(
            MessageMapping(partner, version, path.stem, spec, folder, compiler.fields(spec.fields))
        )
    return mappings


def _rule_at(rules: Mapping[str, FieldRule], target: str) -> FieldRule | None:
    """The rule that produced a canonical field (by its dotted path), for error messages."""
    if target in rules:
        return rules[target]
    for name, rule in rules.items():
        if rule.fields is not None and target.startswith(f"{name}."):
            inner = target[len(name) + 1 :]
            if rule.each is not None and "." in inner:
                inner = inner.split(".", 1)[1]  # drop the list index
            found = _rule_at(rule.fields, inner)
            if found is not None:
                return found
        if rule.xml is not None and rule.fields is not None:
            found = _rule_at(rule.fields, target)
            if found is not None:
                return found
    return None


@dataclass(frozen=True, slots=True)
class ConnectorMappings:
    """The mappings one connector speaks: its ``partner/version`` and the catalog holding them.

    Built once in a connector's constructor, so that a missing or mistyped message stops the
    worker at start-up rather than at the first dossier.
    """

    version: str
    catalog: MappingCatalog

    @classmethod
    def of(
        cls, configured: str | None, default: str, catalog: MappingCatalog | None = None
    ) -> ConnectorMappings:
        """The configured ``partner/version`` (else ``default``), from ``catalog`` or loaded.

        Loading reads only that partner's folder: a worker does not compile every partner's
        mappings to serve one.
        """
        version = configured or default
        if catalog is None:
            catalog = MappingCatalog.load(partners=(version.split("/", 1)[0],))
        return cls(version, catalog)

    def get(self, message: str) -> MessageMapping:
        """The mapping of ``message`` (e.g. ``answer.in``) in this version."""
        return self.catalog.get(f"{self.version}/{message}")

    def expect(
        self, message: str, *, direction: Direction, contract: type[BaseModel]
    ) -> MessageMapping:
        """The mapping of ``message``, checked to map ``contract`` in ``direction``."""
        return self.catalog.expect(
            f"{self.version}/{message}", direction=direction, contract=contract
        )
