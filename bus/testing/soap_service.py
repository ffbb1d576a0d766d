"""A SOAP partner's service as a simulator serves it: calls at ``POST path``, the WSDL at ``?wsdl``.

:func:`add_soap_service` does what every SOAP simulator does around its operations: count the
call, refuse an oversized body (413) or an unreadable envelope (a ``Client``/``Sender`` fault,
read with the hardened parser), dispatch on the operation's name and namespace, apply the sick
partner's switches (``busy`` is a ``Server``/``Receiver`` fault; :class:`SoapFaultSwitches`'
``client_fault`` a ``Client``/``Sender`` one), and answer in the request's SOAP version. It also
serves the partner's WSDL with every ``soap:address`` pointing at the simulator, so that a
client that reads it from the simulator calls the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from lxml import etree
from starlette.requests import Request
from starlette.responses import Response

from bus.testing.answers import SickAnswers, read_capped_body, sick_answer
from bus.testing.soap import (
    SoapRequest,
    SoapRequestError,
    SoapVersion,
    read_soap_request,
    soap_answer,
    soap_fault,
    soap_media_type,
)
from bus.testing.state import PartnerState
from bus.testing.switches import SoapFaultSwitches
from bus.xmlsafe import parse_xml

__all__ = [
    "SoapOperation",
    "SoapService",
    "add_soap_service",
    "soap_answer_response",
    "soap_element",
    "soap_fault_response",
    "wsdl_with_address",
]

SoapOperation = Callable[[SoapRequest], Response]
"""One operation of a simulated service: the request read, the answer to send."""

_ADDRESS_TAGS: Final = (
    "{http://schemas.xmlsoap.org/wsdl/soap/}address",
    "{http://schemas.xmlsoap.org/wsdl/soap12/}address",
)


@dataclass(frozen=True, slots=True)
class SoapService:
    """What a SOAP simulator serves: where, in which namespace, which operations, which WSDL."""

    #: Path of the service, e.g. ``/hotich``: calls are POSTed to it, the WSDL is at ``?wsdl``.
    path: str
    #: Namespace of the operations' elements (the WSDL's target namespace).
    namespace: str
    #: The partner's WSDL, served with its addresses rewritten.
    wsdl: Path
    #: Operation name → handler.
    operations: Mapping[str, SoapOperation]
    #: Requests larger than this are refused with HTTP 413, before they are parsed.
    max_request_bytes: int = 2_000_000
    #: The reasons the faults give, in the partner's language.
    too_large: str = "Dữ liệu gửi lên quá lớn"
    unreadable: str = "Dữ liệu XML không hợp lệ"
    unknown_operation: str = "Không có thao tác"
    busy: str = "Hệ thống đang bận, vui lòng thử lại sau"
    client_fault: str = "Yêu cầu không hợp lệ"


def soap_fault_response(
    version: SoapVersion, reason: str, *, sender: bool, status_code: int | None = None
) -> Response:
    """A SOAP fault as a response, with its binding's status unless ``status_code`` says else.

    ``status_code=503`` makes the fault a gateway's, e.g. for a record the service chokes on.
    """
    content, binding_status = soap_fault(version, sender=sender, reason=reason)
    return Response(
        content, status_code=status_code or binding_status, media_type=soap_media_type(version)
    )


def soap_answer_response(version: SoapVersion, element: etree._Element) -> Response:
    """A SOAP answer holding ``element``, with HTTP 200."""
    return Response(soap_answer(version, element), media_type=soap_media_type(version))


def soap_element(
    namespace: str,
    name: str,
    values: Mapping[str, object],
    *,
    order: Sequence[str] | None = None,
    prefix: str = "tns",
) -> etree._Element:
    """``<name>`` with one child per value, in ``order`` (a WSDL sequence: order matters).

    None values are left out; booleans are written ``true``/``false``.
    """
    element = etree.Element(f"{{{namespace}}}{name}", nsmap={prefix: namespace})
    for field in order if order is not None else list(values):
        value = values.get(field)
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        etree.SubElement(element, f"{{{namespace}}}{field}").text = text
    return element


def wsdl_with_address(wsdl: Path, location: str) -> bytes:
    """The WSDL with every SOAP 1.1 and 1.2 ``soap:address`` set to ``location``."""
    root = parse_xml(wsdl.read_bytes())
    for address in root.iter(*_ADDRESS_TAGS):
        address.set("location", location)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def add_soap_service(
    app: FastAPI, state: PartnerState[Any], service: SoapService, *, tag: str = "SOAP"
) -> None:
    """Serve ``service`` on ``app``: ``POST service.path`` and ``GET service.path?wsdl``.

    Every POST is counted with ``state.record_request``, whatever its outcome.
    """

    async def call(request: Request) -> Response:
        state.record_request(request)
        content_type = request.headers.get("content-type")
        guess: SoapVersion = (
            "1.2" if (content_type or "").startswith("application/soap+xml") else "1.1"
        )
        raw = await read_capped_body(request, service.max_request_bytes)
        if raw is None:
            return soap_fault_response(guess, service.too_large, sender=True, status_code=413)
        try:
            parsed = read_soap_request(raw, content_type)
        except SoapRequestError as exc:
            reason = f"{service.unreadable}: {exc}"
            return soap_fault_response(exc.version, reason, sender=True)
        handler = service.operations.get(parsed.name)
        if handler is None or etree.QName(parsed.operation).namespace != service.namespace:
            reason = f"{service.unknown_operation} {parsed.name}"
            return soap_fault_response(parsed.version, reason, sender=True)
        version = parsed.version
        answers = SickAnswers(busy=lambda: soap_fault_response(version, service.busy, sender=False))
        sick = await sick_answer(request, state, answers)
        if sick is not None:
            return sick
        faults = state.current_faults()
        if isinstance(faults, SoapFaultSwitches) and faults.client_fault:
            return soap_fault_response(version, service.client_fault, sender=True)
        return handler(parsed)

    async def wsdl(request: Request) -> Response:
        if "wsdl" not in request.query_params:
            return Response("Add ?wsdl for the service description.", status_code=404)
        location = f"{str(request.base_url).rstrip('/')}{service.path}"
        return Response(wsdl_with_address(service.wsdl, location), media_type="text/xml")

    operations = ", ".join(service.operations)
    app.add_api_route(
        service.path,
        call,
        methods=["POST"],
        tags=[tag],
        summary="The SOAP 1.1/1.2 service",
        description=f"Operations: {operations} (see ?wsdl).",
    )
    app.add_api_route(
        service.path,
        wsdl,
        methods=["GET"],
        tags=[tag],
        summary="The service's WSDL (?wsdl), its addresses pointing at this simulator",
    )
