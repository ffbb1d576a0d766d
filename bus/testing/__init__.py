"""Public test kit: what an integrator needs to test a connector without a ministry behind it.

**Serve a partner simulator on a real loopback port** and point the connector at it, so the test
exercises real HTTP (sockets, timeouts, status codes)::

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
when a request is still hanging. :class:`TcpProxy` cuts a TCP link for real (e.g. to RabbitMQ);
:class:`RabbitNodes` runs a RabbitMQ cluster of private nodes on loopback whose nodes a test
stops and starts for real (``scripts/rabbitmq-cluster.sh``).

**Write a simulator** on the simulator kit, so that it has the same failure switches and control
routes as every other: :class:`FaultSwitches` (latency, hang, error rate, malformed answers,
rejection; :class:`DossierFaultSwitches` adds a dossier the partner chokes on,
:class:`SoapFaultSwitches` a ``soap:Client`` fault), a thread-safe memory
(:class:`PartnerState`; :class:`RegisterState` applies each dossier at most once), the sick
partner's answers in its own dialect (:class:`SickAnswers`, :func:`sick_answer`), the
``/_sim/`` routes (:func:`simulator_app`) and a ``main()`` with ``--host``/``--port``
(:func:`run_simulator`). A whole REST partner (``tests/connectors/test_simulator_kit.py`` runs
this very text)::

    from dataclasses import dataclass, field

    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse

    from bus.testing import (
        DossierFaultSwitches, GatewayRefusal, RegisterState, SickAnswers, applied_answer,
        dossier_fault_answer, read_capped_body, read_json_object, required_text, run_simulator,
        sick_answer, simulator_app,
    )

    BUSY = SickAnswers(busy=lambda: JSONResponse({"message": "Hệ thống đang bận"}, 503))

    @dataclass(kw_only=True)
    class LandRegistryState(RegisterState[DossierFaultSwitches, str]):
        faults: DossierFaultSwitches = field(default_factory=DossierFaultSwitches)

    def create_simulator_app(state: LandRegistryState) -> FastAPI:
        app = simulator_app(state, title="Land registry simulator", description="For tests.")

        @app.post("/api/hoSo")
        async def submit(request: Request) -> Response:
            state.record_request(request)
            raw = await read_capped_body(request, 1_000_000)
            if raw is None:
                return JSONResponse({"message": "Dữ liệu quá lớn"}, 413)
            if (sick := await sick_answer(request, state, BUSY)) is not None:
                return sick
            try:
                code = required_text(read_json_object(raw), "maHoSo")
            except GatewayRefusal as refusal:
                return refusal.response()
            if (refused := dossier_fault_answer(state.current_faults(), code)) is not None:
                return refused  # a dossier it chokes on (503), or reject_all
            number, again = state.apply_once(code, lambda: f"TD-{state.next_number(0):06d}")
            return applied_answer({"error_code": 0, "soBienNhan": number}, again)

        return app

    def main(argv: list[str] | None = None) -> None:
        run_simulator(lambda args: create_simulator_app(LandRegistryState(seed=args.seed)),
                      port=8110, doc=__doc__, argv=argv)

A test then flips a switch over HTTP (``POST /_sim/faults {"error_rate": 1}``) or in process
(``state.set_faults(...)``) and checks how the connector classifies what it met, and reads
``state.stats()`` to prove nothing was applied twice; :func:`delivery_of` wraps a dossier in
the delivery a worker would hand to ``connector.deliver()``. ``bus connector new`` writes such a
simulator for a new connector.

**A gateway with sessions** (log in with ``{username, password}`` and a ``dstcode`` header,
then ``session`` in every call's body): :class:`SessionState` keeps the account and the
sessions (``stats()`` adds ``logins`` and ``expired``), :class:`SessionFaultSwitches` end them
after ``session_max_calls`` calls or ``session_ttl_seconds``, :func:`add_session_login` serves
the login and ``POST /_sim/expire-sessions``, :func:`session_checked` refuses a call whose
session is bad, and :func:`run_session_simulator` is ``run_simulator`` with ``--username`` and
``--dstcode`` and the password from the environment. :func:`read_gateway_payload` reads a
gateway call's JSON object, answering an oversized, sick (:data:`GATEWAY_SICK`) or unreadable
one. A partner with a
fixed API token keeps it in a :class:`TokenState` (which counts the calls refused for it) or
checks it with :func:`bearer_ok`; ``main()`` reads a secret with
:func:`demo_secret` (the variable the connector reads, else the demo value ``bus run`` hands
the workers).

**SOAP partners**: :func:`add_soap_service` serves a WSDL's operations (``POST``) and the WSDL
itself (``GET ?wsdl``); :func:`read_soap_request` reads a SOAP 1.1 or 1.2 request with the
hardened parser, :func:`soap_answer` and :func:`soap_fault` build the answer in the request's
version (a fault with the HTTP status its binding prescribes). ``HOSTILE_XML`` holds the
classic XML attacks, to check that a simulator (or any code that reads partner XML) refuses
them: every one must be rejected by :func:`bus.xmlsafe.parse_xml`. ``HOSTILE_TEXT`` holds
injection strings (SQL, script, template, header splitting) that must stay inert text.

**Partners that sign**: :class:`PartnerSignatures` wraps a simulator's app so that it accepts
only calls signed (RFC 9421) by the agency keys it trusts, fresh and never replayed, and signs
its answers with ``Request-Hash``; its ``forgery`` (:data:`Forgery`) makes it answer unsigned,
with a wrong key or for another request.
"""

from __future__ import annotations

from bus.testing.answers import (
    BROKEN_PAGE,
    SickAnswers,
    broken_page,
    gateway_timeout,
    read_capped_body,
    sick_answer,
    suffer_delays,
)
from bus.testing.app import ACCESS_LOG_LEVELS, admin_router, run_simulator, simulator_app
from bus.testing.certificates import self_signed_certificate
from bus.testing.cluster import CLUSTER_SCRIPT, ClusterError, RabbitNodes, rabbitmq_available
from bus.testing.credentials import TokenState, bearer_ok, demo_secret, same_secret
from bus.testing.deliveries import delivery_of
from bus.testing.gateway import (
    GATEWAY_SICK,
    GatewayCode,
    GatewayRefusal,
    PayloadReader,
    answer_dossier_act,
    applied_answer,
    dossier_fault_answer,
    gateway_error,
    optional_text,
    read_gateway_payload,
    read_json_object,
    required_text,
)
from bus.testing.hostile import HOSTILE_TEXT, HOSTILE_XML
from bus.testing.proxy import TcpProxy
from bus.testing.serving import ServerStartError, aserve_app, serve_app
from bus.testing.sessions import (
    SessionAccount,
    SessionFaultSwitches,
    SessionState,
    add_session_login,
    run_session_simulator,
    session_checked,
)
from bus.testing.signatures import Forgery, PartnerSignatures
from bus.testing.soap import (
    SOAP11_ENVELOPE,
    SOAP12_ENVELOPE,
    SoapRequest,
    SoapRequestError,
    SoapVersion,
    read_soap_request,
    soap_answer,
    soap_fault,
    soap_media_type,
)
from bus.testing.soap_service import (
    SoapOperation,
    SoapService,
    add_soap_service,
    soap_answer_response,
    soap_element,
    soap_fault_response,
    wsdl_with_address,
)
from bus.testing.state import (
    MAX_RECORDED_REQUESTS,
    PartnerState,
    RecordedRequest,
    RegisterState,
    vn_now,
)
from bus.testing.switches import DossierFaultSwitches, FaultSwitches, SoapFaultSwitches

__all__ = [
    "ACCESS_LOG_LEVELS",
    "BROKEN_PAGE",
    "CLUSTER_SCRIPT",
    "GATEWAY_SICK",
    "HOSTILE_TEXT",
    "HOSTILE_XML",
    "MAX_RECORDED_REQUESTS",
    "SOAP11_ENVELOPE",
    "SOAP12_ENVELOPE",
    "ClusterError",
    "DossierFaultSwitches",
    "FaultSwitches",
    "Forgery",
    "GatewayCode",
    "GatewayRefusal",
    "PartnerSignatures",
    "PartnerState",
    "PayloadReader",
    "RabbitNodes",
    "RecordedRequest",
    "RegisterState",
    "ServerStartError",
    "SessionAccount",
    "SessionFaultSwitches",
    "SessionState",
    "SickAnswers",
    "SoapFaultSwitches",
    "SoapOperation",
    "SoapRequest",
    "SoapRequestError",
    "SoapService",
    "SoapVersion",
    "TcpProxy",
    "TokenState",
    "add_session_login",
    "add_soap_service",
    "admin_router",
    "answer_dossier_act",
    "applied_answer",
    "aserve_app",
    "bearer_ok",
    "broken_page",
    "delivery_of",
    "demo_secret",
    "dossier_fault_answer",
    "gateway_error",
    "gateway_timeout",
    "optional_text",
    "rabbitmq_available",
    "read_capped_body",
    "read_gateway_payload",
    "read_json_object",
    "read_soap_request",
    "required_text",
    "run_session_simulator",
    "run_simulator",
    "same_secret",
    "self_signed_certificate",
    "serve_app",
    "session_checked",
    "sick_answer",
    "simulator_app",
    "soap_answer",
    "soap_answer_response",
    "soap_element",
    "soap_fault",
    "soap_fault_response",
    "soap_media_type",
    "suffer_delays",
    "vn_now",
    "wsdl_with_address",
]
