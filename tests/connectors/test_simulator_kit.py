"""bus.testing's simulator kit: switches, control routes, sick answers, memory, SOAP service."""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import Field

import bus.testing
import bus.testing.app
from bus.rest import GATEWAY_ERRORS
from bus.testing import (
    BROKEN_PAGE,
    DossierFaultSwitches,
    GatewayCode,
    RegisterState,
    SoapFaultSwitches,
    SoapRequest,
    SoapService,
    add_soap_service,
    run_simulator,
    serve_app,
    simulator_app,
    soap_answer_response,
    soap_element,
)

NAMESPACE = "urn:test:kit"
WSDL = Path(__file__).resolve().parents[2] / "contracts/partners/civil_status/hotich.wsdl"


def docstring_example() -> dict[str, Any]:
    """The whole REST partner of bus.testing's docstring, executed as it is written there."""
    doc = bus.testing.__doc__ or ""
    block = doc.split("A whole REST partner", 1)[1].split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break  # the paragraph after the example
        lines.append(line)
    namespace: dict[str, Any] = {"__name__": "bus_testing_example"}
    # dont_inherit: run it exactly as written, without this module's `from __future__` import.
    code = compile(
        textwrap.dedent("\n".join(lines)), "bus.testing example", "exec", dont_inherit=True
    )
    exec(code, namespace)
    return namespace


EXAMPLE = docstring_example()


class LandSwitches(DossierFaultSwitches):
    """A partner's own switch on top of the kit's."""

    slow_lookups: bool = Field(default=False, description="A partner's own switch")


@pytest.fixture(scope="module")
def state() -> Any:
    """One memory of the docstring's partner for the module; reset before every test."""
    return EXAMPLE["LandRegistryState"](seed=3)


@pytest.fixture(scope="module")
def base_url(state: Any) -> Iterator[str]:
    """The docstring's partner on a loopback port."""
    with serve_app(EXAMPLE["create_simulator_app"](state)) as url:
        yield url


@pytest.fixture
def client(base_url: str, state: Any) -> Iterator[httpx.Client]:
    """A client of the partner, which starts healthy and empty."""
    state.reset()
    with httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def submit(client: httpx.Client, code: str = "000.00.10.H12-240315-0001") -> httpx.Response:
    """Submit one dossier code to the partner."""
    return client.post("/api/hoSo", json={"maHoSo": code})


def test_the_kit_exports_each_public_name_once() -> None:
    """bus.testing lists every public name of its modules once, and still has its old ones."""
    assert len(bus.testing.__all__) == len(set(bus.testing.__all__))
    assert all(hasattr(bus.testing, name) for name in bus.testing.__all__)
    for module in pkgutil.iter_modules(bus.testing.__path__):
        names = importlib.import_module(f"bus.testing.{module.name}").__all__
        assert set(names) <= set(bus.testing.__all__), module.name
    before = {"HOSTILE_XML", "SOAP11_ENVELOPE", "SOAP12_ENVELOPE", "ServerStartError"}
    before |= {"SoapRequest", "SoapRequestError", "TcpProxy", "aserve_app", "read_soap_request"}
    before |= {"serve_app", "soap_answer", "soap_fault", "soap_media_type"}
    assert before <= set(bus.testing.__all__)


def test_gateway_codes_are_the_bus_table() -> None:
    """The simulator side's gateway codes are exactly those the REST kit reads."""
    assert {code.value: code.name for code in GatewayCode} == dict(GATEWAY_ERRORS)


def test_control_routes_take_the_partners_own_switches() -> None:
    """/_sim/faults accepts the subclass's switch, refuses an unknown one, and shows them all."""
    state = RegisterState[LandSwitches, str](faults=LandSwitches())
    app = simulator_app(state, title="Land", description="For tests.")
    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        assert client.post("/_sim/faults", json={"slow_lookups": True}).status_code == 200
        assert client.get("/_sim/faults").json()["slow_lookups"] is True
        assert state.current_faults().slow_lookups
        assert client.post("/_sim/faults", json={"explode": True}).status_code == 422
        assert client.post("/_sim/faults", json={"error_rate": 2}).status_code == 422


def test_a_dossier_is_applied_once_and_reset_forgets_it(client: httpx.Client) -> None:
    """A repeat gets the first answer with daTonTai; reset switches off and zeroes everything."""
    first, again = submit(client).json(), submit(client).json()
    assert first == {"error_code": 0, "soBienNhan": "TD-000001"}
    assert again == {**first, "daTonTai": True}
    stats = client.get("/_sim/stats").json()
    assert (stats["applied"], stats["duplicates"], stats["requests"]) == (1, 1, 2)
    client.post("/_sim/faults", json={"reject_all": True})
    assert client.post("/_sim/reset").json()["applied"] == 0
    assert client.get("/_sim/faults").json()["reject_all"] is False
    assert submit(client).json()["soBienNhan"] == "TD-000001"


@pytest.mark.parametrize(
    ("switches", "status", "body"),
    [
        ({"error_rate": 1.0}, 503, {"message": "Hệ thống đang bận"}),
        ({"reject_all": True}, 200, {"error_code": 500}),
        ({"failing_dossiers": ["000.00.10.H12-240315-0001"]}, 503, {}),
    ],
)
def test_switches_answer_in_the_partners_words_and_apply_nothing(
    client: httpx.Client,
    state: Any,
    switches: dict[str, Any],
    status: int,
    body: dict[str, Any],
) -> None:
    """A busy, refusing or choking partner answers as configured, and applies nothing."""
    client.post("/_sim/faults", json=switches).raise_for_status()
    answer = submit(client)
    assert answer.status_code == status
    assert body.items() <= answer.json().items()
    assert state.stats()["applied"] == 0


def test_malformed_is_neither_json_nor_xml(client: httpx.Client) -> None:
    """The malformed switch answers 200 with a gateway's broken HTML page."""
    client.post("/_sim/faults", json={"malformed": True})
    answer = submit(client)
    assert (answer.status_code, answer.text) == (200, BROKEN_PAGE)


def test_a_hang_ends_when_the_client_gives_up(client: httpx.Client) -> None:
    """A hanging partner holds the call past the client's timeout."""
    client.post("/_sim/faults", json={"hang": True, "hang_seconds": 5})
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/hoSo", json={"maHoSo": "x"}, timeout=0.3)


def test_an_oversized_body_is_refused(client: httpx.Client, state: Any) -> None:
    """A body above the cap is 413, counted as a call, never parsed."""
    answer = client.post("/api/hoSo", content=b"{" + b" " * 1_000_000 + b"}")
    assert answer.status_code == 413
    assert state.stats()["requests"] == 1


def test_requests_are_recorded_with_their_headers(client: httpx.Client, state: Any) -> None:
    """record_request keeps the line and the headers (lower-case names) of each call."""
    client.post("/api/hoSo", json={"maHoSo": "a"}, headers={"X-Road-Client": "VN/GOV/1"})
    last = state.last_request
    assert last is not None
    assert (last.method, last.path) == ("POST", "/api/hoSo")
    assert last.headers_starting("X-Road-") == {"x-road-client": "VN/GOV/1"}


def test_apply_once_holds_under_concurrent_threads() -> None:
    """Many threads applying the same dossiers apply each once, numbered without gaps."""
    state = RegisterState[DossierFaultSwitches, str](faults=DossierFaultSwitches())

    def work() -> None:
        for n in range(50):
            state.apply_once(f"code-{n}", lambda: f"TD-{state.next_number('all')}")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = state.stats()
    assert (stats["applied"], stats["duplicates"]) == (50, 350)
    assert sorted(state.records.values()) == sorted(f"TD-{n}" for n in range(1, 51))


def test_a_soap_service_dispatches_faults_and_serves_its_wsdl() -> None:
    """Unknown operations and client_fault are Client faults, busy a Server fault, ?wsdl served."""
    soap_state = RegisterState[SoapFaultSwitches, str](faults=SoapFaultSwitches())
    app = simulator_app(soap_state, title="SOAP", description="For tests.")

    def echo(call: SoapRequest) -> Response:
        element = soap_element(NAMESPACE, "echoResponse", {"text": call.field("text")})
        return soap_answer_response(call.version, element)

    service = SoapService(path="/ws", namespace=NAMESPACE, wsdl=WSDL, operations={"echo": echo})
    add_soap_service(app, soap_state, service)

    def envelope(operation: str) -> bytes:
        return (
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<t:{operation} xmlns:t="{NAMESPACE}"><t:text>xin chào</t:text></t:{operation}>'
            "</s:Body></s:Envelope>"
        ).encode()

    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        headers = {"Content-Type": "text/xml"}
        ok = client.post("/ws", content=envelope("echo"), headers=headers)
        assert ok.status_code == 200 and "xin chào" in ok.text
        unknown = client.post("/ws", content=envelope("xoa"), headers=headers)
        assert unknown.status_code == 500 and "soap:Client" in unknown.text
        soap_state.set_faults(SoapFaultSwitches(client_fault=True))
        assert "soap:Client" in client.post("/ws", content=envelope("echo"), headers=headers).text
        soap_state.set_faults(SoapFaultSwitches(error_rate=1.0))
        assert "soap:Server" in client.post("/ws", content=envelope("echo"), headers=headers).text
        assert f'location="{url}/ws"' in client.get("/ws?wsdl").text
        assert soap_state.stats()["requests"] == 4


def test_run_simulator_serves_what_build_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() parses --host, --port, --seed and the partner's own options, then serves."""
    served: dict[str, Any] = {}
    monkeypatch.setattr(
        bus.testing.app.uvicorn, "run", lambda app, **kw: served.update(kw, app=app)
    )

    def options(parser: Any) -> None:
        parser.add_argument("--dstcode", default="H12")

    def build(args: Any) -> FastAPI:
        app: FastAPI = EXAMPLE["create_simulator_app"](EXAMPLE["LandRegistryState"](seed=args.seed))
        return app

    argv = ["--port", "9001", "--seed", "4", "--dstcode", "H29", "--log-level", "warning"]
    run_simulator(build, port=8110, doc="A partner.\nMore.", argv=argv, options=options)
    assert (served["host"], served["port"], served["access_log"]) == ("127.0.0.1", 9001, False)
    assert served["app"].state.simulator.seed == 4
