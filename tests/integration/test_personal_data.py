"""No log line carries a citizen's identity number, phone number or name.

A birth and a death dossier run their whole linkage bundles against the simulators, while
partners refuse, answer garbage and choke, and the API is sent invalid dossiers; every record
logged meanwhile, at DEBUG, by every logger (the bus's, uvicorn's, httpx's, the libraries'), is
scanned for the personal data of the dossiers sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bus.settings import Settings
from connectors.residence.simulator import SimulatorFaults as ResidenceFaults
from contracts import mask_personal_numbers, sample_birth_dossier_json, sample_death_dossier_json
from tests.conftest import ALL_BUNDLES
from tests.integration.conftest import LinkagePartners, Simulator, partner_settings
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.broker]

_NAME_FIELDS = re.compile(r"(^|_)full_name$")


def _personal_data(document: Any, path: str = "") -> Iterator[str]:
    """Every identity number (12 digits), phone number and person's name in ``document``."""
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, str) and _NAME_FIELDS.search(key):
                yield value
            elif isinstance(value, str) and key == "phone":
                yield re.sub(r"\D", "", value)
                yield value
            else:
                yield from _personal_data(value, f"{path}.{key}")
    elif isinstance(document, list):
        for item in document:
            yield from _personal_data(item, path)
    elif isinstance(document, str) and re.fullmatch(r"\d{9,13}", document):
        yield document


@pytest.fixture
def settings(
    namespace: str,
    database_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
) -> Settings:
    """The integration bus running every bundle."""
    return partner_settings(
        namespace, database_url, simulator, partners, linkage_bundles=ALL_BUNDLES
    )


def test_masking_keeps_the_last_three_digits() -> None:
    assert mask_personal_numbers("CCCD 001090012345, ĐT 0912 345 678 / +84 983.456.789") == (
        "CCCD *********345, ĐT *******678 / ********789"
    )
    # Dossier codes, dates and times are not personal numbers.
    kept = "000.00.10.H12-240315-0001 at 20240315093000 on 2024-03-15, sha256 270cb4220612345"
    assert mask_personal_numbers(kept) == kept


async def test_no_log_line_carries_a_citizens_numbers_or_name(
    caplog: pytest.LogCaptureFixture,
    client: httpx.AsyncClient,
    workers: list[Any],
    simulator: Simulator,
    partners: LinkagePartners,
) -> None:
    caplog.set_level(logging.DEBUG)
    birth = sample_birth_dossier_json(sequence=61)
    death = sample_death_dossier_json(sequence=62)
    refused_birth = sample_birth_dossier_json(sequence=63)
    secrets = {value for doc in (birth, death) for value in _personal_data(doc)}
    assert len(secrets) >= 10, secrets  # the scan looks for something real

    # Invalid input: a malformed CCCD, and a phone where a CCCD belongs.
    broken = sample_birth_dossier_json(sequence=64)
    broken["applicant"]["identity_number"] = "00109001234"
    broken["form"]["mother_identity_number"] = "0912345678x"
    assert (await client.post("/v1/dossiers", json=broken)).status_code == 422
    # Partners misbehaving on a dossier: residence refuses it.
    partners.residence.faults = ResidenceFaults(reject_all=True)
    for dossier in (birth, death, refused_birth):
        answer = await client.post("/v1/dossiers", json=dossier)
        assert answer.status_code == 202, answer.text

    async def all_answered() -> bool:
        # Residence's refusal (DATA_INCORRECT) is parked for an operator, after civil status.
        codes = [birth["code"], death["code"], refused_birth["code"]]
        views = [(await client.get(f"/v1/dossiers/{code}")).json() for code in codes]
        return all(
            any(h["recipient"] == "residence" and h["outcome"] == "parked" for h in v["history"])
            for v in views
        )

    await wait_for(all_answered, timeout=60)
    logged = [record.getMessage() + "\n" + (record.exc_text or "") for record in caplog.records]
    codes = (birth["code"], death["code"], refused_birth["code"])
    assert all(any(code in line for line in logged) for code in codes), (
        "the scan needs the bus's logs about these dossiers to have been captured"
    )
    leaks = {secret for secret in secrets for line in logged if secret in line}
    assert not leaks, f"personal data in the logs: {sorted(leaks)}"
