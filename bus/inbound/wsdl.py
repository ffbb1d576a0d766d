"""The WSDL the bus gives SOAP partners that push to it: a contract file, its address rewritten.

The file lives with the other partner contracts under ``contracts/partners/`` and names a
placeholder address; what a partner downloads (``GET /v1/inbound/{connector}?wsdl``) points
every ``soap:address`` and ``soap12:address`` at the URL it called, so a generated client (zeep,
.NET, Java) calls this bus and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from lxml import etree

import contracts
from bus.xmlsafe import UnsafeXml, parse_xml

__all__ = ["PARTNER_CONTRACTS", "InboundWsdl", "WsdlError", "load_wsdl"]

PARTNER_CONTRACTS: Final = Path(contracts.__file__).resolve().parent / "partners"
"""Where partner contracts (WSDL, XSD) are kept."""

MAX_WSDL_BYTES: Final = 1_000_000

_WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
_ADDRESSES: Final = (
    "{http://schemas.xmlsoap.org/wsdl/soap/}address",
    "{http://schemas.xmlsoap.org/wsdl/soap12/}address",
)


class WsdlError(ValueError):
    """Raised when an inbound WSDL is missing, outside the contracts folder, or unusable."""


@dataclass(frozen=True, slots=True)
class InboundWsdl:
    """One inbound WSDL: its source, target namespace and the operations it declares."""

    relative: str
    source: bytes
    namespace: str
    operations: frozenset[str]

    def served(self, address: str) -> bytes:
        """The document with every SOAP address set to ``address``."""
        root = parse_xml(self.source, max_bytes=MAX_WSDL_BYTES)
        for node in root.iter(*_ADDRESSES):
            node.set("location", address)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@lru_cache(maxsize=32)
def load_wsdl(relative: str) -> InboundWsdl:
    """Read ``contracts/partners/<relative>`` through the hardened parser, once per process."""
    path = (PARTNER_CONTRACTS / relative).resolve()
    if PARTNER_CONTRACTS not in path.parents:
        raise WsdlError(f"WSDL {relative!r} is outside contracts/partners/")
    try:
        source = path.read_bytes()
        root = parse_xml(source, max_bytes=MAX_WSDL_BYTES)
    except (OSError, UnsafeXml) as exc:
        raise WsdlError(f"cannot read WSDL {relative}: {exc}") from exc
    namespace = root.get("targetNamespace")
    if root.tag != f"{{{_WSDL}}}definitions" or not namespace:
        raise WsdlError(f"{relative} is not a WSDL 1.1 document with a targetNamespace")
    operations = frozenset(
        str(node.get("name"))
        for node in root.iterfind(f"{{{_WSDL}}}portType/{{{_WSDL}}}operation")
        if node.get("name")
    )
    return InboundWsdl(relative, source, namespace, operations)
