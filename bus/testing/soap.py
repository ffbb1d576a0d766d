"""The server side of SOAP, as a partner's simulator needs it: read a request, answer it.

Kept apart from :mod:`bus.soap` (the client side) so that importing the test kit never imports
zeep. Every request is read with the hardened parser :func:`bus.xmlsafe.parse_xml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from bus.xmlsafe import UnsafeXml, parse_xml

__all__ = [
    "SOAP11_ENVELOPE",
    "SOAP12_ENVELOPE",
    "SoapRequest",
    "SoapRequestError",
    "SoapVersion",
    "read_soap_request",
    "soap_answer",
    "soap_fault",
    "soap_media_type",
]

SOAP11_ENVELOPE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
"""Namespace of a SOAP 1.1 envelope."""

SOAP12_ENVELOPE: Final = "http://www.w3.org/2003/05/soap-envelope"
"""Namespace of a SOAP 1.2 envelope."""

SoapVersion = Literal["1.1", "1.2"]
"""A SOAP version, as the envelope's namespace says it."""
_ENVELOPES: Final[dict[SoapVersion, str]] = {"1.1": SOAP11_ENVELOPE, "1.2": SOAP12_ENVELOPE}
_MEDIA_TYPES: Final[dict[SoapVersion, str]] = {"1.1": "text/xml", "1.2": "application/soap+xml"}


class SoapRequestError(ValueError):
    """Raised when a request is no SOAP envelope a partner would take; ``version`` is the
    version to answer the fault in (guessed from the Content-Type when the body is unreadable)."""

    def __init__(self, message: str, version: SoapVersion) -> None:
        super().__init__(message)
        self.version: SoapVersion = version


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A SOAP request read by :func:`read_soap_request`: its version, headers and operation."""

    version: SoapVersion
    operation: etree._Element
    headers: tuple[etree._Element, ...] = ()

    @property
    def name(self) -> str:
        """The operation's name: the local name of the body's element."""
        return str(etree.QName(self.operation).localname)

    def field(self, name: str) -> str | None:
        """The text of the operation's child element ``name`` (any namespace), or None."""
        for child in self.operation:
            if isinstance(child.tag, str) and etree.QName(child).localname == name:
                return child.text or ""
        return None

    def header(self, namespace: str, name: str) -> etree._Element | None:
        """The SOAP header element ``{namespace}name``, or None."""
        for header in self.headers:
            if header.tag == f"{{{namespace}}}{name}":
                return header
        return None


def read_soap_request(raw: bytes, content_type: str | None = None) -> SoapRequest:
    """Read a SOAP 1.1 or 1.2 request with the hardened parser :func:`bus.xmlsafe.parse_xml`.

    Raises :class:`SoapRequestError` when the body is unsafe or not well-formed XML, is not a
    SOAP envelope, or its ``Body`` does not hold exactly one element.
    """
    guess: SoapVersion = (
        "1.2" if (content_type or "").lower().startswith("application/soap+xml") else "1.1"
    )
    try:
        root = parse_xml(raw)
    except UnsafeXml as exc:
        raise SoapRequestError(f"XML refused: {exc}", guess) from exc
    version = next((v for v, ns in _ENVELOPES.items() if root.tag == f"{{{ns}}}Envelope"), None)
    if version is None:
        raise SoapRequestError(f"not a SOAP envelope: <{root.tag}>", guess)
    namespace = _ENVELOPES[version]
    body = root.find(f"{{{namespace}}}Body")
    if body is None:
        raise SoapRequestError("the envelope has no Body", version)
    elements = [child for child in body if isinstance(child.tag, str)]
    if len(elements) != 1:
        raise SoapRequestError(
            f"the Body holds {len(elements)} elements, not one",
            version,
        )
    header = root.find(f"{{{namespace}}}Header")
    headers = tuple(h for h in header if isinstance(h.tag, str)) if header is not None else ()
    return SoapRequest(version, elements[0], headers)


def soap_media_type(version: SoapVersion) -> str:
    """The Content-Type of a SOAP answer of this version."""
    return f"{_MEDIA_TYPES[version]}; charset=utf-8"


def soap_answer(version: SoapVersion, element: etree._Element) -> bytes:
    """A SOAP envelope whose Body holds ``element`` (send it with HTTP 200)."""
    namespace = _ENVELOPES[version]
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    etree.SubElement(envelope, f"{{{namespace}}}Body").append(element)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def soap_fault(version: SoapVersion, *, sender: bool, reason: str) -> tuple[bytes, int]:
    """A SOAP fault and its HTTP status, as the SOAP HTTP bindings prescribe.

    ``sender`` says the request was at fault (``Client`` in 1.1, ``Sender`` in 1.2) rather than
    the service (``Server`` / ``Receiver``). SOAP 1.1 answers every fault with HTTP 500; SOAP 1.2
    answers a Sender fault with 400 and a Receiver fault with 500.
    """
    namespace = _ENVELOPES[version]
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    fault = etree.SubElement(
        etree.SubElement(envelope, f"{{{namespace}}}Body"), f"{{{namespace}}}Fault"
    )
    if version == "1.1":
        etree.SubElement(fault, "faultcode").text = "soap:Client" if sender else "soap:Server"
        etree.SubElement(fault, "faultstring").text = reason
        status = 500
    else:
        code = etree.SubElement(fault, f"{{{namespace}}}Code")
        value = "soap:Sender" if sender else "soap:Receiver"
        etree.SubElement(code, f"{{{namespace}}}Value").text = value
        text = etree.SubElement(
            etree.SubElement(fault, f"{{{namespace}}}Reason"), f"{{{namespace}}}Text"
        )
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "vi")
        text.text = reason
        status = 400 if sender else 500
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8")), status
