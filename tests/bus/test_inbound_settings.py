"""The ``[[inbound]]`` tables refuse what could not be told apart or answered, when read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bus.connector import ConnectorConfig
from bus.inbound.answers import Verdict, render
from bus.inbound.settings import InboundMessage, JsonAnswer, SoapAnswer, XmlAnswer
from bus.registry import ConnectorRegistry

BASE: dict[str, Any] = {
    "id": "partner_x",
    "agency": "000.00.00.H12",
    "title": "Partner X",
    "endpoint": "http://127.0.0.1:9",
    "mapping": "residence/1.0",
}
JSON_ANSWER: dict[str, Any] = {"message": "answer", "format": "json", "produces": "status-change"}
SOAP: dict[str, Any] = {
    "message": "change-feed",
    "format": "soap",
    "operation": "capNhatTrangThaiHoSo",
    "wsdl": "civil_status/hotich-inbound.wsdl",
    "produces": "status-change",
}


def config(*inbound: dict[str, Any]) -> ConnectorConfig:
    """A connector config with these inbound tables."""
    return ConnectorConfig.model_validate({**BASE, "inbound": list(inbound)})


def test_the_installed_connectors_declare_their_inbound_messages() -> None:
    """civil_status takes SOAP, residence and judicial records JSON; social insurance nothing."""
    registry = ConnectorRegistry.discover()
    formats = {
        connector: [m.format for m in registry.get(connector).config.inbound]
        for connector in ("civil_status", "residence", "judicial_records", "social_insurance")
    }
    assert formats == {
        "civil_status": ["soap"],
        "residence": ["json"],
        "judicial_records": ["json"],
        "social_insurance": [],
    }


def test_answers_default_to_the_formats_convention() -> None:
    """SOAP messages answer in SOAP, JSON ones DVCQG-style, XML ones with <ketQua>."""
    assert isinstance(InboundMessage.model_validate(SOAP).answer_style, SoapAnswer)
    assert isinstance(InboundMessage.model_validate(JSON_ANSWER).answer_style, JsonAnswer)
    xml = {**JSON_ANSWER, "format": "xml", "operation": "ketQuaCuTru"}
    assert isinstance(InboundMessage.model_validate(xml).answer_style, XmlAnswer)
    assert InboundMessage.model_validate(SOAP).response_element == "capNhatTrangThaiHoSoResponse"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        pytest.param({**SOAP, "wsdl": None}, "needs `wsdl`", id="soap-without-wsdl"),
        pytest.param({**SOAP, "operation": None}, "needs `operation`", id="soap-without-op"),
        pytest.param({**JSON_ANSWER, "wsdl": "x.wsdl"}, "soap messages only", id="json-wsdl"),
        pytest.param({**SOAP, "when": {"a": "b"}}, "`when` tells JSON", id="soap-when"),
        pytest.param(
            {**JSON_ANSWER, "answer": {"style": "soap"}}, "answered in SOAP", id="json-soap-answer"
        ),
        pytest.param({**SOAP, "answer": {"style": "json"}}, "answered in SOAP", id="soap-json"),
        pytest.param(
            {**JSON_ANSWER, "produces": "dossier", "key": ["maHoSo"]}, "`key`", id="dossier-key"
        ),
        pytest.param({**JSON_ANSWER, "format": "csv"}, "format", id="unknown-format"),
        pytest.param({**JSON_ANSWER, "message": "Answer.in"}, "message", id="message-name"),
    ],
)
def test_an_inconsistent_table_is_refused(table: dict[str, Any], problem: str) -> None:
    """Each contradiction is named when the connector.toml is read, not at the first push."""
    with pytest.raises(ValidationError, match=problem):
        config(table)


def test_several_json_messages_need_distinct_selectors() -> None:
    """Two JSON messages without `when`, or with the same one, could not be told apart."""
    with pytest.raises(ValidationError, match="distinct `when`"):
        config(JSON_ANSWER, {**JSON_ANSWER, "message": "other"})
    same = {"when": {"service": "A"}}
    with pytest.raises(ValidationError, match="distinct `when`"):
        config({**JSON_ANSWER, **same}, {**JSON_ANSWER, "message": "other", **same})
    config({**JSON_ANSWER, "when": {"service": "A"}}, {**JSON_ANSWER, "when": {"service": "B"}})


def test_one_connector_serves_one_wsdl_and_each_element_once() -> None:
    """Two WSDLs, or one operation twice, are refused."""
    with pytest.raises(ValidationError, match="share one wsdl"):
        config(SOAP, {**SOAP, "operation": "khac", "wsdl": "civil_status/hotich.wsdl"})
    with pytest.raises(ValidationError, match="same element"):
        config(SOAP, {**SOAP, "message": "other"})


def test_a_different_partner_convention_is_configuration() -> None:
    """Field names and codes of the answer come from the table, not from code."""
    style = JsonAnswer(code_field="maLoi", message_field="moTa", codes={"not_found": "E404"})
    answer = render(style, Verdict("not_found", "no dossier"))
    assert (answer.status, answer.body) == (404, b'{"maLoi":"E404","moTa":"no dossier"}')


def test_soap_faults_follow_the_bindings_http_status() -> None:
    """Unreadable requests are 400 in any version; other faults 500 (1.1) or 400 (1.2)."""
    style = SoapAnswer()
    kwargs: dict[str, Any] = {"namespace": "urn:x", "response_element": "opResponse"}
    invalid = Verdict("invalid", "bad value")
    assert render(style, invalid, soap_version="1.1", **kwargs).status == 500
    assert render(style, invalid, soap_version="1.2", **kwargs).status == 400
    unreadable = Verdict("unreadable", "not XML")
    assert render(style, unreadable, soap_version="1.1", **kwargs).status == 400
    too_large = Verdict("unreadable", "too large", 413)
    assert render(style, too_large, soap_version="1.1", **kwargs).status == 413
    accepted = render(style, Verdict("accepted", "ok"), soap_version="1.2", **kwargs)
    assert accepted.status == 200 and accepted.media_type.startswith("application/soap+xml")
    assert b"<tns:opResponse" in accepted.body and b"<tns:maLoi>0</tns:maLoi>" in accepted.body
