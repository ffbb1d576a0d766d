"""Signed calls through the whole bus: API, broker, worker, and a civil-status partner that
checks the agency's signature and signs its answers.

The signatures of each exchange are sealed in the hop's audit record and listed by the dossier's
evidence export. An answer forged on the way parks the dossier as UNTRUSTED_REPLY, with the
failed exchange kept as evidence; once the partner answers properly again, the replayed dossier
completes, applied once by the partner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.api.app import create_app
from bus.audit.evidence import EvidenceExport, check_evidence
from bus.connector import SigningPolicy
from bus.dead_letters import DeadLetterKeeper
from bus.registry import ConnectorRegistry
from bus.runtime import Runtime
from bus.security.agency_keys import AGENCY_KEYS_DIR_ENV, create_agency_key, load_agency_key
from bus.security.signing import public_jwk, public_key_text
from bus.settings import Settings
from bus.testing import PartnerSignatures, serve_app
from bus.worker import run_workers
from connectors.civil_status import SimulatorState, create_simulator_app
from contracts import sample_birth_dossier_json
from tests.conftest import AUTH
from tests.integration.conftest import LinkagePartners, Simulator, partner_settings
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

AGENCY = "000.00.10.H12"
PARTNER_KEY_ID = "hotich-g12"


@dataclasses.dataclass
class SigningPartner:
    simulator: Simulator
    signatures: PartnerSignatures
    partner_key: Ed25519PrivateKey


@pytest.fixture
def signing_partner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SigningPartner]:
    """A civil-status simulator that trusts the agency's new key and signs its answers."""
    keys = tmp_path / "agency-keys"
    agency_key = create_agency_key(keys, AGENCY)
    monkeypatch.setenv(AGENCY_KEYS_DIR_ENV, str(keys))
    partner_key = Ed25519PrivateKey.generate()
    signatures = PartnerSignatures(
        trusted={AGENCY: agency_key.public_key()}, key_id=PARTNER_KEY_ID, key=partner_key
    )
    state = SimulatorState()
    with serve_app(signatures.wrap(create_simulator_app(state))) as url:
        yield SigningPartner(Simulator(url, state), signatures, partner_key)


@pytest.fixture
def settings(
    namespace: str,
    sqlite_url: str,
    signing_partner: SigningPartner,
    partners: LinkagePartners,
    broker_cleanup: list[str],
    tmp_path: Path,
) -> Settings:
    return partner_settings(
        namespace,
        sqlite_url,
        signing_partner.simulator,
        partners,
        agency_keys_dir=str(tmp_path / "agency-keys"),
    )


@pytest.fixture
def registry(settings: Settings, signing_partner: SigningPartner) -> ConnectorRegistry:
    """The shipped connectors, civil status signing for the agency (as its toml would say)."""
    shipped = ConnectorRegistry.discover(settings.connector_endpoints)
    policy = SigningPolicy(
        agency=AGENCY,
        partner_key=public_key_text(signing_partner.partner_key.public_key()),
        partner_key_id=PARTNER_KEY_ID,
    )
    registered = []
    for connector_id in shipped.ids:
        entry = shipped.get(connector_id)
        if connector_id == "civil_status":
            entry = dataclasses.replace(
                entry, config=entry.config.model_copy(update={"signing": policy})
            )
        registered.append(entry)
    return ConnectorRegistry(registered)


@pytest.fixture
async def bus(
    settings: Settings, registry: ConnectorRegistry
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The API and the civil-status worker, both with the signing registry."""
    with serve_app(create_app(settings, registry=registry), lifespan="on") as api:
        runtime = await Runtime.open(settings, name="test-worker", registry=registry)
        workers = await run_workers(runtime, ["civil_status"])
        async with httpx.AsyncClient(base_url=api, timeout=30, headers=AUTH) as client:
            yield client, runtime
        for worker in workers:
            await worker.stop()
        await runtime.close()


async def _submit(client: httpx.AsyncClient, sequence: int) -> str:
    answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence))
    assert answer.status_code == 202, answer.text
    code: str = answer.json()["dossier_code"]
    return code


async def _status(client: httpx.AsyncClient, code: str) -> int:
    status: int = (await client.get(f"/v1/dossiers/{code}")).json()["state"]["status"]
    return status


async def _evidence(client: httpx.AsyncClient, code: str) -> EvidenceExport:
    answer = await client.get(f"/v1/dossiers/{code}/evidence")
    assert answer.status_code == 200, answer.text
    export = EvidenceExport.model_validate_json(answer.content)
    assert check_evidence(export) is None
    return export


async def _parked_in_store(client: httpx.AsyncClient, code: str) -> dict[str, Any]:
    async def kept() -> dict[str, Any] | None:
        page: dict[str, Any] = (
            await client.get("/v1/dead-letters", params={"dossier_code": code})
        ).json()
        return page if page["dead_letters"] else None

    found: dict[str, Any] = await wait_for(kept, timeout=30)
    return found


def _exchanges(export: EvidenceExport) -> list[dict[str, Any]]:
    return [item.value for item in export.signatures.items if item.name.startswith("signatures[")]


async def test_signed_exchanges_are_sealed_and_exported_and_a_forged_answer_parks(
    bus: tuple[httpx.AsyncClient, Runtime], signing_partner: SigningPartner, tmp_path: Path
) -> None:
    client, runtime = bus
    partner = signing_partner.signatures
    codes = [await _submit(client, sequence) for sequence in (81, 82, 83)]

    async def all_registered() -> bool:
        return all([await _status(client, code) == 9 for code in codes])

    await wait_for(all_registered, timeout=30)
    assert partner.verified == 3 and partner.refused == 0
    assert partner.signed_by == [AGENCY] * 3

    # The agency's public key is published for partners to fetch.
    published = (await client.get("/v1/keys")).json()["keys"]
    agency_key = load_agency_key(tmp_path / "agency-keys", AGENCY).public_key()
    assert public_jwk(AGENCY, agency_key) in published

    export = await _evidence(client, codes[0])
    (exchange,) = _exchanges(export)
    assert exchange["connector"] == "civil_status"
    assert exchange["signed_as"] == AGENCY
    assert exchange["reply_verified"] is True
    assert exchange["reply_key_id"] == PARTNER_KEY_ID
    assert f'keyid="{AGENCY}"' in exchange["request_signature"]["signature-input"]
    assert exchange["reply_signature"]["request-hash"].startswith("sha-256=:")
    (sealed,) = [r for r in export.records if r.kind == "hop" and r.payload["signatures"]]
    assert (
        sealed.payload["recipient"] == "civil_status" and sealed.payload["outcome"] == "delivered"
    )

    # An answer signed with a key the bus was never given: parked, evidence kept.
    partner.forgery = "wrong_key"
    forged = await _submit(client, 84)

    async def parked() -> list[dict[str, Any]]:
        hops = (await client.get(f"/v1/dossiers/{forged}")).json()["history"]
        return [h for h in hops if h["outcome"] == "parked"]

    (hop,) = await wait_for(parked, timeout=30)
    assert hop["fault_code"] == "UNTRUSTED_REPLY"
    (failed,) = _exchanges(await _evidence(client, forged))
    assert failed["reply_verified"] is False
    assert signing_partner.simulator.state.stats()["applied"] == 4  # it did act on it

    # The partner answers properly again: the replayed dossier completes, applied once.
    partner.forgery = None
    keeper = DeadLetterKeeper(runtime)
    await keeper.start()
    try:
        [dead] = (await _parked_in_store(client, forged))["dead_letters"]
    finally:
        await keeper.stop()
    assert dead["fault_code"] == "UNTRUSTED_REPLY" and dead["error_class"] == "permanent"
    replayed = await client.post(f"/v1/dead-letters/{dead['id']}/replay")
    assert replayed.json()["done"] == [dead["id"]], replayed.text

    async def completed() -> bool:
        return await _status(client, forged) == 9

    await wait_for(completed, timeout=30)
    stats = signing_partner.simulator.state.stats()
    assert stats["applied"] == 4 and stats["duplicates"] == 1
    exchanges = _exchanges(await _evidence(client, forged))
    assert [e["reply_verified"] for e in exchanges] == [False, True]
