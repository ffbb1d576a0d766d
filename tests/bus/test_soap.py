"""The generic SOAP kit against a small SOAP responder over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree
from zeep.exceptions import Fault, TransportError, ValidationError

from bus.connector import ConnectorConfig
from bus.errors import MappingError, PartnerRejected, PartnerUnavailable
from bus.soap import (
    XROAD_IDENTIFIERS_NAMESPACE,
    XROAD_NAMESPACE,
    SoapClient,
    SoapExchange,
    SoapSetupError,
    hardened_settings,
    translate_soap_errors,
)
from bus.testing import (
    HOSTILE_XML,
    SOAP11_ENVELOPE,
    SOAP12_ENVELOPE,
    SoapRequest,
    SoapRequestError,
    read_soap_request,
    serve_app,
    soap_answer,
    soap_fault,
    soap_media_type,
)
from bus.xmlsafe import UnsafeXml

NS = "urn:test:echo"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD = "s3cret-Pa55word"
DOSSIER = "000.00.10.H12-240315-0001"

ECHO_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="Echo" targetNamespace="urn:test:echo" xmlns:tns="urn:test:echo"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <wsdl:types>
    <xs:schema targetNamespace="urn:test:echo" elementFormDefault="qualified">
      <xs:element name="echo">
        <xs:complexType><xs:sequence>
          <xs:element name="text" type="xs:string"/>
          <xs:element name="count" type="xs:int" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="echoResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="text" type="xs:string"/>
          <xs:element name="count" type="xs:int" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="echoRequest"><wsdl:part name="parameters" element="tns:echo"/></wsdl:message>
  <wsdl:message name="echoResponse">
    <wsdl:part name="parameters" element="tns:echoResponse"/>
  </wsdl:message>
  <wsdl:portType name="EchoPortType">
    <wsdl:operation name="echo">
      <wsdl:input message="tns:echoRequest"/><wsdl:output message="tns:echoResponse"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="EchoSoap11" type="tns:EchoPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="echo">
      <soap:operation soapAction="urn:test:echo:echo"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:binding name="EchoSoap12" type="tns:EchoPortType">
    <soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="echo">
      <soap12:operation soapAction="urn:test:echo:echo"/>
      <wsdl:input><soap12:body use="literal"/></wsdl:input>
      <wsdl:output><soap12:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="EchoService">
    <wsdl:port name="EchoSoap" binding="tns:EchoSoap11">
      <soap:address location="http://echo.invalid/echo"/>
    </wsdl:port>
    <wsdl:port name="EchoSoap12" binding="tns:EchoSoap12">
      <soap12:address location="http://echo.invalid/echo"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


@dataclass
class Seen:
    """One request as the responder received it."""

    path: str
    headers: dict[str, str]
    raw: bytes
    call: SoapRequest | None


@dataclass
class Responder:
    """What the responder saw; safe to read from the test while it serves."""

    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, item: Seen) -> None:
        """Remember one request."""
        with self.lock:
            self.seen.append(item)


def _envelope(version: str, inner: str) -> bytes:
    """A SOAP envelope of ``version`` around a raw Body content."""
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    return (f'<s:Envelope xmlns:s="{namespace}"><s:Body>{inner}</s:Body></s:Envelope>').encode()


def _echo_element(text: str, count: int | None = None) -> etree._Element:
    element = etree.Element(f"{{{NS}}}echoResponse", nsmap={"e": NS})
    etree.SubElement(element, f"{{{NS}}}text").text = text
    if count is not None:
        etree.SubElement(element, f"{{{NS}}}count").text = str(count)
    return element


def _behaviour(call: SoapRequest, responder: Responder) -> tuple[bytes, int, str]:
    """The answer the echo text asks for: the test drives the responder through its argument."""
    text = call.field("text") or ""
    version = call.version
    xml = soap_media_type(version)
    kind, _, arg = text.partition(":")
    if kind == "client-fault":
        body, status = soap_fault(version, sender=True, reason=arg or "bad request")
        return body, status, xml
    if kind == "server-fault":
        body, status = soap_fault(version, sender=False, reason=arg or "database down")
        return body, status, xml
    if kind == "fault11":  # a SOAP 1.1 fault with the fault code given verbatim
        code = f"<faultcode>{arg}</faultcode>" if arg else ""
        inner = f"<s:Fault>{code}<faultstring>custom fault</faultstring></s:Fault>"
        return _envelope("1.1", inner), 500, xml
    if kind == "fault12-subcode":
        inner = (
            "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode>"
            '<s:Value xmlns:e="urn:test:echo">e:HoSoKhongHopLe</s:Value></s:Subcode></s:Code>'
            '<s:Reason><s:Text xml:lang="vi">hồ sơ không hợp lệ</s:Text></s:Reason></s:Fault>'
        )
        return _envelope("1.2", inner), 400, xml
    if kind == "status":  # an HTTP status with a gateway's plain-text page
        return f"gateway says no ({arg})".encode(), int(arg), "text/plain"
    if kind == "status-empty":
        return b"", int(arg), "text/plain"
    if kind == "status-fault":  # a SOAP fault body behind a status outside the SOAP binding
        body, _ = soap_fault(version, sender=False, reason="busy")
        return body, int(arg), xml
    if kind == "html":
        return b"<html><body><h1>Maintenance</h1></body></html>", 200, "text/html"
    if kind == "garbage":
        return b"<html><body><hr></body></html>", 200, "text/html"
    if kind == "hostile":
        return HOSTILE_XML[arg], 200, xml
    if kind == "unexpected":
        inner = f'<e:echoResponse xmlns:e="{NS}"><e:surprise>1</e:surprise></e:echoResponse>'
        return _envelope(version, inner), 200, xml
    if kind == "empty-body":
        return _envelope(version, ""), 200, xml
    if kind == "other-version":
        other = "1.2" if version == "1.1" else "1.1"
        return soap_answer(other, _echo_element("x")), 200, soap_media_type(other)
    if kind == "deep":
        return _envelope(version, "<a>" * 100 + "</a>" * 100), 200, xml
    if kind == "big":
        return soap_answer(version, _echo_element("x" * 5000)), 200, xml
    with responder.lock:
        count = len(responder.seen)
    return soap_answer(version, _echo_element(text, count)), 200, xml


def create_responder(responder: Responder) -> FastAPI:
    """A tiny SOAP service for the echo WSDL, answering on any path."""
    app = FastAPI()

    @app.post("/{path:path}")
    async def soap(request: Request, path: str) -> Response:
        raw = await request.body()
        try:
            call = read_soap_request(raw, request.headers.get("content-type"))
        except SoapRequestError as exc:
            responder.record(Seen(f"/{path}", dict(request.headers), raw, None))
            body, status = soap_fault(exc.version, sender=True, reason=str(exc))
            return Response(body, status_code=status, media_type=soap_media_type(exc.version))
        responder.record(Seen(f"/{path}", dict(request.headers), raw, call))
        if call.field("text") == "hang":
            # Polling is the only way to see the client give up; the hang ends with it.
            while not await request.is_disconnected():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            return Response(status_code=504)
        if call.field("text") == "redirect":
            return Response(status_code=302, headers={"Location": "http://elsewhere.invalid/"})
        body, status, media_type = _behaviour(call, responder)
        return Response(body, status_code=status, media_type=media_type)

    return app


@pytest.fixture(scope="module")
def responder() -> Responder:
    """The responder's record of requests, shared by the module; cleared before each test."""
    return Responder()


@pytest.fixture(scope="module")
def base_url(responder: Responder) -> Iterator[str]:
    """The SOAP responder, served over HTTP on a free loopback port."""
    with serve_app(create_responder(responder)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_responder(responder: Responder) -> None:
    """Every test starts with an empty record."""
    with responder.lock:
        responder.seen.clear()


@pytest.fixture(scope="module")
def contracts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A contracts folder holding the echo WSDL at echo/echo.wsdl."""
    root = tmp_path_factory.mktemp("partners")
    (root / "echo").mkdir()
    (root / "echo" / "echo.wsdl").write_text(ECHO_WSDL, encoding="utf-8")
    return root


def make_config(endpoint: str, **overrides: Any) -> ConnectorConfig:
    """A SOAP connector configuration for the echo service."""
    values: dict[str, Any] = {
        "id": "echo_partner",
        "kind": "soap",
        "agency": "000.00.00.G12",
        "title": "Echo partner",
        "endpoint": endpoint,
        "timeout_seconds": 5,
        "soap": {"wsdl": "echo/echo.wsdl", "operation": "echo"},
        **overrides,
    }
    return ConnectorConfig.model_validate(values)


@pytest.fixture(params=["EchoSoap", "EchoSoap12"])
async def client(
    request: pytest.FixtureRequest, base_url: str, contracts_root: Path
) -> AsyncIterator[SoapClient]:
    """A kit client of the echo service, once through its SOAP 1.1 port, once through 1.2."""
    config = make_config(
        base_url, soap={"wsdl": "echo/echo.wsdl", "operation": "echo", "port": request.param}
    )
    async with SoapClient(config, contracts_root=contracts_root) as instance:
        yield instance


def only(responder: Responder) -> Seen:
    """The one request the responder received."""
    with responder.lock:
        assert len(responder.seen) == 1, responder.seen
        return responder.seen[0]


# --- calls that work -----------------------------------------------------------------------


async def test_call_answers_the_operation_result_as_a_dict(
    client: SoapClient, responder: Responder
) -> None:
    """A call returns the operation's answer as a plain dict, with sizes and times."""
    reply = await client.call({"text": "xin chào"})

    assert reply.body == {"text": "xin chào", "count": 1}
    assert type(reply.body) is dict
    seen = only(responder)
    assert reply.request_size == len(seen.raw)
    assert reply.response_size > 0
    assert reply.status_code == 200
    assert reply.sent_at.tzinfo is not None
    assert reply.sent_at <= reply.answered_at


async def test_soap_11_and_12_speak_their_own_envelope(
    client: SoapClient, responder: Responder
) -> None:
    """The 1.1 port sends a text/xml SOAP 1.1 envelope, the 1.2 port an application/soap+xml one."""
    await client.call({"text": "hello"})

    seen = only(responder)
    assert seen.call is not None
    assert seen.call.version == client.version
    content_type = seen.headers["content-type"]
    if client.version == "1.1":
        assert content_type.startswith("text/xml")
        assert seen.headers["soapaction"] == '"urn:test:echo:echo"'
    else:
        assert content_type.startswith("application/soap+xml")
        assert 'action="urn:test:echo:echo"' in content_type
    assert seen.call.name == "echo"


async def test_endpoint_without_path_takes_the_wsdl_path(
    client: SoapClient, responder: Responder, base_url: str
) -> None:
    """The configured endpoint replaces the WSDL's host; the WSDL's path /echo is kept."""
    assert client.address == f"{base_url}/echo"
    await client.call({"text": "where"})
    assert only(responder).path == "/echo"


async def test_endpoint_with_a_path_is_used_as_it_is(
    base_url: str, contracts_root: Path, responder: Responder
) -> None:
    """An endpoint that has its own path is called verbatim, whatever the WSDL says."""
    config = make_config(f"{base_url}/gateway/echo-v2")
    async with SoapClient(config, contracts_root=contracts_root) as client:
        await client.call({"text": "where"})
    assert only(responder).path == "/gateway/echo-v2"


async def test_without_xroad_or_auth_no_header_is_sent(
    client: SoapClient, responder: Responder
) -> None:
    """A configuration without [xroad] or auth sends an envelope without SOAP headers."""
    await client.call({"text": "plain"}, issue=DOSSIER)
    seen = only(responder)
    assert seen.call is not None and seen.call.headers == ()
    assert "authorization" not in seen.headers


# --- X-Road and WS-Security ---------------------------------------------------------------


async def test_xroad_headers_are_sent(
    base_url: str, contracts_root: Path, responder: Responder
) -> None:
    """With [xroad], the envelope carries client, service, id, userId, issue and protocolVersion."""
    config = make_config(
        base_url,
        xroad={
            "client": "VN/GOV/000.00.00.H12/LGSP",
            "service": "VN/GOV/000.00.00.G12/HOTICH/echo/v1",
            "user_id": "officer-7",
        },
    )
    async with SoapClient(config, contracts_root=contracts_root) as client:
        await client.call({"text": "x"}, issue=DOSSIER, message_id="msg-42")

    call = only(responder).call
    assert call is not None
    names = [etree.QName(header).localname for header in call.headers]
    assert names == ["client", "service", "id", "userId", "issue", "protocolVersion"]
    assert all(etree.QName(h).namespace == XROAD_NAMESPACE for h in call.headers)

    def parts(element: etree._Element | None) -> dict[str, str]:
        assert element is not None
        return {etree.QName(child).localname: child.text or "" for child in element}

    object_type = f"{{{XROAD_IDENTIFIERS_NAMESPACE}}}objectType"
    client_header = call.header(XROAD_NAMESPACE, "client")
    assert client_header is not None and client_header.get(object_type) == "SUBSYSTEM"
    assert parts(client_header) == {
        "xRoadInstance": "VN",
        "memberClass": "GOV",
        "memberCode": "000.00.00.H12",
        "subsystemCode": "LGSP",
    }
    service_header = call.header(XROAD_NAMESPACE, "service")
    assert service_header is not None and service_header.get(object_type) == "SERVICE"
    assert parts(service_header) == {
        "xRoadInstance": "VN",
        "memberClass": "GOV",
        "memberCode": "000.00.00.G12",
        "subsystemCode": "HOTICH",
        "serviceCode": "echo",
        "serviceVersion": "v1",
    }
    texts = {etree.QName(h).localname: h.text for h in call.headers if len(h) == 0}
    assert texts == {
        "id": "msg-42",
        "userId": "officer-7",
        "issue": DOSSIER,
        "protocolVersion": "4.0",
    }


async def test_xroad_id_is_fresh_without_a_message_id(
    base_url: str, contracts_root: Path, responder: Responder
) -> None:
    """Without a message id, each call gets its own X-Road id, and no issue without a dossier."""
    config = make_config(
        base_url, xroad={"client": "VN/GOV/000.00.00.H12", "service": "VN/GOV/000.00.00.G12/echo"}
    )
    async with SoapClient(config, contracts_root=contracts_root) as client:
        await client.call({"text": "a"})
        await client.call({"text": "b"})
    with responder.lock:
        calls = [seen.call for seen in responder.seen]
    ids = []
    for call in calls:
        assert call is not None
        assert call.header(XROAD_NAMESPACE, "issue") is None
        header = call.header(XROAD_NAMESPACE, "id")
        assert header is not None
        ids.append(header.text)
    assert len(set(ids)) == 2
    client_header = calls[0].header(XROAD_NAMESPACE, "client") if calls[0] else None
    assert client_header is not None
    assert client_header.get(f"{{{XROAD_IDENTIFIERS_NAMESPACE}}}objectType") == "MEMBER"


@pytest.mark.parametrize(
    "xroad",
    [
        {"client": "VN/GOV", "service": "VN/GOV/000.00.00.G12/HOTICH/echo"},
        {"client": "VN/GOV/000.00.00.H12/LGSP", "service": "VN/GOV/000.00.00.G12"},
        {"client": "VN//000.00.00.H12", "service": "VN/GOV/000.00.00.G12/HOTICH/echo"},
    ],
)
def test_malformed_xroad_identity_is_refused_at_setup(
    base_url: str, contracts_root: Path, xroad: dict[str, str]
) -> None:
    """An X-Road client or service that is not INSTANCE/CLASS/MEMBER/… stops the client's setup."""
    with pytest.raises(SoapSetupError, match="X-Road"):
        SoapClient(make_config(base_url, xroad=xroad), contracts_root=contracts_root)


async def test_wsse_username_token_is_sent_and_the_password_never_logged(
    base_url: str,
    contracts_root: Path,
    responder: Responder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """WS-Security carries the username and password; no log line, even DEBUG, holds the latter."""
    caplog.set_level(logging.DEBUG)
    config = make_config(
        base_url, auth={"type": "wsse", "username": "lgsp-h12", "password_env": "ECHO_PASSWORD"}
    )
    async with SoapClient(
        config, contracts_root=contracts_root, environ={"ECHO_PASSWORD": PASSWORD}
    ) as client:
        await client.call({"text": "x"})
        with pytest.raises(PartnerRejected) as caught:
            await client.call({"text": "client-fault:sai mật khẩu"})

    with responder.lock:
        first = responder.seen[0]
    assert first.call is not None
    security = first.call.header(WSSE, "Security")
    assert security is not None
    assert security.findtext(f"{{{WSSE}}}UsernameToken/{{{WSSE}}}Username") == "lgsp-h12"
    assert security.findtext(f"{{{WSSE}}}UsernameToken/{{{WSSE}}}Password") == PASSWORD
    assert any("SOAP call to" in record.getMessage() for record in caplog.records)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in str(caught.value)


async def test_basic_auth_is_sent_as_http_authorization(
    base_url: str, contracts_root: Path, responder: Responder
) -> None:
    """auth type basic sends HTTP basic credentials, not a WS-Security header."""
    config = make_config(
        base_url, auth={"type": "basic", "username": "lgsp", "password_env": "ECHO_PASSWORD"}
    )
    async with SoapClient(
        config, contracts_root=contracts_root, environ={"ECHO_PASSWORD": PASSWORD}
    ) as client:
        await client.call({"text": "x"})
    seen = only(responder)
    expected = base64.b64encode(f"lgsp:{PASSWORD}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert seen.call is not None and seen.call.header(WSSE, "Security") is None


def test_missing_password_variable_is_refused_at_setup(base_url: str, contracts_root: Path) -> None:
    """A wsse auth whose password variable is unset stops the setup, naming the variable."""
    config = make_config(
        base_url, auth={"type": "wsse", "username": "u", "password_env": "ECHO_NO_SUCH_VAR"}
    )
    with pytest.raises(SoapSetupError, match="ECHO_NO_SUCH_VAR"):
        SoapClient(config, contracts_root=contracts_root, environ={})


def test_session_auth_is_not_a_soap_scheme(base_url: str, contracts_root: Path) -> None:
    """A session login (the DVCQG style) is refused for a SOAP partner."""
    config = make_config(
        base_url,
        auth={"type": "session", "login_path": "/login", "username": "u", "password_env": "P"},
    )
    with pytest.raises(SoapSetupError, match="session"):
        SoapClient(config, contracts_root=contracts_root, environ={"P": "x"})


# --- faults and transport errors -------------------------------------------------------------


async def test_client_fault_is_rejected(client: SoapClient) -> None:
    """A soap:Client (1.1) or Sender (1.2) fault is PartnerRejected with the fault code and text."""
    with pytest.raises(PartnerRejected) as caught:
        await client.call({"text": "client-fault:mã đơn vị sai"}, issue=DOSSIER)
    expected = "SOAP_Client" if client.version == "1.1" else "SOAP_Sender"
    assert caught.value.fault_code == expected
    assert caught.value.error_class == "permanent"
    assert "mã đơn vị sai" in str(caught.value)
    assert DOSSIER in str(caught.value)
    assert isinstance(caught.value.__cause__, Fault)


async def test_server_fault_is_unavailable(client: SoapClient) -> None:
    """A soap:Server (1.1) or Receiver (1.2) fault is PartnerUnavailable with its code and text."""
    with pytest.raises(PartnerUnavailable) as caught:
        await client.call({"text": "server-fault:cơ sở dữ liệu bận"})
    expected = "SOAP_Server" if client.version == "1.1" else "SOAP_Receiver"
    assert caught.value.fault_code == expected
    assert caught.value.error_class == "transient"
    assert "cơ sở dữ liệu bận" in str(caught.value)
    assert isinstance(caught.value.__cause__, Fault)


@pytest.mark.parametrize(
    ("code", "expected", "fault_code"),
    [
        ("soapenv:Client.Authentication", PartnerRejected, "SOAP_Client.Authentication"),
        ("s:VersionMismatch", PartnerRejected, "SOAP_VersionMismatch"),
        ("MustUnderstand", PartnerRejected, "SOAP_MustUnderstand"),
        ("soap:Server.Database", PartnerUnavailable, "SOAP_Server.Database"),
        ("", PartnerUnavailable, "SOAP_FAULT"),
    ],
)
async def test_fault_codes_are_classified_by_their_local_name(
    base_url: str,
    contracts_root: Path,
    code: str,
    expected: type[Exception],
    fault_code: str,
) -> None:
    """Faults are classified by the local name of their code; a fault without one is transient."""
    async with SoapClient(make_config(base_url), contracts_root=contracts_root) as client:
        with pytest.raises(expected) as caught:
            await client.call({"text": f"fault11:{code}"})
    assert getattr(caught.value, "fault_code", None) == fault_code


async def test_soap12_subcodes_enter_the_fault_code(base_url: str, contracts_root: Path) -> None:
    """A SOAP 1.2 Sender fault with a subcode is rejected as SOAP_Sender/<subcode>."""
    config = make_config(
        base_url, soap={"wsdl": "echo/echo.wsdl", "operation": "echo", "port": "EchoSoap12"}
    )
    async with SoapClient(config, contracts_root=contracts_root) as client:
        with pytest.raises(PartnerRejected) as caught:
            await client.call({"text": "fault12-subcode"})
    assert caught.value.fault_code == "SOAP_Sender/HoSoKhongHopLe"
    assert "hồ sơ không hợp lệ" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected", "fault_code"),
    [
        ("status:404", PartnerRejected, "HTTP_404"),
        ("status:401", PartnerRejected, "HTTP_401"),
        ("status:413", PartnerRejected, "HTTP_413"),
        ("status:408", PartnerUnavailable, "HTTP_408"),
        ("status:429", PartnerUnavailable, "HTTP_429"),
        ("status:502", PartnerUnavailable, "HTTP_502"),
        ("status-empty:503", PartnerUnavailable, "HTTP_503"),
        ("status-fault:503", PartnerUnavailable, "HTTP_503"),
        ("status-fault:403", PartnerRejected, "HTTP_403"),
        ("status:400", PartnerRejected, "HTTP_400"),
        ("status:500", PartnerUnavailable, "HTTP_500"),
        ("redirect", PartnerUnavailable, "HTTP_302"),
    ],
)
async def test_http_statuses_are_classified(
    client: SoapClient, text: str, expected: type[Exception], fault_code: str
) -> None:
    """4xx is PartnerRejected except 408/429; 5xx and 3xx are PartnerUnavailable; body or not."""
    with pytest.raises(expected) as caught:
        await client.call({"text": text})
    assert getattr(caught.value, "fault_code", None) == fault_code
    assert isinstance(caught.value.__cause__, TransportError)


async def test_partner_text_passes_through_redact(base_url: str, contracts_root: Path) -> None:
    """The redact function rewrites a fault string before it enters the error message."""
    async with SoapClient(
        make_config(base_url),
        contracts_root=contracts_root,
        redact=lambda text: text.replace("001192054321", "*********321"),
    ) as client:
        with pytest.raises(PartnerRejected) as caught:
            await client.call({"text": "client-fault:CCCD 001192054321 không khớp"})
    assert "001192054321" not in str(caught.value)
    assert "*********321" in str(caught.value)


async def test_hang_times_out_as_unavailable(base_url: str, contracts_root: Path) -> None:
    """A partner that never answers is PartnerUnavailable PARTNER_TIMEOUT after timeout_seconds."""
    config = make_config(base_url, timeout_seconds=0.3)
    started = time.monotonic()
    async with SoapClient(config, contracts_root=contracts_root) as client:
        with pytest.raises(PartnerUnavailable) as caught:
            await client.call({"text": "hang"})
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_more_calls_than_connections_wait_their_turn(
    base_url: str, contracts_root: Path
) -> None:
    """Calls beyond ``concurrency`` wait for a free connection, and every one is answered."""
    config = make_config(base_url, concurrency=2)
    async with SoapClient(config, contracts_root=contracts_root) as client:
        replies = await asyncio.gather(*(client.call({"text": f"n{n}"}) for n in range(7)))
    assert [reply.body["text"] for reply in replies] == [f"n{n}" for n in range(7)]


async def test_connection_refused_is_unavailable(contracts_root: Path) -> None:
    """A partner that refuses the connection is PartnerUnavailable PARTNER_UNREACHABLE."""
    with serve_app(create_responder(Responder())) as url:
        pass  # the port is free again once the server has stopped
    async with SoapClient(make_config(url), contracts_root=contracts_root) as client:
        with pytest.raises(PartnerUnavailable) as caught:
            await client.call({"text": "x"})
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# --- malformed and hostile replies ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "html",
        "unexpected",
        "empty-body",
        "other-version",
        "deep",
        *(f"hostile:{name}" for name in sorted(HOSTILE_XML)),
    ],
)
async def test_unreadable_replies_are_malformed(client: SoapClient, text: str) -> None:
    """A reply that is not XML, no envelope, not the operation's, or hostile is MALFORMED_REPLY."""
    with pytest.raises(PartnerUnavailable) as caught:
        await client.call({"text": text})
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert caught.value.__cause__ is not None
    assert "root:" not in str(caught.value)  # no local file was read into the answer


async def test_oversized_reply_is_malformed(base_url: str, contracts_root: Path) -> None:
    """A reply larger than max_reply_bytes is refused before zeep parses it."""
    async with SoapClient(
        make_config(base_url), contracts_root=contracts_root, max_reply_bytes=2_000
    ) as client:
        assert (await client.call({"text": "small"})).body["text"] == "small"
        with pytest.raises(PartnerUnavailable) as caught:
            await client.call({"text": "big"})
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert isinstance(caught.value.__cause__, UnsafeXml)


# --- the request side -----------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [{}, {"text": "x", "colour": "blue"}])
async def test_arguments_that_do_not_fit_are_a_mapping_error_and_nothing_is_sent(
    client: SoapClient, responder: Responder, arguments: dict[str, Any]
) -> None:
    """A missing or unknown element is MappingError SOAP_REQUEST_INVALID before any request."""
    with pytest.raises(MappingError) as caught:
        await client.call(arguments)
    assert caught.value.fault_code == "SOAP_REQUEST_INVALID"
    assert caught.value.error_class == "permanent"
    with responder.lock:
        assert responder.seen == []


async def test_unknown_operation_is_refused(client: SoapClient, responder: Responder) -> None:
    """Calling an operation the port does not have raises SoapSetupError and sends nothing."""
    with pytest.raises(SoapSetupError, match="no operation"):
        await client.call({"text": "x"}, operation="nope")
    with responder.lock:
        assert responder.seen == []


def test_without_an_exchange_a_type_error_is_a_bug() -> None:
    """Outside a kit call, a plain TypeError is not mistaken for a partner's answer."""
    with pytest.raises(TypeError), translate_soap_errors("test"):
        raise TypeError("a bug")


def test_after_the_answer_a_validation_error_is_malformed() -> None:
    """With an exchange that was answered, a zeep ValidationError is MALFORMED_REPLY."""
    now = datetime.now(UTC)
    exchange = SoapExchange(sent_at=now, answered_at=now)
    with (
        pytest.raises(PartnerUnavailable) as caught,
        translate_soap_errors("test", exchange=exchange),
    ):
        raise ValidationError("Missing element text")
    assert caught.value.fault_code == "MALFORMED_REPLY"


# --- setup: the WSDL is a local, safe contract -------------------------------------------------


def test_settings_are_hardened() -> None:
    """The zeep settings are strict and forbid DTDs, entities, external fetches and huge trees."""
    settings = hardened_settings()
    assert settings.strict and settings.forbid_dtd and settings.forbid_entities
    assert settings.forbid_external and not settings.xml_huge_tree


def write_wsdl(root: Path, name: str, text: str) -> str:
    """Put a WSDL into the contracts folder; return its relative path."""
    (root / "bad").mkdir(exist_ok=True)
    (root / "bad" / name).write_text(text, encoding="utf-8")
    return f"bad/{name}"


_IMPORTING_WSDL = ECHO_WSDL.replace(
    '<xs:schema targetNamespace="urn:test:echo" elementFormDefault="qualified">',
    '<xs:schema targetNamespace="urn:test:echo" elementFormDefault="qualified">'
    '<xs:import namespace="urn:test:other" schemaLocation="{location}"/>',
)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "doctype.wsdl",
            '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x "y">]>\n' + ECHO_WSDL.split("\n", 1)[1],
            "DTD",
        ),
        ("remote-import.wsdl", _IMPORTING_WSDL.format(location="http://127.0.0.1:9/x.xsd"), "http"),
        ("file-import.wsdl", _IMPORTING_WSDL.format(location="file:///etc/passwd"), "file"),
        ("escape-import.wsdl", _IMPORTING_WSDL.format(location="../../outside.xsd"), "outside"),
        ("not-xml.wsdl", "this is not a WSDL", "not well-formed"),
    ],
)
def test_hostile_or_broken_wsdl_is_refused(
    base_url: str, contracts_root: Path, name: str, text: str, message: str
) -> None:
    """A WSDL with a DTD, a network or file import, an import outside the folder is refused."""
    wsdl = write_wsdl(contracts_root, name, text)
    config = make_config(base_url, soap={"wsdl": wsdl, "operation": "echo"})
    with pytest.raises(SoapSetupError, match=message) as caught:
        SoapClient(config, contracts_root=contracts_root)
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("soap", "message"),
    [
        ({"wsdl": "../../etc/passwd", "operation": "echo"}, "outside"),
        ({"wsdl": "echo/missing.wsdl", "operation": "echo"}, "no WSDL"),
        ({"wsdl": "echo/echo.wsdl", "operation": "shout"}, "no operation 'shout'"),
        ({"wsdl": "echo/echo.wsdl", "operation": "echo", "port": "Fax"}, "no port 'Fax'"),
        ({"wsdl": "echo/echo.wsdl", "operation": "echo", "service": "Other"}, "no service"),
    ],
)
def test_bad_soap_settings_are_refused(
    base_url: str, contracts_root: Path, soap: dict[str, str], message: str
) -> None:
    """A WSDL outside the folder or missing, or an unknown operation, port or service is refused."""
    with pytest.raises(SoapSetupError, match=message):
        SoapClient(make_config(base_url, soap=soap), contracts_root=contracts_root)


def test_a_soap_client_needs_a_soap_section(base_url: str, contracts_root: Path) -> None:
    """A configuration without [soap] cannot build a SOAP client."""
    config = make_config(base_url).model_copy(update={"soap": None})
    with pytest.raises(SoapSetupError, match=r"\[soap\]"):
        SoapClient(config, contracts_root=contracts_root)


# --- the responder kit (bus.testing) --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
def test_read_soap_request_refuses_hostile_xml(name: str) -> None:
    """Every classic XML attack posted as a SOAP request is refused with SoapRequestError."""
    with pytest.raises(SoapRequestError, match="XML refused"):
        read_soap_request(HOSTILE_XML[name])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<echo/>", "not a SOAP envelope"),
        (f'<s:Envelope xmlns:s="{SOAP11_ENVELOPE}"/>'.encode(), "no Body"),
        (_envelope("1.1", "<a/><b/>"), "2 elements"),
    ],
)
def test_read_soap_request_refuses_what_is_no_soap_call(raw: bytes, message: str) -> None:
    """XML that is no envelope, has no Body or more than one operation is refused."""
    with pytest.raises(SoapRequestError, match=message):
        read_soap_request(raw)


def test_unreadable_request_is_answered_in_the_content_types_version() -> None:
    """An unreadable request with a SOAP 1.2 Content-Type gets its fault in SOAP 1.2."""
    with pytest.raises(SoapRequestError) as caught:
        read_soap_request(b"not xml", "application/soap+xml; charset=utf-8")
    assert caught.value.version == "1.2"


@pytest.mark.parametrize(
    ("version", "sender", "status"),
    [("1.1", True, 500), ("1.1", False, 500), ("1.2", True, 400), ("1.2", False, 500)],
)
def test_soap_fault_status_follows_the_binding(version: str, sender: bool, status: int) -> None:
    """SOAP 1.1 faults travel with HTTP 500; SOAP 1.2 Sender faults with 400, Receiver with 500."""
    body, code = soap_fault(version, sender=sender, reason="x")  # type: ignore[arg-type]
    assert code == status
    assert read_soap_request(body).name == "Fault"
