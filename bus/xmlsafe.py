"""The bus's one hardened XML parser: every XML that crosses the edge is read through here.

Partner payloads are untrusted. :func:`parse_xml` refuses, with :class:`UnsafeXml`, anything a
message between agencies never needs and an attacker loves: DOCTYPEs (and with them entity
declarations, "billion laughs" and external entities), XInclude, processing instructions,
oversized input, absurd nesting and bytes that are not UTF-8. Never call ``lxml.etree.fromstring``
on partner data directly.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "UnsafeXml", "parse_xml"]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_DEPTH = 64

_XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)
# A well-formed document can hold these markers only inside a DTD, a comment or a CDATA section;
# refusing them outright is cheaper and safer than letting libxml2 read a DTD first.
_DTD_MARKERS = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_ENCODING_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_UTF8_BOM = b"\xef\xbb\xbf"


class UnsafeXml(ValueError):
    """Raised when a document is refused: unsafe constructs, limits exceeded, or not well-formed."""


class _RefuseAll(etree.Resolver):  # type: ignore[misc]
    """Resolver that refuses every external resource libxml2 might still try to fetch."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        raise UnsafeXml(f"external resource refused: {system_url!r}")


def _make_parser() -> Any:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        # Kept, to be refused by _check_tree: dropping them would apply a message whose sender
        # asked for processing the bus does not do.
        remove_pis=False,
    )
    parser.resolvers.add(_RefuseAll())
    return parser


def parse_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    """Parse untrusted UTF-8 XML and return its root element.

    Raises :class:`UnsafeXml` when the input is larger than ``max_bytes``, is not valid UTF-8
    (or declares another encoding), contains a DOCTYPE or any DTD declaration, uses XInclude,
    nests elements deeper than ``max_depth`` (the root is depth 1), holds a processing
    instruction (SOAP 1.1 and 1.2 forbid them in a message; ``<?xml …?>``, the declaration, is
    none), or is not well-formed. A literal ``<!DOCTYPE``/``<!ENTITY`` even inside a comment or
    CDATA section is refused too: no partner message needs one.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UnsafeXml(f"XML must be given as bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise UnsafeXml(f"XML document is {len(data)} bytes, more than the {max_bytes} allowed")
    _check_utf8(data)
    marker = _DTD_MARKERS.search(data)
    if marker is not None:
        name = marker.group(1).decode("ascii").upper()
        raise UnsafeXml(f"XML with a DTD is refused (found <!{name}): DOCTYPE/entities not allowed")

    # A fresh parser per call: lxml parsers are not safe to share between threads.
    parser = _make_parser()
    try:
        root = etree.fromstring(data, parser=parser)
    except UnsafeXml:
        raise
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in str(exc):  # libxml2's own hard limit fired before ours could
            raise UnsafeXml(
                f"XML nests elements deeper than the {max_depth} levels allowed"
            ) from exc
        raise UnsafeXml(f"XML is not well-formed: {exc}") from exc
    if root is None:
        raise UnsafeXml("XML document is empty")

    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("XML with a DTD is refused: DOCTYPE/entities not allowed")
    _check_tree(root, max_depth)
    return root


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeXml(f"XML is not valid UTF-8 (byte offset {exc.start}): {exc.reason}") from exc
    declared = _ENCODING_DECLARATION.match(data.removeprefix(_UTF8_BOM))
    if declared is not None and declared.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        encoding = declared.group(1).decode("ascii")
        raise UnsafeXml(f"XML must be UTF-8; the document declares encoding {encoding!r}")


def _check_tree(root: etree._Element, max_depth: int) -> None:
    """Walk the tree once, iteratively, refusing deep nesting, XInclude, entity references and
    processing instructions (also before or after the root element)."""
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if sibling.tag is etree.PI:
            raise UnsafeXml(f"XML processing instruction refused: <?{sibling.target}?>")
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > max_depth:
            raise UnsafeXml(f"XML nests elements deeper than the {max_depth} levels allowed")
        if element.tag is etree.Entity:
            raise UnsafeXml(f"XML entity reference refused: {element.text!r}")
        if element.tag is etree.PI:
            raise UnsafeXml(f"XML processing instruction refused: <?{element.target}?>")
        tag = element.tag
        if isinstance(tag, str) and tag.startswith("{"):
            namespace = tag[1:].partition("}")[0]
            if namespace in _XINCLUDE_NAMESPACES:
                raise UnsafeXml("XML with XInclude is refused")
        stack.extend((child, depth + 1) for child in element)
