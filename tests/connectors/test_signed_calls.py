"""Signed calls to partners: the bus signs for an agency, the partner checks, and its signed
answers are checked in turn. Real connectors (REST: residence; SOAP: civil status) call their
simulators over loopback, each behind a :class:`PartnerSignatures` like a signing partner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from bus.connector import Connector, ConnectorConfig, PollSettings, SigningPolicy
from bus.errors import PartnerRejected, PartnerUnavailable, UntrustedReply
from bus.ingest import Submission, build_ingest_request
from bus.mapping import MappingCatalog
from bus.poller import Poller
from bus.security.agency_keys import (
    AGENCY_KEYS_DIR_ENV,
    AgencyKeyError,
    create_agency_key,
    load_agency_key,
)
from bus.security.outbound import recording_signatures
from bus.security.signing import public_key_text, sign_request
from bus.soap import SoapSetupError
from bus.store.database import create_engine, writer
from bus.store.ingest import write_ingest_batch
from bus.store.migrate import upgrade_async
from bus.store.schema import hops
from bus.testing import Forgery, PartnerSignatures, serve_app
from bus.testing.deliveries import delivery_of
from connectors.civil_status import CivilStatusConnector
from connectors.civil_status import SimulatorState as CivilStatusState
from connectors.civil_status import create_simulator_app as civil_status_app
from connectors.judicial_records import JudicialRecordsConnector
from connectors.judicial_records import SimulatorState as JudicialState
from connectors.judicial_records import create_simulator_app as judicial_app
from connectors.residence import ResidenceConnector
from connectors.residence import SimulatorState as ResidenceState
from connectors.residence import create_simulator_app as residence_app
from contracts import VN_TZ, Dossier, sample_birth_dossier

#: The one-stop desk the bus signs for, and an agency whose key no partner was given.
AGENCY = "000.00.10.H12"
STRANGER = "000.00.11.H12"
PARTNER_KEY_ID = "partner-test-key"
PARTNERS = ("residence", "civil_status")


def birth_dossier(sequence: int) -> Dossier:
    """The sample birth dossier, with the birth certificate residence needs from step 1."""
    dossier = sample_birth_dossier(sequence=sequence)
    form = {**dossier.form, "birth_certificate_number": "KS/2024/000001"}
    return dossier.model_copy(update={"form": form})


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bus's agency keys: one the partners trust, one they were never given."""
    directory = tmp_path_factory.mktemp("agency-keys")
    create_agency_key(directory, AGENCY)
    create_agency_key(directory, STRANGER)
    return directory


@pytest.fixture(autouse=True)
def _keys_in_environment(keys_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AGENCY_KEYS_DIR_ENV, str(keys_dir))


@pytest.fixture(scope="module")
def partner_key() -> Ed25519PrivateKey:
    """The key the partners sign their answers with."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def signatures(keys_dir: Path, partner_key: Ed25519PrivateKey) -> dict[str, PartnerSignatures]:
    """Each partner's signature policy: trusts the agency's key, signs with its own."""
    trusted = {AGENCY: load_agency_key(keys_dir, AGENCY).public_key()}
    return {
        name: PartnerSignatures(trusted=trusted, key_id=PARTNER_KEY_ID, key=partner_key)
        for name in PARTNERS
    }


@pytest.fixture(scope="module")
def states() -> dict[str, Any]:
    return {"residence": ResidenceState(seed=3), "civil_status": CivilStatusState(seed=3)}


@pytest.fixture(scope="module")
def urls(
    signatures: dict[str, PartnerSignatures], states: dict[str, Any]
) -> Iterator[dict[str, str]]:
    """Both simulators, each behind its partner's signature checks."""
    rest_app = signatures["residence"].wrap(residence_app(states["residence"]))
    soap_app = signatures["civil_status"].wrap(civil_status_app(states["civil_status"]))
    with serve_app(rest_app) as rest, serve_app(soap_app) as soap:
        yield {"residence": rest, "civil_status": soap}


@pytest.fixture(autouse=True)
def _fresh_partners(signatures: dict[str, PartnerSignatures], states: dict[str, Any]) -> None:
    for partner in signatures.values():
        partner.forgery = None
        partner.verified = partner.refused = 0
        partner.signed_by.clear()
    for state in states.values():
        state.reset()


def signing_config(
    name: str, url: str, partner_key: Ed25519PrivateKey | None, *, agency: str = AGENCY
) -> ConnectorConfig:
    """The shipped connector.toml of ``name`` at ``url``, signing for ``agency`` and, with
    ``partner_key``, checking answers against it."""
    factory = ResidenceConnector if name == "residence" else CivilStatusConnector
    shipped = ConnectorConfig.from_file(factory.default_config, endpoint=url)
    policy = SigningPolicy(
        agency=agency,
        partner_key=None if partner_key is None else public_key_text(partner_key.public_key()),
        partner_key_id=PARTNER_KEY_ID,
    )
    return shipped.model_copy(update={"signing": policy})


def build(name: str, config: ConnectorConfig) -> Connector:
    if name == "residence":
        return ResidenceConnector(config, catalog=MappingCatalog.load(partners=("residence",)))
    return CivilStatusConnector(config, catalog=MappingCatalog.load(partners=("civil_status",)))


@pytest.fixture
async def connectors(
    urls: dict[str, str], partner_key: Ed25519PrivateKey
) -> AsyncIterator[dict[str, Connector]]:
    """Both connectors, signing for the agency and checking the partner's answers."""
    built = {name: build(name, signing_config(name, urls[name], partner_key)) for name in PARTNERS}
    yield built
    for connector in built.values():
        await connector.aclose()


@pytest.mark.parametrize("name", PARTNERS)
async def test_call_is_signed_for_the_agency_and_the_signed_answer_verified(
    name: str, connectors: dict[str, Connector], signatures: dict[str, PartnerSignatures]
) -> None:
    """The partner verifies every call as the agency's, and the bus verifies every answer;
    both signatures are collected as evidence of the exchange."""
    with recording_signatures() as recorded:
        receipt = await connectors[name].deliver(delivery_of(birth_dossier(1)))

    assert receipt.status is not None
    partner = signatures[name]
    assert partner.refused == 0
    assert partner.verified == len(recorded) >= 1
    assert set(partner.signed_by) == {AGENCY}
    for exchange in recorded:
        assert exchange["connector"] == name
        assert exchange["signed_as"] == AGENCY
        assert exchange["reply_verified"] is True
        assert exchange["reply_key_id"] == PARTNER_KEY_ID
        request = exchange["request_signature"]
        assert f'keyid="{AGENCY}"' in request["signature-input"]
        assert "nonce=" in request["signature-input"]
        assert request["content-digest"].startswith("sha-256=:")
        reply = exchange["reply_signature"]
        assert reply["request-hash"].startswith("sha-256=:")
        assert f'keyid="{PARTNER_KEY_ID}"' in reply["signature-input"]


@pytest.mark.parametrize("forgery", ["unsigned", "wrong_key", "wrong_request"])
@pytest.mark.parametrize("name", PARTNERS)
async def test_an_answer_that_fails_its_signature_is_refused_as_untrusted(
    name: str,
    forgery: Forgery,
    connectors: dict[str, Connector],
    signatures: dict[str, PartnerSignatures],
) -> None:
    """An answer unsigned, signed by a key the bus was not given, or naming another request is
    a permanent UNTRUSTED_REPLY (parked, not retried), and the exchange is kept as failed."""
    signatures[name].forgery = forgery
    with recording_signatures() as recorded, pytest.raises(UntrustedReply) as raised:
        await connectors[name].deliver(delivery_of(birth_dossier(2)))

    assert raised.value.fault_code == "UNTRUSTED_REPLY"
    assert raised.value.error_class == "permanent"
    assert PARTNER_KEY_ID in raised.value.message
    assert recorded[-1]["reply_verified"] is False
    assert (recorded[-1]["reply_signature"] is None) == (forgery == "unsigned")


@pytest.mark.parametrize("name", PARTNERS)
async def test_an_unsigned_error_answer_keeps_its_own_classification(
    name: str,
    connectors: dict[str, Connector],
    signatures: dict[str, PartnerSignatures],
    urls: dict[str, str],
) -> None:
    """A busy partner's 503 without a signature (a proxy in front of it, say) stays a transient
    PartnerUnavailable: it is retried, not parked as untrusted."""
    signatures[name].forgery = "unsigned"
    async with httpx.AsyncClient(base_url=urls[name]) as sim:
        (await sim.post("/_sim/faults", json={"error_rate": 1.0})).raise_for_status()
    with pytest.raises(PartnerUnavailable):
        await connectors[name].deliver(delivery_of(birth_dossier(3)))


@pytest.mark.parametrize("name", PARTNERS)
async def test_a_call_signed_by_an_agency_the_partner_does_not_know_is_refused(
    name: str,
    urls: dict[str, str],
    partner_key: Ed25519PrivateKey,
    signatures: dict[str, PartnerSignatures],
    states: dict[str, Any],
) -> None:
    """Signed with a key the partner was never given: 401, a permanent rejection, unapplied."""
    connector = build(name, signing_config(name, urls[name], partner_key, agency=STRANGER))
    try:
        with pytest.raises(PartnerRejected) as raised:
            await connector.deliver(delivery_of(birth_dossier(4)))
    finally:
        await connector.aclose()
    assert raised.value.fault_code == "HTTP_401"
    assert signatures[name].refused >= 1
    assert signatures[name].verified == 0
    assert states[name].stats()["applied"] == 0


async def test_an_unsigned_call_to_a_signing_partner_is_refused(urls: dict[str, str]) -> None:
    """A connector without [signing] calling a partner that requires signatures: 401."""
    shipped = ConnectorConfig.from_file(
        ResidenceConnector.default_config, endpoint=urls["residence"]
    )
    connector = build("residence", shipped)
    try:
        with pytest.raises(PartnerRejected, match="HTTP 401"):
            await connector.deliver(delivery_of(birth_dossier(5)))
    finally:
        await connector.aclose()


async def test_the_partner_refuses_a_replayed_or_stale_call(
    urls: dict[str, str], keys_dir: Path, signatures: dict[str, PartnerSignatures]
) -> None:
    """The simulator checks like a partner must: the same signed call twice is refused the
    second time, and one signed long ago is refused at once."""
    key = load_agency_key(keys_dir, AGENCY)
    url = f"{urls['residence']}/api/v1/khong-ton-tai"
    signed = sign_request("GET", url, b"", key_id=AGENCY, key=key)
    stale = sign_request(
        "GET",
        url,
        b"",
        key_id=AGENCY,
        key=key,
        created=datetime.now(UTC) - timedelta(hours=1),
        nonce="stale-nonce-1",
    )
    async with httpx.AsyncClient() as client:
        first = await client.get(url, headers=signed)
        again = await client.get(url, headers=signed)
        old = await client.get(url, headers=stale)
    assert first.status_code != 401
    assert again.status_code == 401 and "replayed" in again.json()["message"]
    assert old.status_code == 401
    assert signatures["residence"].refused == 2


async def test_without_a_partner_key_answers_are_signed_but_not_checked(
    urls: dict[str, str], signatures: dict[str, PartnerSignatures]
) -> None:
    """[signing] without partner_key: the calls are signed, the answers recorded unchecked."""
    signatures["residence"].forgery = "wrong_key"
    connector = build("residence", signing_config("residence", urls["residence"], None))
    try:
        with recording_signatures() as recorded:
            receipt = await connector.deliver(delivery_of(birth_dossier(6)))
    finally:
        await connector.aclose()
    assert receipt.status is not None
    assert signatures["residence"].verified >= 1
    assert all(exchange["reply_verified"] is None for exchange in recorded)
    assert all(exchange["reply_key_id"] is None for exchange in recorded)


@pytest.mark.parametrize("name", PARTNERS)
def test_a_missing_agency_key_stops_the_connector_with_what_to_do(
    name: str, urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connector signing for an agency without a key does not start; the error says how."""
    monkeypatch.setenv(AGENCY_KEYS_DIR_ENV, str(tmp_path))
    with pytest.raises((AgencyKeyError, SoapSetupError), match=f"bus keys new {AGENCY}"):
        build(name, signing_config(name, urls[name], None))


def test_a_partner_key_that_is_not_ed25519_is_refused_when_read() -> None:
    with pytest.raises(ValidationError, match="Ed25519"):
        SigningPolicy(agency=AGENCY, partner_key="bm90IGEga2V5")


# --- a partner the bus polls (pull and acknowledge) -----------------------------------------


async def test_a_polled_partners_signed_pages_are_checked_and_kept_with_each_record(
    keys_dir: Path, partner_key: Ed25519PrivateKey, sqlite_url: str
) -> None:
    """The judicial-records list is asked for and acknowledged with signed calls; each page's
    signed answer is verified and kept with the hop of every record read from it. A forged
    page stops the poll before anything is applied or acknowledged."""
    partner = PartnerSignatures(
        trusted={AGENCY: load_agency_key(keys_dir, AGENCY).public_key()},
        key_id=PARTNER_KEY_ID,
        key=partner_key,
    )
    state = JudicialState(seed=5)
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    dossier = sample_birth_dossier(sequence=7)
    request = build_ingest_request(
        dossier, Submission(received_at=datetime.now(UTC), request_bytes=1), events_exchange="t"
    )
    await write_ingest_batch(writer(engine), [request])
    try:
        with serve_app(partner.wrap(judicial_app(state))) as url:
            shipped = ConnectorConfig.from_file(
                JudicialRecordsConnector.default_config, endpoint=url
            )
            policy = SigningPolicy(
                agency=AGENCY,
                partner_key=public_key_text(partner_key.public_key()),
                partner_key_id=PARTNER_KEY_ID,
            )
            connector = JudicialRecordsConnector(shipped.model_copy(update={"signing": policy}))
            settings = PollSettings(
                interval_seconds=0.1, window_days=7, page_size=10,
                start=datetime.now(UTC) - timedelta(hours=1),
            )  # fmt: skip
            try:
                state.add(dossier.code, 3, datetime.now(VN_TZ).date())
                partner.forgery = "wrong_request"
                with pytest.raises(UntrustedReply):
                    await Poller(connector, engine, exchange="t", settings=settings).poll_once()
                assert state.stats()["acknowledged"] == 0
                partner.forgery = None
                report = await Poller(
                    connector, engine, exchange="t", settings=settings
                ).poll_once()
            finally:
                await connector.aclose()
        assert report.outcomes == {"applied": 1}
        assert state.stats()["acknowledged"] == 1
        assert partner.refused == 0 and set(partner.signed_by) == {AGENCY}
        async with engine.connect() as connection:
            (kept,) = (
                await connection.execute(sa.select(hops.c.signatures).where(hops.c.kind == "poll"))
            ).scalars()
        assert kept and all(exchange["reply_verified"] is True for exchange in kept)
        assert kept[0]["method"] in ("GET", "POST")
    finally:
        await engine.dispose()
