"""Answering a push in the partner's own words: its result codes, its format, its SOAP version.

What the bus decided is a :class:`Verdict` (accepted, unreadable, invalid, not found), the same
for every partner; :func:`render` says it the way the connector's ``[inbound.answer]`` asks:
``{"error_code": 0, "message": ...}`` for a DVCQG-style REST partner, an XML document, or the
WSDL's response element (a SOAP fault when refused). Messages never echo submitted values
beyond what the mapping's own errors show (they mask identity numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import orjson
from lxml import etree

from bus.inbound import soap
from bus.inbound.settings import JsonAnswer, PartnerCode, SoapAnswer, VerdictCodes, XmlAnswer

__all__ = ["Answer", "Verdict", "VerdictKind", "render"]

VerdictKind = Literal["accepted", "unreadable", "invalid", "not_found"]
"""accepted: taken (applied, or already had); unreadable: not the partner's format, refused
before mapping; invalid: a value breaks the mapping or the contract; not_found: no such dossier."""

_STATUS: Final[dict[VerdictKind, int]] = {
    "accepted": 200,
    "unreadable": 400,
    "invalid": 422,
    "not_found": 404,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the bus makes of one push, before it is put in the partner's words."""

    kind: VerdictKind
    message: str
    #: The HTTP status for partners that read one (413 and 415 are kept even in SOAP).
    status: int = 0

    @property
    def http_status(self) -> int:
        """The given status, or the usual one for the kind."""
        return self.status or _STATUS[self.kind]


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer ready to send."""

    body: bytes
    media_type: str
    status: int


def render(
    style: JsonAnswer | XmlAnswer | SoapAnswer,
    verdict: Verdict,
    *,
    soap_version: soap.SoapVersion = "1.1",
    namespace: str | None = None,
    response_element: str | None = None,
) -> Answer:
    """``verdict`` in ``style``; SOAP answers need the version, namespace and answer element."""
    code = _code(style.codes, verdict.kind)
    if isinstance(style, JsonAnswer):
        body = {style.code_field: code, style.message_field: verdict.message}
        return Answer(orjson.dumps(body), "application/json", verdict.http_status)
    if isinstance(style, XmlAnswer):
        element = _result(
            None, style.root, style.code_element, style.message_element, code, verdict
        )
        document = etree.tostring(element, xml_declaration=True, encoding="utf-8")
        return Answer(bytes(document), "application/xml; charset=utf-8", verdict.http_status)
    return _soap(style, verdict, code, soap_version, namespace, response_element)


def _soap(
    style: SoapAnswer,
    verdict: Verdict,
    code: PartnerCode,
    version: soap.SoapVersion,
    namespace: str | None,
    response_element: str | None,
) -> Answer:
    media_type = soap.media_type(version)
    if verdict.kind == "accepted":
        assert response_element is not None, "a SOAP answer needs the WSDL's answer element"
        element = _result(
            namespace, response_element, style.code_element, style.message_element, code, verdict
        )
        return Answer(soap.envelope(version, element), media_type, 200)
    detail = _result(
        namespace, style.fault_detail, style.code_element, style.message_element, code, verdict
    )
    # Not a SOAP message the service could read is a 400 (or 413, 415) in any version (WS-I BP
    # R1113, R1115); a fault about what the request says is 500 in 1.1, 400 (Sender) in 1.2.
    if verdict.kind == "unreadable":
        status = verdict.http_status
    else:
        status = 500 if version == "1.1" else 400
    return Answer(soap.fault(version, reason=verdict.message, detail=detail), media_type, status)


def _result(
    namespace: str | None,
    name: str,
    code_element: str,
    message_element: str,
    code: PartnerCode,
    verdict: Verdict,
) -> etree._Element:
    """``<name><code/><message/></name>``, qualified by ``namespace`` when given."""

    def qualified(local: str) -> str:
        return f"{{{namespace}}}{local}" if namespace else local

    nsmap = {"tns": namespace} if namespace else None
    element = etree.Element(qualified(name), nsmap=nsmap)
    etree.SubElement(element, qualified(code_element)).text = str(code)
    etree.SubElement(element, qualified(message_element)).text = verdict.message
    return element


def _code(codes: VerdictCodes, kind: VerdictKind) -> PartnerCode:
    code: PartnerCode = getattr(codes, kind)
    return code
