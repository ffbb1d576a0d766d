"""The bus as a SOAP service: read a partner's envelope, answer it, or fault, in its SOAP version.

The client side (calling a partner through zeep) is :mod:`bus.soap`; this side needs no zeep:
an inbound envelope is one element in a Body, read from a tree that :func:`bus.xmlsafe.parse_xml`
has already screened. Faults follow the SOAP HTTP bindings as WS-I Basic Profile 1.1 reads them:
a request that is no SOAP message at all is answered 400 (R1113), a wrong media type 415
(R1115), any other fault 500 in SOAP 1.1 (R1126) and 400 for a SOAP 1.2 ``Sender`` fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

__all__ = [
    "SOAP11_ENVELOPE",
    "SOAP12_ENVELOPE",
    "NotSoap",
    "SoapCall",
    "SoapVersion",
    "envelope",
    "fault",
    "is_envelope",
    "media_type",
    "read_call",
    "version_for_media_type",
]

SoapVersion = Literal["1.1", "1.2"]

SOAP11_ENVELOPE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE: Final = "http://www.w3.org/2003/05/soap-envelope"

_NAMESPACES: Final[dict[SoapVersion, str]] = {"1.1": SOAP11_ENVELOPE, "1.2": SOAP12_ENVELOPE}
_MEDIA_TYPES: Final[dict[SoapVersion, str]] = {"1.1": "text/xml", "1.2": "application/soap+xml"}
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"


class NotSoap(ValueError):
    """Raised when a well-formed XML document is not a SOAP request with one Body element."""


@dataclass(frozen=True, slots=True)
class SoapCall:
    """One SOAP request: its version and the element its Body carries (document/literal)."""

    version: SoapVersion
    element: etree._Element

    @property
    def operation(self) -> str:
        """The local name of the Body's element: the operation called."""
        return str(etree.QName(self.element).localname)


def version_for_media_type(media_type: str) -> SoapVersion:
    """The SOAP version a Content-Type announces (``application/soap+xml`` is 1.2)."""
    return "1.2" if media_type == _MEDIA_TYPES["1.2"] else "1.1"


def media_type(version: SoapVersion) -> str:
    """The Content-Type of an answer in ``version``."""
    return f"{_MEDIA_TYPES[version]}; charset=utf-8"


def is_envelope(root: etree._Element) -> bool:
    """Whether a parsed document is a SOAP 1.1 or 1.2 envelope."""
    return root.tag in {f"{{{ns}}}Envelope" for ns in _NAMESPACES.values()}


def read_call(root: etree._Element) -> SoapCall:
    """The request in a screened envelope; :class:`NotSoap` when it is none."""
    version = next((v for v, ns in _NAMESPACES.items() if root.tag == f"{{{ns}}}Envelope"), None)
    if version is None:
        raise NotSoap(f"not a SOAP envelope: the root element is <{etree.QName(root).localname}>")
    body = root.find(f"{{{_NAMESPACES[version]}}}Body")
    if body is None:
        raise NotSoap("the SOAP envelope has no Body")
    elements = [child for child in body if isinstance(child.tag, str)]
    if len(elements) != 1:
        raise NotSoap(f"the SOAP Body holds {len(elements)} elements; send one request per call")
    return SoapCall(version, elements[0])


def envelope(version: SoapVersion, element: etree._Element) -> bytes:
    """An envelope whose Body carries ``element`` (an answer, sent with HTTP 200)."""
    namespace = _NAMESPACES[version]
    root = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    etree.SubElement(root, f"{{{namespace}}}Body").append(element)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def fault(version: SoapVersion, *, reason: str, detail: etree._Element | None = None) -> bytes:
    """A fault blaming the request (``Client`` in 1.1, ``Sender`` in 1.2), with its detail.

    The bus faults only requests: what fails on its own side is answered by the API's 503.
    """
    namespace = _NAMESPACES[version]
    root = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    body = etree.SubElement(root, f"{{{namespace}}}Body")
    node = etree.SubElement(body, f"{{{namespace}}}Fault")
    if version == "1.1":
        # SOAP 1.1 leaves faultcode, faultstring and detail unqualified.
        etree.SubElement(node, "faultcode").text = "soap:Client"
        etree.SubElement(node, "faultstring").text = reason
        holder = etree.SubElement(node, "detail") if detail is not None else None
    else:
        code = etree.SubElement(node, f"{{{namespace}}}Code")
        etree.SubElement(code, f"{{{namespace}}}Value").text = "soap:Sender"
        text = etree.SubElement(
            etree.SubElement(node, f"{{{namespace}}}Reason"), f"{{{namespace}}}Text"
        )
        text.set(_XML_LANG, "en")
        text.text = reason
        holder = etree.SubElement(node, f"{{{namespace}}}Detail") if detail is not None else None
    if holder is not None and detail is not None:
        holder.append(detail)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
