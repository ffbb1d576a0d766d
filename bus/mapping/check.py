"""Static checks of mapping specs against the canonical contracts (``bus mappings check``).

Compiling a spec already catches bad YAML, bad JMESPath, unknown code lists and date formats.
These checks add what needs the contract's schema: an inbound rule writing a field the contract
does not have, a complete inbound mapping that leaves a required field unset, an outbound rule
reading a field the contract does not have, and code lists that miss a value of a canonical enum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import jmespath

from bus.mapping.catalog import MappingCatalog, MessageMapping
from bus.mapping.spec import FieldRule, load_code_list

Schema = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One problem in a spec, with where it is."""

    mapping: str
    location: str
    problem: str

    def __str__(self) -> str:
        return f"{self.mapping}: {self.location}: {self.problem}"


def check_catalog(catalog: MappingCatalog) -> list[Finding]:
    """Every finding for every message of the catalogue."""
    findings: list[Finding] = []
    for mapping in catalog:
        findings.extend(check_message(mapping))
    return findings


def check_message(mapping: MessageMapping) -> list[Finding]:
    """Findings for one message mapping."""
    root = mapping.contract.model_json_schema(mode="validation")
    definitions = root.get("$defs", {})
    checker = _Checker(mapping, definitions)
    if mapping.spec.direction == "inbound":
        checker.targets(mapping.spec.fields, root, "fields")
        if mapping.spec.complete:
            checker.required(mapping.spec.fields, root, "fields")
    else:
        checker.sources(mapping.spec.fields, root, "fields")
    return checker.findings


class _Checker:
    def __init__(self, mapping: MessageMapping, definitions: Mapping[str, Schema]) -> None:
        self.mapping = mapping
        self.definitions = definitions
        self.findings: list[Finding] = []
        folder = mapping.folder / "codes"
        self.code_lists = (
            {p.stem: load_code_list(p) for p in folder.glob("*.yaml")} if folder.is_dir() else {}
        )

    def add(self, location: str, problem: str) -> None:
        self.findings.append(Finding(self.mapping.ref, location, problem))

    def resolve(self, schema: Schema) -> Schema:
        """Follow ``$ref`` and drop the ``null`` branch of optional fields."""
        while True:
            if "$ref" in schema:
                schema = self.definitions[schema["$ref"].rsplit("/", 1)[-1]]
                continue
            options = schema.get("anyOf")
            if options:
                real = [o for o in options if o.get("type") != "null"]
                if len(real) == 1:
                    schema = real[0]
                    continue
            return schema

    def child(self, schema: Schema, dotted: str) -> Schema | None:
        current = self.resolve(schema)
        for part in dotted.split("."):
            properties = current.get("properties")
            if properties is None:
                if current.get("type") == "object" or "additionalProperties" in current:
                    return {}  # an open object (e.g. the procedure form): anything goes
                return None
            if part not in properties:
                return None
            current = self.resolve(properties[part])
        return current

    # -- inbound: the rule's target names a contract field -------------------------------------
    def targets(self, rules: Mapping[str, FieldRule], schema: Schema, where: str) -> None:
        for name, rule in rules.items():
            location = f"{where}.{name}"
            if rule.xml is not None and rule.fields is not None:
                self.targets(rule.fields, schema, f"{location}.fields")
                continue
            target = self.child(schema, name)
            if target is None:
                self.add(
                    location, f"the {self.mapping.spec.contract} contract has no field {name!r}"
                )
                continue
            if rule.each is not None and rule.fields is not None:
                items = self.resolve(target.get("items", {}))
                self.targets(rule.fields, items, f"{location}.fields")
            elif rule.fields is not None:
                self.targets(rule.fields, target, f"{location}.fields")
            elif rule.codes is not None:
                self.inbound_codes(rule.codes, target, location)

    def required(self, rules: Mapping[str, FieldRule], schema: Schema, where: str) -> None:
        produced = set(_produced(rules))
        resolved = self.resolve(schema)
        for field in resolved.get("required", []):
            if field not in produced and not any(p.startswith(f"{field}.") for p in produced):
                self.add(where, f"required contract field {field!r} is never set")
        for name, rule in rules.items():
            if rule.fields is None or "." in name or rule.xml is not None:
                continue
            target = self.child(schema, name)
            if target is None:
                continue
            inner = self.resolve(target.get("items", {})) if rule.each is not None else target
            self.required(rule.fields, inner, f"{where}.{name}.fields")

    def inbound_codes(self, name: str, target: Schema, location: str) -> None:
        code_list = self.code_lists.get(name)
        allowed = target.get("enum")
        if code_list is None or allowed is None:
            return
        for partner, canonical in code_list.codes.items():
            if canonical not in allowed:
                self.add(
                    location,
                    f"code list {name!r} maps {partner!r} to {canonical!r}, "
                    f"which the contract does not allow ({allowed})",
                )

    # -- outbound: the rule's source reads a contract field ------------------------------------
    def sources(self, rules: Mapping[str, FieldRule], schema: Schema, where: str) -> None:
        for name, rule in rules.items():
            location = f"{where}.{name}"
            if rule.each is not None:
                lists = _field_paths(rule.each)
                target = self.child(schema, lists[0]) if len(lists) == 1 else None
                if len(lists) == 1 and target is None:
                    self.add(location, f"reads {rule.each!r}, which the contract does not have")
                    continue
                if rule.fields is not None and target is not None:
                    self.sources(
                        rule.fields, self.resolve(target.get("items", {})), f"{location}.fields"
                    )
                continue
            if rule.fields is not None:
                inner = schema
                if rule.from_ is not None:
                    found = self.child(schema, rule.from_)
                    if found is None:
                        self.add(
                            location, f"reads {rule.from_!r}, which the contract does not have"
                        )
                        continue
                    inner = found
                self.sources(rule.fields, inner, f"{location}.fields")
                continue
            if rule.from_ is None:
                continue
            for path in _field_paths(rule.from_):
                source = self.child(schema, path)
                if source is None:
                    self.add(location, f"reads {path!r}, which the contract does not have")
                elif rule.codes is not None:
                    self.outbound_codes(rule.codes, source, location)

    def outbound_codes(self, name: str, source: Schema, location: str) -> None:
        code_list = self.code_lists.get(name)
        allowed = source.get("enum")
        if code_list is None or allowed is None:
            return
        reverse = code_list.reverse()
        absent = code_list.no_partner_code
        missing = [
            value
            for value in allowed
            if str(value) not in reverse and not (absent is not None and absent.covers(value))
        ]
        if missing:
            self.add(
                location, f"code list {name!r} has no partner code for contract values {missing}"
            )


def _produced(rules: Mapping[str, FieldRule]) -> Iterator[str]:
    for name, rule in rules.items():
        if rule.xml is not None and rule.fields is not None:
            yield from _produced(rule.fields)
        else:
            yield name


def _field_paths(expression: str) -> list[str]:
    """The plain field paths an expression reads (``a.b`` in ``a.b || c``)."""
    paths: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node["type"] == "field":
            paths.append(node["value"])
            return
        if node["type"] == "subexpression" and all(c["type"] == "field" for c in node["children"]):
            paths.append(".".join(c["value"] for c in node["children"]))
            return
        if node["type"] in {"projection", "index_expression", "flatten", "filter_projection"}:
            first = node["children"][0]
            walk(first)
            return  # what is read from each item is relative to the item
        for child in node.get("children", []):
            if isinstance(child, dict):
                walk(child)

    walk(cast(dict[str, Any], jmespath.compile(expression).parsed))
    return paths
