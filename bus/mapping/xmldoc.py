"""XML documents inside mappings: to and from plain dicts, parsed safely, checked against an XSD.

The dict form is what JMESPath expressions read: an element with children is an object of its
children (a repeated child becomes a list), a leaf is its text, an attribute is ``@name``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from bus.xmlsafe import UnsafeXml, parse_xml

_IDENTITY_LIKE = re.compile(r"\d{9,13}")

PARTNER_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "partners"


class XmlMappingError(ValueError):
    """Raised when an XML document is unsafe, malformed, or not valid against its XSD."""


@lru_cache(maxsize=64)
def schema(relative: str) -> etree.XMLSchema:
    """The XSD at ``contracts/partners/<relative>``, loaded once (no network, no DTD)."""
    path = (PARTNER_SCHEMAS / relative).resolve()
    if PARTNER_SCHEMAS not in path.parents:
        raise XmlMappingError(f"schema {relative!r} is outside contracts/partners/")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise XmlMappingError(f"cannot load XSD {relative}: {exc}") from exc


def to_dict(data: str | bytes, *, root: str, xsd: str | None) -> dict[str, Any]:
    """Parse (hardened) and validate an XML document; return its root's content as a dict."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        element = parse_xml(raw)
    except UnsafeXml as exc:
        raise XmlMappingError(str(exc)) from exc
    if etree.QName(element).localname != root:
        raise XmlMappingError(
            f"expected root element <{root}>, got <{etree.QName(element).localname}>"
        )
    if xsd is not None:
        _validate(element, xsd)
    return element_content(element)


def element_content(element: etree._Element) -> dict[str, Any]:
    """An element's children and attributes as the dict expressions read (a leaf: ``{}``)."""
    content = _element_value(element)
    return content if isinstance(content, dict) else {}


def from_dict(content: dict[str, Any], *, root: str, xsd: str | None) -> str:
    """Build the XML document ``<root>`` from a dict (in key order) and validate it."""
    element = etree.Element(root)
    _fill(element, content)
    if xsd is not None:
        _validate(element, xsd)
    text: str = etree.tostring(element, encoding="unicode")
    return text


def _validate(element: etree._Element, xsd: str) -> None:
    checker = schema(xsd)
    if not checker.validate(element):
        first = checker.error_log[0]
        where = f"line {first.line}: " if first.line else ""
        # The validator quotes the refused value; a mistyped identity number must not leak.
        message = _IDENTITY_LIKE.sub(
            lambda m: "*" * (len(m.group()) - 3) + m.group()[-3:], first.message
        )
        raise XmlMappingError(f"not valid against {xsd}: {where}{message}")


def _element_value(element: etree._Element) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    if not children and not element.attrib:
        text = (element.text or "").strip()
        return text or None
    content: dict[str, Any] = {f"@{k}": v for k, v in element.attrib.items()}
    for child in children:
        name = etree.QName(child).localname
        value = _element_value(child)
        if name in content:
            existing = content[name]
            content[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            content[name] = value
    return content


def _fill(element: etree._Element, content: dict[str, Any]) -> None:
    for key, value in content.items():
        if value is None:
            continue
        if key.startswith("@"):
            element.set(key[1:], _text(value))
            continue
        for item in value if isinstance(value, list) else [value]:
            child = etree.SubElement(element, key)
            if isinstance(item, dict):
                _fill(child, item)
            elif item is not None:
                child.text = _text(item)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
