"""A served bus and Debian's headless Chromium, driven by Playwright, for the dashboard's tests.

The browser is the system's (``/usr/bin/chromium``, installed by ``scripts/ensure-chromium.sh``),
never one Playwright downloads. The bus is the integration tests' (simulator, API over real HTTP,
the birth bundle's workers), with two clients: the test operator and a portal that reads every
dossier but is no operator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bus.dead_letters import DeadLetterKeeper
from bus.runtime import Runtime
from bus.security.clients import AgencyClient, ClientDirectory, ReadScope, hash_secret, save_clients
from bus.settings import Settings
from tests.conftest import TEST_OPERATOR
from tests.integration.conftest import (
    LinkagePartners,
    Simulator,
    api,
    client,
    partner_settings,
    partners,
    simulator,
    workers,
)

__all__ = ["api", "client", "partners", "simulator", "workers"]

CHROMIUM = Path("/usr/bin/chromium")
PORTAL_SECRET = "test-portal-" + "1" * 40
#: Reads every dossier (the statistics, the flow) but is no operator: no dead letters.
PORTAL = AgencyClient(
    id="test-portal",
    name="Cổng dịch vụ công (test)",
    agency="000.00.00.G22",
    secret_sha256=(hash_secret(PORTAL_SECRET),),
    read=ReadScope.ALL,
    subscribe=("dossier.status.#",),
)


@pytest.fixture
def settings(
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
    tmp_path: Path,
) -> Settings:
    """The integration tests' bus, with the operator and the portal as its clients."""
    clients_file = tmp_path / "clients.yaml"
    save_clients(clients_file, ClientDirectory((TEST_OPERATOR, PORTAL)))
    return partner_settings(
        namespace, sqlite_url, simulator, partners, clients_file=str(clients_file)
    )


@pytest.fixture
async def keeper(settings: Settings, api: str) -> AsyncIterator[DeadLetterKeeper]:
    """The dead-letter keeper, as every ``bus worker`` runs it."""
    runtime = await Runtime.open(settings, name="test-keeper")
    keeper = DeadLetterKeeper(runtime)
    await keeper.start()
    yield keeper
    await keeper.stop()
    await runtime.close()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system's Chromium, or a failure saying how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (or make test)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Debian's headless Chromium, one for the session."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab (its own storage), failing the test on any error the page's script raises."""
    context = await browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"the page's script failed: {errors}"
