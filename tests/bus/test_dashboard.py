"""The dashboard's static files: served with their security headers, no way for data to become
markup, and words that match the contracts (status labels) in both languages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from bus.dashboard import DASHBOARD_PATH, STATIC_DIR, dashboard_files
from contracts import DossierStatus

I18N = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
SCRIPTS = sorted(STATIC_DIR.glob("*.js"))


def _block(source: str, opening: str, closing: str) -> str:
    start = source.index(opening) + len(opening)
    return source[start : source.index(closing, start)]


def _messages(language: str) -> set[str]:
    """The message keys of one language in i18n.js (one ``key: …`` per line, 4 spaces in)."""
    messages = _block(I18N, "const MESSAGES = {", "\n};")
    section = _block(messages, f"\n  {language}: {{", "\n  },")
    return set(re.findall(r"^    (\w+):", section, flags=re.MULTILINE))


@pytest.fixture
async def served() -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard mounted as the bus mounts it."""
    app = Starlette(routes=[Mount(DASHBOARD_PATH, dashboard_files())])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bus") as client:
        yield client


async def test_the_page_is_served_with_a_strict_content_security_policy(
    served: httpx.AsyncClient,
) -> None:
    """index.html at /dashboard/, its script as JavaScript, every answer with the headers that
    keep any other script and any framing site out."""
    page = await served.get("/dashboard/")
    assert page.status_code == 200 and 'src="app.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await served.get("/dashboard/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == policy
    assert (await served.get("/dashboard/missing.js")).status_code == 404


def test_the_page_has_no_inline_script_or_style() -> None:
    """The policy allows only the page's own files: an inline script would not run."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son\w+=", html) == []  # no inline event handler


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_no_script_turns_text_into_markup(script: Path) -> None:
    """Dossier data is hostile input: the page builds nodes and sets textContent only."""
    source = script.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, f"{script.name} uses {sink}"


def test_status_labels_are_the_contracts() -> None:
    """The page's labels of the ten national statuses are contracts/status.py's, both ways."""
    for language, attribute in (("vi", "label_vi"), ("en", "label_en")):
        block = _block(I18N, f"\n  {language}: {{", "\n  },")
        labels = dict(re.findall(r'^    (\d+): "([^"]*)",$', block, flags=re.MULTILINE))
        assert labels == {str(int(s)): getattr(s, attribute) for s in DossierStatus}


def test_every_word_exists_in_both_languages() -> None:
    """Each key the page uses is translated in Vietnamese and in English."""
    vietnamese, english = _messages("vi"), _messages("en")
    assert vietnamese == english and len(vietnamese) > 50
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n="(\w+)"', html))
    for script in SCRIPTS:
        used |= set(re.findall(r'\bt\("(\w+)"', script.read_text(encoding="utf-8")))
    assert used - vietnamese == set()
