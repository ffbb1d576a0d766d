"""The ``[[inbound]]`` tables of a ``connector.toml``: what a partner may push, how it is answered.

One table per message the partner pushes::

    [[inbound]]
    message = "change-feed"              # mappings/<mapping>/change-feed.in.yaml reads it
    format = "soap"                      # json, xml or soap
    operation = "capNhatTrangThaiHoSo"   # SOAP: the Body's element; XML: the root element
    wsdl = "civil_status/hotich-inbound.wsdl"
    produces = "status-change"           # or "dossier": what the mapping's contract is
    key = ["maHoSo", "trangThai", "ngayCapNhat"]

How the partner is answered is configuration too (``[inbound.answer]``): by default a JSON
partner gets the DVCQG convention ``{"error_code": 0, "message": ...}`` with the gateway codes
``302 DATA_TYPE_INVALID``, ``500 DATA_INCORRECT`` and ``201 RECORD_NOT_FOUND``; a SOAP partner
gets the response element of its WSDL, or a SOAP fault carrying the same codes.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "InboundFormat",
    "InboundMessage",
    "InboundMessages",
    "JsonAnswer",
    "PartnerCode",
    "Produces",
    "SoapAnswer",
    "VerdictCodes",
    "XmlAnswer",
]

InboundFormat = Literal["json", "xml", "soap"]
"""How a push travels: a JSON object, an XML document, or a SOAP 1.1/1.2 envelope."""

Produces = Literal["status-change", "dossier"]
"""What a push becomes on the bus: a status change of a known dossier, or a new dossier."""

PartnerCode = int | str
"""A result code as the partner writes it (DVCQG: integers; others use text)."""

_XML_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$"
_MAPPING = r"^[a-z][a-z0-9_]*/[0-9][0-9a-z.\-]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VerdictCodes(_Section):
    """The partner's own code for each verdict the bus gives a push.

    The defaults are the provincial gateways' codes of the domain primer (DVCQG convention).
    """

    accepted: PartnerCode = Field(
        default=0, description="Taken: applied, already applied, or recorded as out of date"
    )
    unreadable: PartnerCode = Field(
        default=302,
        description="DATA_TYPE_INVALID: not the partner's format (media type, syntax, hostile XML)",
    )
    invalid: PartnerCode = Field(
        default=500,
        description="DATA_INCORRECT: readable, but a value breaks the mapping or the contract",
    )
    not_found: PartnerCode = Field(
        default=201, description="RECORD_NOT_FOUND: the dossier is not known to this bus"
    )


class JsonAnswer(_Section):
    """Answer with a JSON object holding the partner's result code and a message."""

    style: Literal["json"] = "json"
    code_field: str = Field(default="error_code", min_length=1, max_length=100)
    message_field: str = Field(default="message", min_length=1, max_length=100)
    codes: VerdictCodes = Field(default_factory=VerdictCodes)


class XmlAnswer(_Section):
    """Answer with a small XML document: ``<root><code/><message/></root>``."""

    style: Literal["xml"] = "xml"
    root: str = Field(default="ketQua", pattern=_XML_NAME)
    code_element: str = Field(default="maLoi", pattern=_XML_NAME)
    message_element: str = Field(default="moTa", pattern=_XML_NAME)
    codes: VerdictCodes = Field(default_factory=VerdictCodes)


class SoapAnswer(_Section):
    """Answer in the SOAP version of the request: the WSDL's response element, or a fault.

    Both carry the partner's result code and a message, in the WSDL's target namespace; a fault
    carries them inside ``<detail><fault_detail>`` (SOAP 1.2: ``Detail``).
    """

    style: Literal["soap"] = "soap"
    code_element: str = Field(default="maLoi", pattern=_XML_NAME)
    message_element: str = Field(default="moTa", pattern=_XML_NAME)
    fault_detail: str = Field(
        default="loi", pattern=_XML_NAME, description="Element wrapping a fault's code and message"
    )
    codes: VerdictCodes = Field(default_factory=VerdictCodes)


Answer = Annotated[JsonAnswer | XmlAnswer | SoapAnswer, Field(discriminator="style")]


class InboundMessage(_Section):
    """One message a partner may push to ``POST /v1/inbound/{connector}``."""

    message: str = Field(
        pattern=r"^[a-z][a-z0-9\-]{0,60}$",
        description="The mapping message that reads it: <mapping>/<message>.in, e.g. change-feed",
    )
    mapping: str | None = Field(
        default=None,
        pattern=_MAPPING,
        description="partner/version of that mapping; default: the connector's own `mapping`",
    )
    format: InboundFormat = Field(description="json, xml, or soap (1.1 and 1.2)")
    produces: Produces = Field(
        description="status-change: moves a known dossier; dossier: ingests a new one"
    )
    operation: str | None = Field(
        default=None,
        pattern=_XML_NAME,
        description="SOAP: the request element in the Body (document/literal, named after its "
        "operation); XML: the document's root element",
    )
    response: str | None = Field(
        default=None,
        pattern=_XML_NAME,
        description="SOAP: the answer element of the WSDL; default: <operation>Response",
    )
    wsdl: str | None = Field(
        default=None,
        description="SOAP: the bus's side of the contract, under contracts/partners/; served "
        "at GET /v1/inbound/{connector}?wsdl with its address rewritten to the bus",
    )
    when: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: top-level fields that tell this message from the connector's other "
        "JSON messages, e.g. {service = 'DongBoHoSoMC'}",
    )
    record: str | None = Field(
        default=None,
        description="JMESPath to the record inside the payload (e.g. data); default: the "
        "payload itself. One record per push: a list must hold exactly one",
    )
    key: tuple[str, ...] = Field(
        default=(),
        description="status-change: JMESPath expressions over the record naming it at the "
        "partner, joined as the dedup key; default: dossier code, status and the partner's time",
    )
    context: dict[str, str] = Field(
        default_factory=dict,
        description="Fixed context values for the mapping (`agency`, the connector's agency, "
        "and `received_at` are always given)",
    )
    context_from: dict[str, str] = Field(
        default_factory=dict,
        description="Context values read from the payload by JMESPath, e.g. "
        "{receiving_agency = 'madonvi'}",
    )
    answer: Answer | None = Field(
        default=None,
        description="How the partner is answered; default: SOAP for soap, DVCQG-style JSON "
        "for json, <ketQua> for xml",
    )

    @model_validator(mode="after")
    def _consistent(self) -> InboundMessage:
        soap = self.format == "soap"
        if self.format != "json" and self.operation is None:
            raise ValueError(f"a {self.format} message needs `operation` (the element it carries)")
        if soap and self.wsdl is None:
            raise ValueError("a soap message needs `wsdl`: the contract its callers are given")
        if not soap and (self.wsdl is not None or self.response is not None):
            raise ValueError("`wsdl` and `response` belong to soap messages only")
        if self.format != "json" and self.when:
            raise ValueError("`when` tells JSON messages apart; xml and soap use `operation`")
        if self.answer is not None and (self.answer.style == "soap") != soap:
            raise ValueError("soap messages are answered in SOAP, and only they are")
        if self.key and self.produces != "status-change":
            raise ValueError("`key` names status changes; a dossier is known by its code")
        return self

    @property
    def answer_style(self) -> JsonAnswer | XmlAnswer | SoapAnswer:
        """The configured answer, or the usual one for the format."""
        if self.answer is not None:
            return self.answer
        if self.format == "soap":
            return SoapAnswer()
        return XmlAnswer() if self.format == "xml" else JsonAnswer()

    @property
    def response_element(self) -> str:
        """SOAP: the answer element's local name."""
        return self.response or f"{self.operation}Response"


def _distinct(messages: tuple[InboundMessage, ...]) -> tuple[InboundMessage, ...]:
    """A push must find exactly one message, and a connector serves one WSDL."""
    wsdls = {m.wsdl for m in messages if m.wsdl is not None}
    if len(wsdls) > 1:
        raise ValueError(f"all soap messages of a connector share one wsdl (got {sorted(wsdls)})")
    elements = Counter((m.format, m.operation) for m in messages if m.format != "json")
    doubled = [f"{fmt} {op}" for (fmt, op), count in elements.items() if count > 1]
    if doubled:
        raise ValueError(f"two inbound messages with the same element: {', '.join(doubled)}")
    json_messages = [m for m in messages if m.format == "json"]
    if len(json_messages) > 1:
        selectors = [tuple(sorted(m.when.items())) for m in json_messages]
        if not all(selectors) or len(set(selectors)) != len(selectors):
            raise ValueError("several json messages need distinct `when` fields to tell them apart")
    return messages


InboundMessages = Annotated[tuple[InboundMessage, ...], AfterValidator(_distinct)]
"""The ``[[inbound]]`` tables of one connector, checked to be told apart."""
