"""The social-insurance connector against its simulator over real HTTP, session login included."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest

from bus.connector import Connector, ConnectorConfig, Delivery, DeliveryReceipt, SessionAuth
from bus.errors import (
    InvalidMessage,
    MappingError,
    PartnerRejected,
    PartnerUnavailable,
    PermanentError,
)
from bus.mapping import MappingCatalog
from bus.rest import RestClient, SessionOptions
from bus.testing import serve_app
from connectors.social_insurance import (
    CARD_REQUEST_PATH,
    DEFAULT_MAPPING,
    FUNERAL_ALLOWANCE,
    FUNERAL_ALLOWANCE_PATH,
    SimulatorState,
    SocialInsuranceConnector,
    create_simulator_app,
)
from connectors.social_insurance.simulator import (
    CardIssue,
    FuneralAllowance,
    funeral_allowance_amount,
)
from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_SUBMITTED,
    Dossier,
    DossierStatus,
    EventEnvelope,
    sample_birth_dossier,
)
from tests.connectors.helpers import set_faults, stats
from tests.connectors.linkage_steps import BUNDLES, DEATH_CERTIFICATE, death_dossier, step_delivery

PASSWORD = "bhxh-Secret-42"
PASSWORD_ENV = "BUS_SOCIAL_INSURANCE_PASSWORD"
ENVIRON = {PASSWORD_ENV: PASSWORD}
BIRTH_CERTIFICATE = "KS/2024/000001"
LOGIN = "/api/auth/login"


def birth_dossier(sequence: int = 1, **form: Any) -> Dossier:
    """The sample birth dossier with the birth certificate number step 1 issued in its form."""
    dossier = sample_birth_dossier(sequence=sequence)
    values = {**dossier.form, "birth_certificate_number": BIRTH_CERTIFICATE, **form}
    return dossier.model_copy(update={"form": {k: v for k, v in values.items() if v is not None}})


def make_delivery(dossier: Dossier, *, message_id: str | None = None) -> Delivery:
    """A delivery of ``dossier`` as the bus would hand it to the connector."""
    event = EventEnvelope(
        id=message_id or f"evt-{dossier.code}",
        source=dossier.receiving_agency,
        type=EVENT_DOSSIER_SUBMITTED,
        subject=dossier.code,
        time=dossier.received_at,
        dataschema=DOSSIER_DATASCHEMA,
        correlationid=f"run-{dossier.code}",
        dossierseq=1,
        data=dossier.model_dump(mode="json"),
    )
    return Delivery(message_id=event.id, event=event, dossier=dossier)


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    """One simulator for the module, accepting the test password; reset before every test."""
    return SimulatorState(password=PASSWORD, seed=7)


@pytest.fixture(scope="module")
def base_url(state: SimulatorState) -> Iterator[str]:
    """The simulator, served over HTTP on a free loopback port."""
    with serve_app(create_simulator_app(state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_simulator(state: SimulatorState) -> None:
    """Every test starts with no card, session, counter or fault."""
    state.reset()


@pytest.fixture(scope="module")
def catalog() -> MappingCatalog:
    """The shipped mappings, compiled once for the module."""
    return MappingCatalog.load(partners=("social_insurance",))


@pytest.fixture
def config(base_url: str) -> ConnectorConfig:
    """The shipped connector.toml, pointed at the simulator."""
    return ConnectorConfig.from_file(SocialInsuranceConnector.default_config, endpoint=base_url)


@pytest.fixture
async def connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[SocialInsuranceConnector]:
    """A connector talking to the simulator, with the password in its environment."""
    instance = SocialInsuranceConnector(config, catalog=catalog, environ=ENVIRON)
    yield instance
    await instance.aclose()


async def deliver_mocked(
    config: ConnectorConfig, card_answer: dict[str, Any], dossier: Dossier | None = None
) -> DeliveryReceipt:
    """Deliver to a mocked gateway: login succeeds, the card request answers ``card_answer``."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"error_code": 0, "session": "s-1"})
        return httpx.Response(200, json=card_answer)

    connector = SocialInsuranceConnector(
        config, transport=httpx.MockTransport(answer), environ=ENVIRON
    )
    try:
        return await connector.deliver(make_delivery(dossier or birth_dossier()))
    finally:
        await connector.aclose()


# --- configuration -------------------------------------------------------------------------


def test_entry_point_resolves_to_connector() -> None:
    """The lienthong_bus.connectors entry point social_insurance loads the connector."""
    (entry,) = entry_points(group="lienthong_bus.connectors", name="social_insurance")
    assert entry.load() is SocialInsuranceConnector


def test_shipped_config_reads() -> None:
    """The shipped connector.toml: REST on 8103, no procedures, session login with dstcode."""
    config = ConnectorConfig.from_file(SocialInsuranceConnector.default_config)
    assert (config.id, config.kind) == ("social_insurance", "rest")
    assert config.mapping == "social_insurance/1.0"
    assert config.procedures == ()
    assert config.concurrency == 8
    assert str(config.endpoint) == "http://127.0.0.1:8103/"
    assert isinstance(config.auth, SessionAuth)
    assert config.auth.password_env == PASSWORD_ENV
    assert config.auth.headers == {"dstcode": "H12"}


def test_public_names_resolve() -> None:
    """Every name in connectors.social_insurance.__all__ can be imported from the package."""
    import connectors.social_insurance as package

    for name in package.__all__:
        assert getattr(package, name) is not None


async def test_connector_satisfies_protocol(connector: SocialInsuranceConnector) -> None:
    """SocialInsuranceConnector is a bus Connector."""
    assert isinstance(connector, Connector)


async def test_built_without_password_fails_only_when_called(
    config: ConnectorConfig, sim: httpx.AsyncClient
) -> None:
    """Without the password variable the connector builds, and a delivery is CREDENTIALS_MISSING."""
    connector = SocialInsuranceConnector(config, environ={})
    try:
        with pytest.raises(PermanentError) as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "CREDENTIALS_MISSING"
    assert PASSWORD_ENV in str(caught.value)
    assert (await stats(sim))["logins"] == 0


# --- the happy path ------------------------------------------------------------------------


async def test_delivery_is_issued_after_one_login(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """A birth dossier gets its card: PROCESSED, the social-insurance number as reference."""
    dossier = birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.partner_reference is not None
    assert len(receipt.partner_reference) == 10 and receipt.partner_reference.startswith("01")
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/card-request.out"
    assert receipt.note is not None and receipt.note.startswith("Đã cấp thẻ BHYT")
    assert receipt.extra == {"partner_status": "03"}
    assert receipt.request_size > 0 and receipt.response_size > 0
    assert receipt.sent_at.tzinfo is not None and receipt.sent_at <= receipt.answered_at
    assert await stats(sim) == {
        "applied": 1,
        "duplicates": 0,
        "requests": 1,
        "applied_codes": [dossier.code],
        "logins": 1,
        "expired": 0,
    }
    assert state.login_dstcodes == ["H12"]
    card = state.lookup(dossier.code)
    assert card is not None
    assert card.valid_from.isoformat() == dossier.form["child_date_of_birth"]


async def test_request_carries_session_and_birth_certificate(config: ConnectorConfig) -> None:
    """The card request is the mapped body plus the session, with the Idempotency-Key header."""
    seen: list[httpx.Request] = []
    dossier = birth_dossier()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"error_code": 0, "session": "s-9"})
        return httpx.Response(
            200, json={"error_code": 0, "trangThai": "01", "ngayXuLy": "20240316"}
        )

    connector = SocialInsuranceConnector(
        config, transport=httpx.MockTransport(answer), environ=ENVIRON
    )
    try:
        receipt = await connector.deliver(make_delivery(dossier, message_id="msg-3"))
    finally:
        await connector.aclose()
    login, card = seen
    assert json.loads(login.content) == {"username": "lgsp.h12", "password": PASSWORD}
    assert login.headers["dstcode"] == "H12"
    assert card.url.path == CARD_REQUEST_PATH
    assert card.headers["Idempotency-Key"] == "msg-3"
    body = json.loads(card.content)
    assert body["session"] == "s-9"
    assert body["maHoSo"] == dossier.code
    assert body["soGiayKhaiSinh"] == BIRTH_CERTIFICATE
    assert body["gioiTinh"] == "2"
    assert receipt.request_size == len(card.content)


async def test_same_delivery_twice_is_applied_once(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same dossier twice issues one card and answers the same number."""
    delivery = make_delivery(birth_dossier())
    first = await connector.deliver(delivery)
    second = await connector.deliver(delivery)

    assert second.partner_reference == first.partner_reference
    assert "already_registered" not in first.extra
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["requests"]) == (1, 1, 2)
    assert counters["logins"] == 1


@pytest.mark.parametrize(
    ("partner_status", "expected"),
    [
        ("01", DossierStatus.ACCEPTED),
        ("02", DossierStatus.PROCESSING),
        ("03", DossierStatus.PROCESSED),
        ("04", DossierStatus.SUPPLEMENT_REQUESTED),
        ("05", DossierStatus.NOT_ACCEPTED),
    ],
)
async def test_card_status_maps_to_dossier_status(
    config: ConnectorConfig, partner_status: str, expected: DossierStatus
) -> None:
    """trangThai 01 to 05 map to national statuses 2, 4, 9, 5 and 3."""
    receipt = await deliver_mocked(
        config,
        {"error_code": 0, "trangThai": partner_status, "ngayXuLy": "20240316", "ghiChu": "..."},
    )
    assert receipt.status is expected
    assert receipt.note == "..."


@pytest.mark.parametrize(
    "answer",
    [
        {"error_code": 0, "trangThai": "09", "ngayXuLy": "20240316"},
        {"error_code": 0, "trangThai": "03", "ngayCapThe": "20240230"},
        {"error_code": 0, "trangThai": "03", "ngayCapThe": "20240316", "maHoSo": "other"},
    ],
)
async def test_unreadable_answers_are_malformed_reply(
    config: ConnectorConfig, answer: dict[str, Any]
) -> None:
    """An unknown trangThai, an impossible date, or another dossier's answer is MALFORMED_REPLY."""
    with pytest.raises(PartnerUnavailable) as caught:
        await deliver_mocked(config, answer)
    assert caught.value.fault_code == "MALFORMED_REPLY"


# --- sessions ------------------------------------------------------------------------------


async def test_session_expiring_after_n_calls_is_renewed(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """Sessions good for 2 calls: 5 deliveries need 3 logins, and each refusal is retried once."""
    await set_faults(sim, session_max_calls=2)
    receipts = [
        await connector.deliver(make_delivery(birth_dossier(sequence=n))) for n in range(1, 6)
    ]
    assert all(receipt.status is DossierStatus.PROCESSED for receipt in receipts)
    assert ["session_renewed" in receipt.extra for receipt in receipts] == [
        False,
        False,
        True,
        False,
        True,
    ]
    counters = await stats(sim)
    assert (counters["logins"], counters["expired"], counters["requests"]) == (3, 2, 7)
    assert counters["applied"] == 5


async def test_session_expiring_after_seconds_is_renewed(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A session the gateway ends after 0.2 s is renewed by the next delivery, once."""
    await set_faults(sim, session_ttl_seconds=0.2)
    await connector.deliver(make_delivery(birth_dossier(sequence=1)))
    await asyncio.sleep(0.3)
    receipt = await connector.deliver(make_delivery(birth_dossier(sequence=2)))
    assert receipt.extra["session_renewed"] == "true"
    counters = await stats(sim)
    assert (counters["logins"], counters["expired"], counters["applied"]) == (2, 1, 2)


@pytest.mark.parametrize("as_401", [False, True])
async def test_expired_sessions_renewed_once_for_concurrent_deliveries(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient, as_401: bool
) -> None:
    """After the gateway drops its sessions, eight deliveries at once share one new login."""
    await connector.deliver(make_delivery(birth_dossier(sequence=1)))
    await set_faults(sim, latency_ms=50, expired_as_401=as_401)
    assert (await sim.post("/_sim/expire-sessions")).json() == {"expired_sessions": 1}

    deliveries = [make_delivery(birth_dossier(sequence=n)) for n in range(2, 10)]
    receipts = await asyncio.gather(*(connector.deliver(d) for d in deliveries))

    assert all(receipt.status is DossierStatus.PROCESSED for receipt in receipts)
    counters = await stats(sim)
    assert counters["logins"] == 2
    assert counters["expired"] >= 2  # several deliveries really came back with the old session
    assert sum("session_renewed" in r.extra for r in receipts) == counters["expired"]
    assert counters["applied"] == 9


async def test_wrong_password_is_rejected_at_login(
    config: ConnectorConfig, sim: httpx.AsyncClient
) -> None:
    """A wrong password is PartnerRejected GATEWAY_100_AUTHEN_ERROR; no card is requested."""
    connector = SocialInsuranceConnector(config, environ={PASSWORD_ENV: "wrong"})
    try:
        with pytest.raises(PartnerRejected, match="login refused") as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "GATEWAY_100_AUTHEN_ERROR"
    assert "wrong" not in str(caught.value)
    counters = await stats(sim)
    assert (counters["logins"], counters["requests"], counters["applied"]) == (0, 0, 0)


async def test_wrong_dstcode_is_province_id_incorrect(base_url: str) -> None:
    """A gateway expecting another province's dstcode refuses the login with error_code 108."""
    other = SimulatorState(password=PASSWORD, dstcode="H29")
    with serve_app(create_simulator_app(other)) as url:
        config = ConnectorConfig.from_file(SocialInsuranceConnector.default_config, endpoint=url)
        connector = SocialInsuranceConnector(config, environ=ENVIRON)
        try:
            with pytest.raises(PartnerRejected) as caught:
                await connector.deliver(make_delivery(birth_dossier()))
        finally:
            await connector.aclose()
    assert caught.value.fault_code == "GATEWAY_108_PROVINCE_ID_INCORRECT"
    assert other.login_dstcodes == ["H12"]


async def test_password_stays_out_of_logs_and_reprs(
    connector: SocialInsuranceConnector,
    sim: httpx.AsyncClient,
    state: SimulatorState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the connector's logs nor the simulator's repr show the password."""
    caplog.set_level(logging.DEBUG)
    await set_faults(sim, session_max_calls=1)
    for n in (1, 2):
        await connector.deliver(make_delivery(birth_dossier(sequence=n)))
    assert "logged in as lgsp.h12" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(state)


# --- failure switches ----------------------------------------------------------------------


async def test_server_error_is_transient(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """error_rate 1 (HTTP 503, login included) is PartnerUnavailable HTTP_503, nothing issued."""
    await set_faults(sim, error_rate=1.0)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "HTTP_503"
    assert (await stats(sim))["applied"] == 0


async def test_hang_times_out_as_transient(config: ConnectorConfig, sim: httpx.AsyncClient) -> None:
    """A partner that never answers is PARTNER_TIMEOUT once timeout_seconds have passed."""
    await set_faults(sim, hang=True)
    connector = SocialInsuranceConnector(
        config.model_copy(update={"timeout_seconds": 0.3}), environ=ENVIRON
    )
    started = time.monotonic()
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.fault_code == "PARTNER_TIMEOUT"
    await set_faults(sim)
    assert (await stats(sim))["applied"] == 0


async def test_latency_below_timeout_still_issues(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A slow partner that answers within the timeout issues the card normally."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(make_delivery(birth_dossier()))
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


async def test_reject_all_is_a_gateway_rejection(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """reject_all (error_code 500) is PartnerRejected GATEWAY_500_DATA_INCORRECT, permanent."""
    await set_faults(sim, reject_all=True)
    with pytest.raises(PartnerRejected, match="hồ sơ bị từ chối") as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "GATEWAY_500_DATA_INCORRECT"
    assert caught.value.error_class == "permanent"
    assert (await stats(sim))["applied"] == 0


async def test_garbage_answer_is_malformed_reply(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """malformed (an HTML page with HTTP 200) is PartnerUnavailable MALFORMED_REPLY."""
    await set_faults(sim, malformed=True)
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(birth_dossier()))
    assert caught.value.fault_code == "MALFORMED_REPLY"


async def test_failing_dossier_fails_alone(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A dossier in failing_dossiers gets HTTP 503 while the next one gets its card."""
    poison, healthy = birth_dossier(sequence=1), birth_dossier(sequence=2)
    await set_faults(sim, failing_dossiers=[poison.code])
    with pytest.raises(PartnerUnavailable) as caught:
        await connector.deliver(make_delivery(poison))
    assert caught.value.fault_code == "HTTP_503"
    receipt = await connector.deliver(make_delivery(healthy))
    assert receipt.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied_codes"] == [healthy.code]


async def test_connection_refused_is_transient(config: ConnectorConfig) -> None:
    """A partner that refuses the connection is PARTNER_UNREACHABLE (at login)."""
    with serve_app(create_simulator_app(SimulatorState(password=PASSWORD))) as url:
        pass  # the port is free again once the server has stopped
    connector = SocialInsuranceConnector(
        config.model_copy(update={"endpoint": url}), environ=ENVIRON
    )
    try:
        with pytest.raises(PartnerUnavailable) as caught:
            await connector.deliver(make_delivery(birth_dossier()))
    finally:
        await connector.aclose()
    assert caught.value.fault_code == "PARTNER_UNREACHABLE"


async def test_child_over_six_is_data_incorrect(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A child six or older is refused with error_code 500 DATA_INCORRECT: permanent."""
    dossier = birth_dossier()
    received = dossier.received_at.date()
    born = date(received.year - 7, received.month, 1)
    dossier = birth_dossier(child_date_of_birth=born.isoformat())
    with pytest.raises(PartnerRejected, match="dưới 6 tuổi") as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "GATEWAY_500_DATA_INCORRECT"
    assert (await stats(sim))["applied"] == 0


async def test_lookup_of_unknown_dossier_is_record_not_found(
    connector: SocialInsuranceConnector, config: ConnectorConfig
) -> None:
    """traCuuHoSo, with a session, answers an issued card, and error_code 201 for no card."""
    dossier = birth_dossier()
    receipt = await connector.deliver(make_delivery(dossier))
    client = RestClient(config, session=SessionOptions(), environ=ENVIRON)
    try:
        known = await client.request("POST", "/api/bhyt/traCuuHoSo", json={"maHoSo": dossier.code})
        with pytest.raises(PartnerRejected) as caught:
            await client.request("POST", "/api/bhyt/traCuuHoSo", json={"maHoSo": "không-có"})
    finally:
        await client.aclose()
    assert known.body["maSoBHXH"] == receipt.partner_reference
    assert caught.value.fault_code == "GATEWAY_201_RECORD_NOT_FOUND"


# --- mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, " ", ["125/2024"]])
async def test_missing_birth_certificate_fails_before_any_call(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient, value: Any
) -> None:
    """Without a birth_certificate_number string in the form, a MappingError names it; no call."""
    dossier = birth_dossier(birth_certificate_number=value)
    with pytest.raises(MappingError, match="birth_certificate_number") as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/card-request.out"
    assert caught.value.source_path == "form.birth_certificate_number"
    counters = await stats(sim)
    assert (counters["requests"], counters["logins"]) == (0, 0)


async def test_unmappable_mother_birth_date_fails_before_any_call(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A mother's date of birth in a foreign format is a MappingError FORM_INVALID."""
    dossier = birth_dossier(mother_date_of_birth="05/1992")
    with pytest.raises(MappingError) as caught:
        await connector.deliver(make_delivery(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.source_path == "form.mother_date_of_birth"
    assert (await stats(sim))["requests"] == 0


# --- the simulator on its own --------------------------------------------------------------


async def test_calls_without_a_session_are_refused(sim: httpx.AsyncClient) -> None:
    """A card request without a valid session gets error_code 100 and issues nothing."""
    response = await sim.post(CARD_REQUEST_PATH, json={"session": "forged", "maHoSo": "x"})
    assert response.status_code == 200
    assert response.json()["error_code"] == 100
    counters = await stats(sim)
    assert (counters["expired"], counters["applied"]) == (1, 0)


async def test_reset_clears_faults_sessions_and_counters(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """POST /_sim/reset switches every fault off, ends sessions and zeroes the counters."""
    await connector.deliver(make_delivery(birth_dossier()))
    await set_faults(sim, error_rate=1.0, session_max_calls=3)
    await sim.post("/_sim/reset")
    faults = (await sim.get("/_sim/faults")).json()
    assert (faults["error_rate"], faults["session_max_calls"]) == (0, None)
    assert (await sim.post("/_sim/expire-sessions")).json() == {"expired_sessions": 0}
    assert (await stats(sim))["logins"] == 0


async def test_fault_switches_are_validated(sim: httpx.AsyncClient) -> None:
    """A session_max_calls of 0 or an unknown switch is refused with 422."""
    assert (await sim.post("/_sim/faults", json={"session_max_calls": 0})).status_code == 422
    assert (await sim.post("/_sim/faults", json={"explode": True})).status_code == 422


def test_card_validity_runs_to_the_day_before_the_sixth_birthday() -> None:
    """A card issued for a child born on 29 February 2024 is valid until 28 February 2030."""
    state = SimulatorState(password=PASSWORD)
    card, existed = state.issue(
        dossier_code="c", child="Bé", born=date(2024, 2, 29), province="01", commune="00001"
    )
    assert not existed
    assert card.valid_from == date(2024, 2, 29)
    assert card.valid_until == date(2030, 2, 28)


# --- the death bundle: the funeral allowance ------------------------------------------------


@pytest.fixture
async def quick_connector(
    config: ConnectorConfig, catalog: MappingCatalog
) -> AsyncIterator[SocialInsuranceConnector]:
    """A connector that gives up after one second, for the hanging partner."""
    instance = SocialInsuranceConnector(
        config.model_copy(update={"timeout_seconds": 1.0}), catalog=catalog, environ=ENVIRON
    )
    yield instance
    await instance.aclose()


def allowance(dossier: Dossier | None = None, *, attempt: int = 1) -> Delivery:
    """The death bundle's social-insurance step for ``dossier`` (default: the sample)."""
    return step_delivery(dossier or death_dossier(), "funeral_allowance", attempt=attempt)


def test_operations_cover_the_bundles() -> None:
    """Every step the shipped bundles give social insurance names its default or a listed one."""
    assert SocialInsuranceConnector.operations == frozenset({FUNERAL_ALLOWANCE})
    asked = {
        step.operation
        for bundle in BUNDLES.values()
        for step in bundle.steps
        if step.connector == "social_insurance"
    }
    assert asked == {None, FUNERAL_ALLOWANCE}


async def test_birth_step_keeps_the_card(
    connector: SocialInsuranceConnector, state: SimulatorState
) -> None:
    """The birth bundle's step, which names no operation, still asks for the child's card."""
    dossier = birth_dossier()
    receipt = await connector.deliver(
        step_delivery(dossier, "health_insurance_card", bundle=BUNDLES["birth"])
    )
    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/card-request.out"
    assert isinstance(state.lookup(dossier.code), CardIssue)


async def test_death_step_settles_the_funeral_allowance(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient, state: SimulatorState
) -> None:
    """funeral_allowance: PROCESSED, the decision number as reference, after one login."""
    dossier = death_dossier()
    receipt = await connector.deliver(allowance(dossier))

    assert receipt.status is DossierStatus.PROCESSED
    assert receipt.partner_reference == "1/QĐ-BHXH"
    assert receipt.mapping_version == f"{DEFAULT_MAPPING}/funeral-allowance.out"
    # Died in March 2024: 10 times the base salary of 1,800,000 đồng then in force.
    assert receipt.note == "Hưởng trợ cấp mai táng cho Trần Văn Đức: 18.000.000 đồng"
    assert receipt.extra == {"partner_status": "03"}
    counters = await stats(sim)
    assert (counters["applied"], counters["requests"], counters["logins"]) == (1, 1, 1)
    decision = state.lookup(dossier.code)
    assert isinstance(decision, FuneralAllowance)
    assert decision.amount_vnd == 18_000_000
    assert state.last_request is not None
    assert state.last_request.path == FUNERAL_ALLOWANCE_PATH


async def test_allowance_request_carries_the_death_extract(config: ConnectorConfig) -> None:
    """The request: session, the deceased, the passed death extract number, the recipient."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"error_code": 0, "session": "s-5"})
        return httpx.Response(
            200, json={"error_code": 0, "trangThai": "01", "ngayXuLy": "20240316"}
        )

    dossier = death_dossier()
    connector = SocialInsuranceConnector(
        config, transport=httpx.MockTransport(answer), environ=ENVIRON
    )
    try:
        receipt = await connector.deliver(
            step_delivery(dossier, "funeral_allowance", message_id="msg-4")
        )
    finally:
        await connector.aclose()
    _login, call = seen
    assert call.url.path == FUNERAL_ALLOWANCE_PATH
    assert call.headers["Idempotency-Key"] == "msg-4"
    body = json.loads(call.content)
    assert body["session"] == "s-5"
    assert body["soTrichLucKhaiTu"] == DEATH_CERTIFICATE
    assert (body["soDinhDanh"], body["maSoBHXH"]) == ("001048009876", "0148003456")
    assert (body["ngayChet"], body["ngayDeNghi"]) == ("20240312", "20240315")
    assert body["nguoiHuong"] == {
        "hoTen": "Trần Văn Hùng",
        "soDinhDanh": "001075004321",
        "quanHe": "Con",
    }
    assert receipt.status is DossierStatus.ACCEPTED


async def test_uninsured_deceased_is_not_accepted(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """Without a social-insurance number the gateway refuses the allowance: NOT_ACCEPTED."""
    dossier = death_dossier(deceased_social_insurance_number=None)
    receipt = await connector.deliver(allowance(dossier))
    assert receipt.status is DossierStatus.NOT_ACCEPTED
    assert receipt.partner_reference is None
    assert receipt.note is not None and "không tham gia bảo hiểm xã hội" in receipt.note
    assert receipt.extra == {"partner_status": "05"}
    assert (await stats(sim))["applied"] == 1


async def test_same_allowance_twice_is_decided_once(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """Delivering the same step twice decides once and answers the same decision number."""
    first = await connector.deliver(allowance())
    second = await connector.deliver(allowance(attempt=2))
    assert second.partner_reference == first.partner_reference
    assert second.extra["already_registered"] == "true"
    counters = await stats(sim)
    assert (counters["applied"], counters["duplicates"], counters["logins"]) == (1, 1, 1)


async def test_expired_session_is_renewed_for_the_allowance(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A session the gateway dropped between a card and an allowance is renewed, once."""
    await connector.deliver(make_delivery(birth_dossier(sequence=1)))
    assert (await sim.post("/_sim/expire-sessions")).json() == {"expired_sessions": 1}
    receipt = await connector.deliver(allowance(death_dossier(sequence=2)))
    assert receipt.extra["session_renewed"] == "true"
    assert (await stats(sim))["logins"] == 2


@pytest.mark.parametrize(
    ("switches", "error", "fault_code"),
    [
        pytest.param({"error_rate": 1.0}, PartnerUnavailable, "HTTP_503", id="503"),
        pytest.param({"malformed": True}, PartnerUnavailable, "MALFORMED_REPLY", id="malformed"),
        pytest.param(
            {"hang": True, "hang_seconds": 5}, PartnerUnavailable, "PARTNER_TIMEOUT", id="hang"
        ),
        pytest.param(
            {"reject_all": True}, PartnerRejected, "GATEWAY_500_DATA_INCORRECT", id="refusal"
        ),
    ],
)
async def test_allowance_failures_are_classified(
    quick_connector: SocialInsuranceConnector,
    sim: httpx.AsyncClient,
    switches: dict[str, Any],
    error: type[Exception],
    fault_code: str,
) -> None:
    """503, a malformed answer, a hang and a refusal fail the request as their kind, and decide
    nothing; a well gateway takes the retry."""
    await set_faults(sim, **switches)
    with pytest.raises(error) as caught:
        await quick_connector.deliver(allowance())
    assert getattr(caught.value, "fault_code", None) == fault_code
    assert (await stats(sim))["applied"] == 0

    await set_faults(sim)
    receipt = await quick_connector.deliver(allowance(attempt=2))
    assert receipt.status is DossierStatus.PROCESSED
    assert (await stats(sim))["applied"] == 1


async def test_slow_gateway_still_settles(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A gateway that answers after 150 ms, within the timeout, settles the allowance."""
    await set_faults(sim, latency_ms=150)
    receipt = await connector.deliver(allowance())
    assert receipt.status is DossierStatus.PROCESSED
    assert (receipt.answered_at - receipt.sent_at).total_seconds() >= 0.15


@pytest.mark.parametrize("value", [None, "", ["KT/2024/000001"]])
async def test_missing_death_certificate_fails_before_any_call(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient, value: Any
) -> None:
    """Without a death_certificate_number string: FORM_INVALID, permanent, no login, no call."""
    dossier = death_dossier(death_certificate_number=value)
    with pytest.raises(MappingError, match="death_certificate_number") as caught:
        await connector.deliver(allowance(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.error_class == "permanent"
    assert caught.value.mapping == f"{DEFAULT_MAPPING}/funeral-allowance.out"
    assert caught.value.source_path == "form.death_certificate_number"
    assert caught.value.target_field == "soTrichLucKhaiTu"
    counters = await stats(sim)
    assert (counters["requests"], counters["logins"]) == (0, 0)


async def test_unmappable_death_form_fails_before_any_call(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """A date of death in a foreign format is FORM_INVALID naming the field."""
    dossier = death_dossier(date_of_death="12/03/2024")
    with pytest.raises(MappingError) as caught:
        await connector.deliver(allowance(dossier))
    assert caught.value.fault_code == "FORM_INVALID"
    assert caught.value.source_path == "form.date_of_death"
    assert (await stats(sim))["requests"] == 0


async def test_unknown_operation_is_permanent(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """An operation social insurance does not have is InvalidMessage naming its own; no call."""
    delivery = step_delivery(death_dossier(), "funeral_allowance", operation="survivor_pension")
    with pytest.raises(InvalidMessage, match=FUNERAL_ALLOWANCE) as caught:
        await connector.deliver(delivery)
    assert caught.value.fault_code == "UNSUPPORTED_OPERATION"
    assert caught.value.error_class == "permanent"
    counters = await stats(sim)
    assert (counters["requests"], counters["logins"]) == (0, 0)


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"soTrichLucKhaiTu": None}, "GATEWAY_200_RECORD_UNCOMPLETE"),
        ({"maTinh": "1"}, "GATEWAY_108_PROVINCE_ID_INCORRECT"),
        ({"maSoBHXH": "01480034"}, "GATEWAY_302_DATA_TYPE_INVALID"),
        ({"ngayChet": "12/03/2024"}, "GATEWAY_302_DATA_TYPE_INVALID"),
        ({"ngayChet": "20240316"}, "GATEWAY_500_DATA_INCORRECT"),
    ],
)
async def test_simulator_checks_an_allowance_request(
    config: ConnectorConfig, catalog: MappingCatalog, change: dict[str, Any], fault: str
) -> None:
    """No extract, a bad area, a short insurance number, a foreign or later death date: refused."""
    mapping = catalog.get(f"{DEFAULT_MAPPING}/funeral-allowance.out")
    dossier = death_dossier()
    body = mapping.apply(dossier.model_dump(mode="json"), {"death_certificate_number": "1/2024"})
    client = RestClient(config, session=SessionOptions(), environ=ENVIRON)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await client.request(
                "POST", FUNERAL_ALLOWANCE_PATH, json={**body, **change}, issue=dossier.code
            )
    finally:
        await client.aclose()
    assert caught.value.fault_code == fault


async def test_lookup_answers_an_allowance(
    connector: SocialInsuranceConnector, config: ConnectorConfig
) -> None:
    """traCuuHoSo answers a settled allowance with its decision number and amount."""
    dossier = death_dossier()
    receipt = await connector.deliver(allowance(dossier))
    client = RestClient(config, session=SessionOptions(), environ=ENVIRON)
    try:
        known = await client.request("POST", "/api/bhyt/traCuuHoSo", json={"maHoSo": dossier.code})
    finally:
        await client.aclose()
    assert known.body["soQuyetDinh"] == receipt.partner_reference
    assert known.body["soTien"] == 18_000_000


@pytest.mark.parametrize(
    ("died_on", "amount"),
    [
        (date(2019, 6, 30), 13_900_000),
        (date(2023, 6, 30), 14_900_000),
        (date(2023, 7, 1), 18_000_000),
        (date(2024, 7, 1), 23_400_000),
    ],
)
def test_funeral_allowance_is_ten_base_salaries(died_on: date, amount: int) -> None:
    """The allowance is 10 times the base salary in force in the month of death."""
    assert funeral_allowance_amount(died_on) == amount


async def test_one_dossier_code_names_one_procedure(
    connector: SocialInsuranceConnector, sim: httpx.AsyncClient
) -> None:
    """An allowance under the code of a child's card is refused: one dossier, one decision."""
    newborn, deceased = birth_dossier(), death_dossier()
    assert newborn.code == deceased.code  # the samples share agency, day and sequence
    await connector.deliver(make_delivery(newborn))
    with pytest.raises(PartnerRejected, match="thủ tục khác") as caught:
        await connector.deliver(allowance(deceased))
    assert caught.value.fault_code == "GATEWAY_500_DATA_INCORRECT"
    assert (await stats(sim))["applied"] == 1
