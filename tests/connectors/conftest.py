"""Fixtures every connector test module shares; each module serves its simulator as ``base_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def sim(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the module's simulator, for its switches and direct calls."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client
