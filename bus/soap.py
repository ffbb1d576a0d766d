"""The generic SOAP kit: call a partner's SOAP operation through zeep, hardened, with bus errors.

A connector whose ``connector.toml`` says ``kind = "soap"`` builds one :class:`SoapClient` from
its configuration and calls the operation once per delivery::

    client = SoapClient(config, redact=mask_personal_numbers)
    reply = await client.call(arguments, issue=dossier.code, message_id=delivery.message_id)
    reply.body              # the answer as plain dicts, lists and scalars
    reply.request_size      # envelope bytes sent; also response_size, sent_at, answered_at
    await client.aclose()

What the kit takes care of:

- **The WSDL is a contract, read locally.** ``[soap] wsdl`` names a file under
  ``contracts/partners/``; it and everything it imports must stay under that folder and are read
  through :func:`bus.xmlsafe.parse_xml` first. Nothing is ever fetched from the network.
- **Hardened parsing.** zeep runs with :func:`hardened_settings`, and every reply is screened by
  :func:`bus.xmlsafe.parse_xml` (no DTD, no entities, size and depth caps) before zeep reads it.
- **The configured endpoint wins.** The WSDL's ``soap:address`` only contributes its path, and
  only when ``endpoint`` has none (``http://host:8101`` + ``/hotich`` from the WSDL).
- **SOAP 1.1 and 1.2**, whichever binding ``[soap] port`` picks (default: the service's first).
- **WS-Security UsernameToken** when ``auth`` is ``wsse`` (the password comes from the
  environment variable ``password_env``), HTTP basic authentication when it is ``basic``.
- **X-Road headers** (``client``, ``service``, ``id``, ``userId``, ``issue``,
  ``protocolVersion``) when ``[xroad]`` is set; ``issue`` is the dossier code.
- **Errors** are translated in one place, :func:`translate_soap_errors`:

  =====================================================  ==================  ====================
  what happened                                          bus error           fault code
  =====================================================  ==================  ====================
  SOAP fault ``Client`` (1.1) / ``Sender`` (1.2)         PartnerRejected     SOAP_<code>
  SOAP fault ``VersionMismatch``, ``MustUnderstand``,    PartnerRejected     SOAP_<code>
  ``DataEncodingUnknown``
  SOAP fault ``Server`` / ``Receiver`` (or no code)      PartnerUnavailable  SOAP_<code>
  HTTP 4xx outside the SOAP binding, but 408 and 429     PartnerRejected     HTTP_<status>
  HTTP 5xx, 408, 429, 3xx                                PartnerUnavailable  HTTP_<status>
  no answer within ``timeout_seconds``                   PartnerUnavailable  PARTNER_TIMEOUT
  connection refused, reset, or broken                   PartnerUnavailable  PARTNER_UNREACHABLE
  a reply that is unsafe, not XML, not the operation's   PartnerUnavailable  MALFORMED_REPLY
  arguments that do not fit the operation (none sent)    MappingError        SOAP_REQUEST_INVALID
  =====================================================  ==================  ====================

  A SOAP fault is answered with HTTP 500 (or 400 for a SOAP 1.2 ``Sender``); any other status is
  a transport error whatever its body, so a gateway's 503 page is ``HTTP_503``.

Passwords never reach a log: the kit logs sizes and statuses, never envelopes.
"""

# zeep ships py.typed but annotates none of its functions: every call into it is "untyped".
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import zeep
import zeep.helpers
from lxml import etree
from zeep.exceptions import (
    Error as ZeepError,
)
from zeep.exceptions import (
    ExternalReferenceForbidden,
    Fault,
    TransportError,
    ValidationError,
)
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.utils import get_version
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding
from zeep.wsdl.utils import etree_to_string
from zeep.wsse.username import UsernameToken

import contracts
from bus.connector import (
    BasicAuth,
    ConnectorConfig,
    NoAuth,
    SoapSettings,
    WsseAuth,
    XRoadIdentity,
)
from bus.errors import BusError, MappingError, PartnerRejected, PartnerUnavailable
from bus.partner_clients import PartnerClients
from bus.security.agency_keys import AgencyKeyError
from bus.security.outbound import partner_hooks, signed_partner_calls
from bus.xmlsafe import DEFAULT_MAX_BYTES, UnsafeXml, parse_xml
from contracts import VN_TZ

__all__ = [
    "MAX_WSDL_BYTES",
    "PARTNER_CONTRACTS",
    "XROAD_IDENTIFIERS_NAMESPACE",
    "XROAD_NAMESPACE",
    "SoapClient",
    "SoapExchange",
    "SoapReply",
    "SoapSetupError",
    "SoapVersion",
    "hardened_settings",
    "translate_soap_errors",
    "xroad_headers",
]

PARTNER_CONTRACTS: Final = Path(contracts.__file__).resolve().parent / "partners"
"""Where partner WSDL and XSD files live; ``[soap] wsdl`` is a path under this folder."""

MAX_WSDL_BYTES: Final = 10_000_000
"""A WSDL or XSD document larger than this is refused."""

XROAD_NAMESPACE: Final = "http://x-road.eu/xsd/xroad.xsd"
"""Namespace of the X-Road message headers (``client``, ``service``, ``id``, ...)."""

XROAD_IDENTIFIERS_NAMESPACE: Final = "http://x-road.eu/xsd/identifiers"
"""Namespace of the parts of an X-Road identifier (``xRoadInstance``, ``memberClass``, ...)."""

SoapVersion = Literal["1.1", "1.2"]

_log = logging.getLogger(__name__)

# The statuses a SOAP answer travels with: 200 (and 202 for one-way operations), 500 for a fault,
# 400 for a SOAP 1.2 Sender fault. Anything else comes from HTTP, not from the SOAP service.
_SOAP_STATUSES: Final = frozenset({200, 202, 400, 500})
# 408 and 429 say "not now", not "never": retried like a 5xx.
_RETRYABLE_4XX: Final = frozenset({408, 429})
# Fault codes that mean the request itself is wrong: sending it again cannot help.
_PERMANENT_FAULTS: Final = frozenset(
    {"client", "sender", "versionmismatch", "mustunderstand", "dataencodingunknown"}
)
_MAX_PARTNER_TEXT: Final = 500
#: The headers zeep gives its transport's client.
_ZEEP_HEADERS: Final = {"User-Agent": f"Zeep/{get_version()} (www.python-zeep.org)"}
_FAULT_CODE_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:/-]")
_XROAD_PARTS: Final = ("xRoadInstance", "memberClass", "memberCode")

_EXCHANGE: contextvars.ContextVar[SoapExchange] = contextvars.ContextVar("soap_exchange")


class SoapSetupError(ValueError):
    """Raised when a SOAP client cannot be built: no ``[soap]`` section, a WSDL that is missing,
    outside ``contracts/partners/``, unsafe or unreadable, an unknown service, port or operation,
    an unsupported ``auth`` type, a missing password variable, or a malformed X-Road identity."""


@dataclass(slots=True)
class SoapExchange:
    """One SOAP call as it happens, filled in by the kit's transport: what was sent, when."""

    sent_at: datetime | None = None
    answered_at: datetime | None = None
    request_size: int = 0
    response_size: int = 0
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class SoapReply:
    """What a partner answered to one SOAP call."""

    #: The operation's result as plain dicts, lists and scalars (``zeep.helpers.serialize_object``).
    body: Any
    sent_at: datetime
    answered_at: datetime
    request_size: int
    response_size: int
    status_code: int


def hardened_settings() -> zeep.Settings:
    """zeep settings for untrusted partners: strict parsing, no DTD, no entities, no network."""
    return zeep.Settings(
        strict=True,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
        xml_huge_tree=False,
    )


class SoapClient:
    """One partner's SOAP service as a :class:`~bus.connector.ConnectorConfig` describes it.

    ``transport`` replaces the HTTP transport (tests); ``redact`` rewrites partner text before it
    enters an error message (e.g. to mask identity numbers a fault string echoes); ``environ``
    replaces ``os.environ`` when reading passwords. Raises :class:`SoapSetupError` when the
    configuration or the WSDL cannot be used. Safe to share between concurrent calls.
    """

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        contracts_root: Path = PARTNER_CONTRACTS,
        redact: Callable[[str], str] | None = None,
        environ: Mapping[str, str] | None = None,
        max_reply_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if config.soap is None:
            raise SoapSetupError(f"connector {config.id}: kind 'soap' needs a [soap] section")
        self.config = config
        self.settings: SoapSettings = config.soap
        self._redact = redact
        root = contracts_root.resolve()
        wsdl = _wsdl_path(root, self.settings.wsdl)
        env = os.environ if environ is None else environ
        wsse, basic = _credentials(config, env)
        try:
            signing = signed_partner_calls(config, env)
        except AgencyKeyError as exc:
            raise SoapSetupError(str(exc)) from exc
        if config.xroad is not None:
            xroad_headers(config.xroad, message_id="check", issue=None)  # refuse bad ids now
        # ``concurrency`` one-connection clients lent out a call at a time (bus.partner_clients
        # says why), made with zeep's own headers.
        clients = PartnerClients.one_connection(
            config.concurrency, timeout_seconds=config.timeout_seconds, name=config.id,
            transport=transport, auth=basic, event_hooks=partner_hooks(signing),
            headers=_ZEEP_HEADERS,
        )  # fmt: skip
        self._transport = _HardenedTransport(clients, root=root, max_reply_bytes=max_reply_bytes)
        try:
            self._zeep = zeep.AsyncClient(
                str(wsdl), wsse=wsse, transport=self._transport, settings=hardened_settings()
            )
            self._service, self._operations, self.address, self.version = self._bind()
        except SoapSetupError:
            raise
        except (ZeepError, UnsafeXml, etree.LxmlError, OSError, ValueError, KeyError) as exc:
            raise SoapSetupError(
                f"connector {config.id}: cannot use WSDL {self.settings.wsdl}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @property
    def operation(self) -> str:
        """The operation :meth:`call` invokes unless told otherwise (``[soap] operation``)."""
        return self.settings.operation

    async def call(
        self,
        arguments: Mapping[str, Any],
        *,
        operation: str | None = None,
        issue: str | None = None,
        message_id: str | None = None,
    ) -> SoapReply:
        """Call ``operation`` (default: the configured one) with the body's child elements.

        ``issue`` (the dossier code) and ``message_id`` travel in the X-Road headers when the
        configuration has ``[xroad]``; a message id stable across redeliveries lets the partner
        recognise a repeated call. Raises the bus errors listed in the module's table.
        """
        name = operation or self.settings.operation
        if name not in self._operations:
            raise SoapSetupError(
                f"connector {self.config.id}: no operation {name!r} in {self.settings.wsdl}"
            )
        headers = (
            xroad_headers(self.config.xroad, message_id=message_id, issue=issue)
            if self.config.xroad is not None
            else None
        )
        where = f"{self.config.id} {name}" + (f", dossier {issue}" if issue else "")
        exchange = SoapExchange()
        token = _EXCHANGE.set(exchange)
        try:
            with translate_soap_errors(where, exchange=exchange, redact=self._redact):
                result = await self._service[name](**arguments, _soapheaders=headers)
                body = zeep.helpers.serialize_object(result, target_cls=dict)
        finally:
            _EXCHANGE.reset(token)
        if exchange.sent_at is None or exchange.answered_at is None:
            raise RuntimeError("the SOAP transport did not record the exchange")  # a kit bug
        return SoapReply(
            body=body,
            sent_at=exchange.sent_at,
            answered_at=exchange.answered_at,
            request_size=exchange.request_size,
            response_size=exchange.response_size,
            status_code=exchange.status_code or 0,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._transport.aclose()
        self._transport.wsdl_client.close()

    async def __aenter__(self) -> SoapClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _bind(self) -> tuple[AsyncServiceProxy, frozenset[str], str, SoapVersion]:
        """The proxy for ``[soap] service``/``port``, pointed at the configured endpoint."""
        services = self._zeep.wsdl.services
        if not services:
            raise SoapSetupError(f"{self.settings.wsdl} defines no service")
        name = self.settings.service or next(iter(services))
        if name not in services:
            raise SoapSetupError(
                f"{self.settings.wsdl} has no service {name!r}; it has {', '.join(services)}"
            )
        ports = services[name].ports
        port_name = self.settings.port or next(iter(ports))
        if port_name not in ports:
            raise SoapSetupError(
                f"service {name} has no port {port_name!r}; it has {', '.join(ports)}"
            )
        port = ports[port_name]
        binding = port.binding
        version: SoapVersion
        if isinstance(binding, Soap12Binding):
            version = "1.2"
        elif isinstance(binding, Soap11Binding):
            version = "1.1"
        else:
            raise SoapSetupError(f"port {port_name} is not bound to SOAP (HTTP GET/POST binding)")
        operations = frozenset(binding.all())
        if self.settings.operation not in operations:
            raise SoapSetupError(
                f"port {port_name} has no operation {self.settings.operation!r}; "
                f"it has {', '.join(sorted(operations))}"
            )
        address = _endpoint_address(str(self.config.endpoint), port.binding_options.get("address"))
        options = {**port.binding_options, "address": address}
        proxy = AsyncServiceProxy(self._zeep, binding, **options)
        return proxy, operations, address, version


@contextlib.contextmanager
def translate_soap_errors(
    where: str,
    *,
    exchange: SoapExchange | None = None,
    redact: Callable[[str], str] | None = None,
) -> Iterator[None]:
    """The one place where zeep, httpx and XML errors of a SOAP call become bus errors.

    ``where`` starts every message (e.g. ``"civil_status dangKyHoTich, dossier …"``). With the
    call's ``exchange``, an argument zeep refuses before anything was sent is a
    :class:`MappingError`, and any failure while reading what the partner answered is
    ``MALFORMED_REPLY``; without it, only zeep's and lxml's own errors are. ``redact`` rewrites
    the partner's text (fault strings, error pages) before it enters a message.
    """
    clean = _partner_text(redact)
    try:
        yield
    except Fault as exc:
        raise _fault_error(where, exc, clean) from exc
    except TransportError as exc:
        raise _status_error(where, exc, clean) from exc
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(
            f"{where}: no answer in time ({type(exc).__name__})", fault_code="PARTNER_TIMEOUT"
        ) from exc
    except httpx.TransportError as exc:
        # Refused, reset, broken mid-answer, or a proxy failure: this attempt, not the dossier.
        raise PartnerUnavailable(
            f"{where}: connection failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except (ValidationError, TypeError) as exc:
        if exchange is not None and exchange.sent_at is None:
            # zeep checks the arguments against the WSDL while building the envelope.
            raise MappingError(
                f"{where}: the arguments do not fit the operation: {exc}",
                fault_code="SOAP_REQUEST_INVALID",
            ) from exc
        if exchange is None and isinstance(exc, TypeError):
            raise
        raise _malformed(where, exc, clean) from exc
    except (ZeepError, UnsafeXml, etree.LxmlError) as exc:
        raise _malformed(where, exc, clean) from exc
    except (IndexError, KeyError, AttributeError, ValueError) as exc:
        # zeep stumbles with plain Python errors on some replies (an empty soap:Body is an
        # IndexError); once an answer has arrived, such a stumble is about the answer.
        if exchange is None or exchange.answered_at is None:
            raise
        raise _malformed(where, exc, clean) from exc


def xroad_headers(
    identity: XRoadIdentity, *, message_id: str | None, issue: str | None
) -> list[etree._Element]:
    """The X-Road SOAP headers of one call, as elements zeep accepts in ``_soapheaders``.

    ``client`` and ``service`` are written ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`` and
    ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]/SERVICE[/VERSION]`` (e.g.
    ``VN/GOV/000.00.00.G12/HOTICH/dangKyHoTich``); ``id`` is ``message_id`` (a fresh UUID when
    None), ``issue`` the dossier code. Raises :class:`SoapSetupError` on a malformed identifier.
    """
    headers = [
        _xroad_identifier("client", identity.client),
        _xroad_identifier("service", identity.service),
        _xroad_element("id", message_id or uuid.uuid4().hex),
    ]
    if identity.user_id:
        headers.append(_xroad_element("userId", identity.user_id))
    if issue:
        headers.append(_xroad_element("issue", issue))
    headers.append(_xroad_element("protocolVersion", identity.protocol_version))
    return headers


# --- internals -------------------------------------------------------------------------------


class _NoNetwork(httpx.BaseTransport):
    """The transport of zeep's document loader: the kit reads WSDLs from files, never the net."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"network access refused: {request.url}", request=request)


class _HardenedTransport(AsyncTransport):
    """zeep's async transport, confined: local WSDLs only, replies screened, bodies never logged."""

    def __init__(self, clients: PartnerClients, *, root: Path, max_reply_bytes: int) -> None:
        # zeep sets its User-Agent on the client it is given; the pool's clients, replacements
        # included, are made with the same (_ZEEP_HEADERS).
        super().__init__(client=clients.first, wsdl_client=httpx.Client(transport=_NoNetwork()))
        self._clients = clients
        self._root = root
        self._max_reply_bytes = max_reply_bytes

    async def aclose(self) -> None:
        await self._clients.aclose()

    def load(self, url: str) -> bytes:
        """A WSDL or XSD document: a file under the contracts folder, read through xmlsafe."""
        if urlsplit(url).scheme:
            raise ExternalReferenceForbidden(url)
        path = Path(url).resolve()
        if self._root not in path.parents:
            raise ExternalReferenceForbidden(url)
        content = path.read_bytes()
        parse_xml(content, max_bytes=MAX_WSDL_BYTES)  # refuses DTDs, entities, XInclude
        return content

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        # Not zeep's post: it logs whole envelopes, WS-Security password included.
        exchange = _EXCHANGE.get(None)
        if exchange is not None:
            exchange.request_size = len(message)
            exchange.sent_at = datetime.now(VN_TZ)
        async with self._clients.lend() as client:
            response = await client.post(address, content=message, headers=headers)
        if exchange is not None:
            exchange.answered_at = datetime.now(VN_TZ)
            exchange.status_code = response.status_code
            exchange.response_size = len(response.content)
        _log.debug(
            "SOAP call to %s: %d bytes sent, HTTP %d, %d bytes answered",
            address,
            len(message),
            response.status_code,
            len(response.content),
        )
        return response

    async def post_xml(
        self, address: str, envelope: etree._Element, headers: dict[str, str]
    ) -> Any:
        response = await self.post(address, etree_to_string(envelope), headers)
        self._screen(response)
        return self.new_response(response)

    def _screen(self, response: httpx.Response) -> None:
        """Refuse what no SOAP answer looks like before zeep's parser sees it."""
        status, content = response.status_code, response.content
        if status not in _SOAP_STATUSES:
            raise TransportError(
                f"HTTP {status} is not a SOAP answer", status_code=status, content=content
            )
        if not content:
            return  # zeep itself treats an empty 202 as a one-way answer, anything else as an error
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type == "multipart/related":
            raise UnsafeXml("multipart (MTOM/SwA) answers are not accepted")
        try:
            parse_xml(content, max_bytes=self._max_reply_bytes)
        except UnsafeXml as exc:
            if status in (200, 202):
                raise
            # An error page where a fault was due: the status says more than the body.
            raise TransportError(
                f"HTTP {status} with a body that is not a SOAP envelope: {exc}",
                status_code=status,
                content=content,
            ) from exc


def _credentials(
    config: ConnectorConfig, environ: Mapping[str, str]
) -> tuple[UsernameToken | None, httpx.BasicAuth | None]:
    """The WS-Security token or HTTP basic credentials ``auth`` asks for."""
    auth = config.auth
    if isinstance(auth, NoAuth):
        return None, None
    if isinstance(auth, WsseAuth | BasicAuth):
        password = environ.get(auth.password_env)
        if not password:
            raise SoapSetupError(
                f"connector {config.id}: environment variable {auth.password_env} "
                f"(the {auth.type} password) is not set"
            )
        if isinstance(auth, WsseAuth):
            return UsernameToken(auth.username, password), None
        return None, httpx.BasicAuth(auth.username, password)
    raise SoapSetupError(
        f"connector {config.id}: auth type {auth.type!r} is not available for SOAP "
        "(use wsse, basic or none)"
    )


def _wsdl_path(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root not in path.parents:
        raise SoapSetupError(f"WSDL {relative!r} is outside {root}")
    if not path.is_file():
        raise SoapSetupError(f"no WSDL at {path}")
    return path


def _endpoint_address(endpoint: str, wsdl_address: str | None) -> str:
    """The configured endpoint, with the WSDL address's path when the endpoint has none."""
    parts = urlsplit(endpoint)
    if parts.path not in ("", "/") or not wsdl_address:
        return endpoint
    wsdl_parts = urlsplit(wsdl_address)
    return urlunsplit(parts._replace(path=wsdl_parts.path, query=wsdl_parts.query))


def _partner_text(redact: Callable[[str], str] | None) -> Callable[[object], str]:
    def clean(value: object) -> str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        text = " ".join(str(value or "").split())
        if len(text) > _MAX_PARTNER_TEXT:
            text = text[:_MAX_PARTNER_TEXT] + "…"
        return redact(text) if redact is not None else text

    return clean


def _fault_error(where: str, fault: Fault, clean: Callable[[object], str]) -> BusError:
    """A SOAP fault, classified by its code: the caller's mistake is permanent, the rest not."""
    code = (fault.code or "").strip()
    local = code.rpartition(":")[2]  # soap:Client.Authentication → Client.Authentication
    subcodes = [str(getattr(sub, "localname", sub)) for sub in fault.subcodes or ()]
    fault_code = "SOAP_" + "/".join([local or "FAULT", *subcodes])
    fault_code = _FAULT_CODE_UNSAFE.sub("_", fault_code)[:64]
    message = f"{where}: SOAP fault {code or '(no code)'}: {clean(fault.message)}"
    if local.split(".", 1)[0].lower() in _PERMANENT_FAULTS:
        return PartnerRejected(message, fault_code=fault_code)
    return PartnerUnavailable(message, fault_code=fault_code)


def _status_error(where: str, exc: TransportError, clean: Callable[[object], str]) -> BusError:
    """An HTTP status outside the SOAP binding, or an unreadable answer zeep gave up on."""
    status = int(exc.status_code or 0)
    if 200 <= status < 300:  # zeep's own name for a reply with a success status it cannot parse
        return _malformed(where, exc, clean)
    detail = clean(exc.content) if exc.content else clean(exc.message)
    message = f"{where}: HTTP {status}: {detail}"
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return PartnerRejected(message, fault_code=f"HTTP_{status}")
    return PartnerUnavailable(message, fault_code=f"HTTP_{status}")


def _malformed(where: str, exc: Exception, clean: Callable[[object], str]) -> BusError:
    """An answer that is not the operation's: the partner's fault, and it may pass."""
    return PartnerUnavailable(
        f"{where}: unreadable answer ({type(exc).__name__}: {clean(exc)})",
        fault_code="MALFORMED_REPLY",
    )


def _xroad_element(name: str, text: str) -> etree._Element:
    element = etree.Element(f"{{{XROAD_NAMESPACE}}}{name}", nsmap={"xrd": XROAD_NAMESPACE})
    element.text = text
    return element


def _xroad_identifier(kind: Literal["client", "service"], written: str) -> etree._Element:
    parts = written.split("/")
    if kind == "client":
        shapes = {3: ("MEMBER", ()), 4: ("SUBSYSTEM", ("subsystemCode",))}
    else:
        shapes = {
            4: ("SERVICE", ("serviceCode",)),
            5: ("SERVICE", ("subsystemCode", "serviceCode")),
            6: ("SERVICE", ("subsystemCode", "serviceCode", "serviceVersion")),
        }
    if len(parts) not in shapes or not all(part.strip() for part in parts):
        raise SoapSetupError(f"X-Road {kind} {written!r} is not INSTANCE/CLASS/MEMBER/…")
    object_type, extra = shapes[len(parts)]
    nsmap = {"xrd": XROAD_NAMESPACE, "id": XROAD_IDENTIFIERS_NAMESPACE}
    element = etree.Element(f"{{{XROAD_NAMESPACE}}}{kind}", nsmap=nsmap)
    element.set(f"{{{XROAD_IDENTIFIERS_NAMESPACE}}}objectType", object_type)
    for name, value in zip((*_XROAD_PARTS, *extra), parts, strict=True):
        etree.SubElement(element, f"{{{XROAD_IDENTIFIERS_NAMESPACE}}}{name}").text = value.strip()
    return element
