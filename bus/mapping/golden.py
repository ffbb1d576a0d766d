"""Golden examples: an input file beside the output it must map to, run by ``bus mappings test``.

Layout, per message::

    mappings/<partner>/<version>/examples/<message>/<case>.input.json    (or .input.xml)
    mappings/<partner>/<version>/examples/<message>/<case>.expected.json (or .expected.xml)
    mappings/<partner>/<version>/examples/<message>/<case>.context.json  (optional)

Outbound inputs are canonical JSON; inbound inputs are what the partner sends. An expected
``.error.txt`` instead of an output says the case must fail with a message containing that text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from lxml import etree

from bus.errors import MappingError
from bus.mapping.catalog import MappingCatalog, MessageMapping


@dataclass(frozen=True)
class GoldenCase:
    """One example of one message mapping."""

    mapping: MessageMapping
    name: str
    input_path: Path
    expected_path: Path | None
    context_path: Path | None

    @property
    def label(self) -> str:
        """``partner/version/message:case``."""
        return f"{self.mapping.ref}:{self.name}"


@dataclass(frozen=True)
class GoldenResult:
    """What running a case showed."""

    case: GoldenCase
    ok: bool
    detail: str = ""


def discover(catalog: MappingCatalog) -> Iterator[GoldenCase]:
    """Every golden case under the catalogue's folders, in a stable order."""
    for mapping in catalog:
        folder = mapping.folder / "examples" / mapping.message
        if not folder.is_dir():
            continue
        for input_path in sorted(folder.glob("*.input.*")):
            name = input_path.name.split(".input.")[0]
            expected = [
                p
                for p in folder.glob(f"{name}.*")
                if ".expected." in p.name or p.name.endswith(".error.txt")
            ]
            context = folder / f"{name}.context.json"
            # A case without exactly one expected file is reported as a failure of its own,
            # so one half-written example does not stop every other partner's run.
            yield GoldenCase(
                mapping,
                name,
                input_path,
                expected[0] if len(expected) == 1 else None,
                context if context.exists() else None,
            )


def run_case(case: GoldenCase) -> GoldenResult:
    """Map the case's input and compare with its expected output (or expected error)."""
    if case.expected_path is None:
        return GoldenResult(
            case,
            False,
            f"{case.input_path}: needs exactly one {case.name}.expected.json|.xml "
            f"or {case.name}.error.txt beside it",
        )
    mapping = case.mapping
    context: dict[str, Any] = (
        orjson.loads(case.context_path.read_bytes()) if case.context_path else {}
    )
    raw = case.input_path.read_bytes()
    expects_error = case.expected_path.name.endswith(".error.txt")
    try:
        if mapping.spec.direction == "outbound":
            produced = mapping.apply(orjson.loads(raw), context)
            if case.expected_path.suffix == ".xml":
                return _compare_xml(case, mapping.encode_partner(produced))
        else:
            source = mapping.decode_partner(raw)
            if mapping.spec.complete:
                produced = mapping.to_canonical(source, context).model_dump(
                    mode="json", exclude_none=True
                )
            else:
                produced = mapping.apply(source, context)
    except MappingError as exc:
        if expects_error:
            wanted = case.expected_path.read_text(encoding="utf-8").strip()
            if wanted in str(exc):
                return GoldenResult(case, True)
            return GoldenResult(case, False, f"expected an error containing {wanted!r}, got: {exc}")
        return GoldenResult(case, False, f"mapping failed: {exc}")
    if expects_error:
        return GoldenResult(case, False, "expected an error, but the mapping succeeded")
    expected = orjson.loads(case.expected_path.read_bytes())
    if produced == expected:
        return GoldenResult(case, True)
    return GoldenResult(case, False, _difference(expected, produced))


def _compare_xml(case: GoldenCase, produced: bytes) -> GoldenResult:
    def canonical(data: bytes) -> bytes:
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        canonical_form: bytes = etree.tostring(etree.fromstring(data, parser), method="c14n")
        return canonical_form

    assert case.expected_path is not None
    if canonical(produced) == canonical(case.expected_path.read_bytes()):
        return GoldenResult(case, True)
    return GoldenResult(case, False, f"XML differs; produced:\n{produced.decode()}")


def _difference(expected: Any, produced: Any, path: str = "") -> str:
    """The first place where two JSON values differ, as a readable line."""
    if isinstance(expected, dict) and isinstance(produced, dict):
        for key in sorted(set(expected) | set(produced)):
            where = f"{path}.{key}" if path else key
            if key not in produced:
                return f"{where}: missing (expected {expected[key]!r})"
            if key not in expected:
                return f"{where}: unexpected {produced[key]!r}"
            if expected[key] != produced[key]:
                return _difference(expected[key], produced[key], where)
    if isinstance(expected, list) and isinstance(produced, list):
        if len(expected) != len(produced):
            return f"{path}: {len(produced)} items, expected {len(expected)}"
        for index, (e, p) in enumerate(zip(expected, produced, strict=True)):
            if e != p:
                return _difference(e, p, f"{path}[{index}]")
    return f"{path or '(root)'}: expected {expected!r}, got {produced!r}"


def run_all(catalog: MappingCatalog) -> list[GoldenResult]:
    """Run every golden case of the catalogue."""
    return [run_case(case) for case in discover(catalog)]
