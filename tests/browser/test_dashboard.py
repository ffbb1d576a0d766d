"""The dashboard in a real browser against a real bus: sign-in, the day's flow and the 766
figures of a dossier just pushed, a dead letter replayed from the page, the English switch, the
operators-only panel, and hostile values shown as text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import Page, Route, expect

from bus.dead_letters import DeadLetterKeeper
from bus.worker import ConnectorWorker
from connectors.civil_status.simulator import SimulatorFaults
from contracts import sample_birth_dossier_json
from tests.browser.conftest import PORTAL, PORTAL_SECRET
from tests.conftest import TEST_AGENCY, TEST_OPERATOR, TEST_OPERATOR_SECRET
from tests.integration.conftest import Simulator
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker


async def _push(client: httpx.AsyncClient, sequence: int) -> str:
    """A birth dossier received now (so it is in today's flow); its code."""
    body = sample_birth_dossier_json(sequence, received_at=datetime.now(UTC))
    answer = await client.post("/v1/dossiers", json=body)
    assert answer.status_code == 202, answer.text
    code: str = answer.json()["dossier_code"]
    return code


async def _status(client: httpx.AsyncClient, code: str) -> int:
    status: int = (await client.get(f"/v1/dossiers/{code}")).json()["state"]["status"]
    return status


async def _reaches(client: httpx.AsyncClient, code: str, status: int) -> None:
    async def reached() -> bool:
        return await _status(client, code) == status

    await wait_for(reached, timeout=20)


async def _sign_in(page: Page, api: str, client_id: str, secret: str) -> None:
    await page.goto(f"{api}/dashboard/")
    await page.fill("#client-id", client_id)
    await page.fill("#client-secret", secret)
    await page.click("#sign-in-button")
    await expect(page.locator("#board")).to_be_visible()
    await page.wait_for_selector("body[data-loaded=true]")


async def test_the_dashboard_loads_and_signs_in_with_client_credentials(
    page: Page, api: str
) -> None:
    """A wrong secret is refused on the page; the right one opens the board, with the token
    (never the secret) in the tab's session storage, and signing out closes it."""
    await page.goto(f"{api}/dashboard")  # redirected to /dashboard/
    await expect(page.locator("h1")).to_have_text("Bảng điều khiển trục liên thông")
    await page.fill("#client-id", TEST_OPERATOR.id)
    await page.fill("#client-secret", "not-the-secret")
    await page.click("#sign-in-button")
    await expect(page.locator("#sign-in-error")).to_have_text(
        "Mã ứng dụng hoặc khóa bí mật không đúng."
    )
    await expect(page.locator("#board")).to_be_hidden()

    await page.fill("#client-secret", TEST_OPERATOR_SECRET)
    await page.click("#sign-in-button")
    await expect(page.locator("#who")).to_have_text(f"Đăng nhập với: {TEST_OPERATOR.id}")
    await page.wait_for_selector("body[data-loaded=true]")
    stored = await page.evaluate("JSON.stringify(sessionStorage)")
    assert "access_token" not in stored and "token" in stored
    assert TEST_OPERATOR_SECRET not in stored
    assert await page.input_value("#client-secret") == ""
    await expect(page.locator("#connectors tr[data-connector=civil_status]")).to_be_visible()

    await page.reload()  # the session outlives a reload of the tab
    await expect(page.locator("#board")).to_be_visible()
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_a_pushed_dossier_shows_in_the_flow_the_figures_and_connector_health(
    page: Page, api: str, client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """A birth dossier received online today and registered: one dossier at status 9 in the
    day's flow, 100 % online and on time in its commune's and agency's 766 rows (and bars),
    and the civil-status connector ok with one delivery."""
    code = await _push(client, 41)
    await _reaches(client, code, 9)
    await _sign_in(page, api, TEST_OPERATOR.id, TEST_OPERATOR_SECRET)

    flow = page.locator(f"#flow tr[data-receiving-agency='{TEST_AGENCY}']")
    await expect(flow).to_have_count(1)
    await expect(flow.locator("td")).to_have_text([TEST_AGENCY, TEST_AGENCY, "1", "1"])
    await expect(page.locator("#flow th[data-status='9']")).to_have_text("Đã xử lý xong")
    await expect(page.locator("#flow .summary")).to_contain_text("Đã tiếp nhận 1 hồ sơ")

    commune = page.locator("#stats-commune tr[data-key='00001'] td")
    # commune, received, online, online share, finished, on time, late, on-time rate, overdue
    await expect(commune).to_have_text(["00001", "1", "1", "100%", "1", "1", "0", "100%", "0"])
    # The sample's desk handles it too.
    agency = page.locator(f"#stats-agency tr[data-key='{TEST_AGENCY}'] td")
    await expect(agency.nth(1)).to_have_text("1")
    for panel in ("#stats-commune", "#stats-agency"):
        bars = page.locator(f"{panel} svg.chart rect.online[data-value]")
        await expect(bars).to_have_count(1)
        # A full bar: the whole track's width (100 % online).
        await expect(bars).to_have_attribute("data-value", "1")
        assert await bars.get_attribute("width") == "360"

    civil_status = page.locator("#connectors tr[data-connector=civil_status]")
    await expect(civil_status).to_have_attribute("data-health", "ok")
    await expect(civil_status.locator("td").nth(1)).to_have_text("Bình thường")
    await expect(civil_status.locator("td").nth(3)).to_have_text("1")


async def test_a_dead_letter_replayed_from_the_page_is_delivered_once(
    page: Page,
    api: str,
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    keeper: DeadLetterKeeper,
    simulator: Simulator,
) -> None:
    """The partner refuses a dossier (SOAP client fault): it is parked and listed on the page,
    its connector failing. The partner fixed, the operator clicks Replay: the partner applies it
    once, it reaches status 9, and the list no longer shows it."""
    simulator.state.set_faults(SimulatorFaults(client_fault=True))
    code = await _push(client, 42)

    async def parked() -> bool:
        page_ = (await client.get("/v1/dead-letters", params={"dossier_code": code})).json()
        return bool(page_["total"])

    await wait_for(parked, timeout=20)
    await _sign_in(page, api, TEST_OPERATOR.id, TEST_OPERATOR_SECRET)
    row = page.locator(f"#dead-letters tr[data-dossier-code='{code}']")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(1)).to_have_text("civil_status")
    civil_status = page.locator("#connectors tr[data-connector=civil_status]")
    await expect(civil_status).to_have_attribute("data-health", "failing")
    assert simulator.state.stats()["applied"] == 0

    simulator.state.set_faults(SimulatorFaults())
    await row.locator("button.replay").click()
    await expect(page.locator("#dead-letters .action-message")).to_contain_text(
        "Đã gửi lại thông điệp"
    )
    await expect(row).to_have_count(0)
    await _reaches(client, code, 9)
    stats = simulator.state.stats()
    assert stats["applied"] == 1 and stats["applied_codes"] == [code]
    left = (await client.get("/v1/dead-letters", params={"state": "any"})).json()
    assert [(d["dossier_code"], d["state"]) for d in left["dead_letters"]] == [(code, "replayed")]

    await page.click("#refresh")
    await expect(civil_status).to_have_attribute("data-health", "ok")


async def test_the_english_switch_changes_the_labels_and_is_remembered(
    page: Page, api: str, client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """Vietnamese by default; English after the switch, for the headings, the status labels
    and the health words, and still English after a reload; back to Vietnamese on demand."""
    code = await _push(client, 43)
    await _reaches(client, code, 9)
    await _sign_in(page, api, TEST_OPERATOR.id, TEST_OPERATOR_SECRET)
    heading = page.locator("#flow-panel h2")
    status = page.locator("#flow th[data-status='9']")
    health = page.locator("#connectors tr[data-connector=civil_status] td").nth(1)
    await expect(heading).to_have_text("Hồ sơ tiếp nhận trong ngày")
    await expect(status).to_have_text("Đã xử lý xong")

    await page.click("#language")
    await expect(heading).to_have_text("Dossiers received on the day")
    await expect(status).to_have_text("Processed")
    await expect(health).to_have_text("OK")
    await expect(page.locator("#stats-panel h2")).to_have_text(
        "Service-quality indicators (766 index)"
    )
    await expect(page.locator("#language")).to_have_text("Tiếng Việt")
    assert await page.evaluate("document.documentElement.lang") == "en"

    await page.reload()
    await expect(heading).to_have_text("Dossiers received on the day")
    await expect(page.locator("#sign-out")).to_have_text("Sign out")
    await page.click("#language")
    await expect(heading).to_have_text("Hồ sơ tiếp nhận trong ngày")


async def test_a_client_that_is_not_an_operator_sees_why_dead_letters_are_hidden(
    page: Page, api: str
) -> None:
    """The portal reads every dossier, so the flow and the figures load; dead letters answer
    403, and the panel says they are for operators."""
    await _sign_in(page, api, PORTAL.id, PORTAL_SECRET)
    forbidden = page.locator("#dead-letters .forbidden")
    await expect(forbidden).to_contain_text("Chỉ người vận hành (operator)")
    await expect(forbidden).to_contain_text(f"client {PORTAL.id} is not an operator")
    await expect(page.locator("#dead-letters table")).to_have_count(0)
    await expect(page.locator("#flow .error")).to_have_count(0)
    await expect(page.locator("#connectors table")).to_be_visible()


HOSTILE = '<img src=x onerror="window.pwned=1">'


async def test_hostile_values_are_shown_as_text(page: Page, api: str) -> None:
    """Values from the API that look like markup (a partner's fault text, a dossier code) are
    shown as they are: no element is made from them and no script runs."""
    alert = {
        "dossier_code": HOSTILE,
        "kind": "overdue",
        "scope": "dossier",
        "step": None,
        "connector": None,
        "due_on": "2026-12-01",
        "raised_at": "2026-12-02T01:00:00Z",
        "event_id": "e",
        "procedure_code": HOSTILE,
        "receiving_agency": TEST_AGENCY,
        "handling_agency": HOSTILE,
        "status": 4,
        "status_label": "Processing",
    }
    letter = {
        "id": 7,
        "message_id": "m",
        "dossier_code": HOSTILE,
        "connector": HOSTILE,
        "procedure_code": "1.001193",
        "event_type": None,
        "queue": None,
        "error_class": "permanent",
        "fault_code": HOSTILE,
        "reason": f"partner said: {HOSTILE}<script>window.pwned=2</script>",
        "attempts": 1,
        "replays": 0,
        "parked_at": "2026-12-02T01:00:00Z",
        "state": "parked",
        "resolved_at": None,
        "resolved_by": None,
        "resolution_note": None,
    }

    async def alerts(route: Route) -> None:
        await route.fulfill(json={"alerts": [alert]})

    async def dead_letters(route: Route) -> None:
        body = {"total": 1, "dead_letters": [letter], "next_before_id": None}
        await route.fulfill(body=json.dumps(body), content_type="application/json")

    await page.route("**/v1/alerts?*", alerts)
    await page.route("**/v1/dead-letters?*", dead_letters)
    await _sign_in(page, api, TEST_OPERATOR.id, TEST_OPERATOR_SECRET)
    await expect(page.locator("#alerts td").nth(1)).to_have_text(HOSTILE)
    await expect(page.locator("#dead-letters td.reason")).to_contain_text("<script>")
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.pwned") is None
