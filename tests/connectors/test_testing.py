"""bus.testing: serving an ASGI app on loopback for connector tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from bus.testing import ServerStartError, aserve_app, serve_app

_entered = threading.Event()


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app answering 200 "xin chào"."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": "xin chào".encode()})


async def hanging_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that never answers."""
    _entered.set()
    await asyncio.sleep(3600)


def test_serve_app_answers_on_a_free_loopback_port() -> None:
    """serve_app yields a loopback base URL that is already answering."""
    with serve_app(hello_app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(base_url + "/")
        assert response.text == "xin chào"


def test_serve_app_stops_listening_on_exit() -> None:
    """Once the block ends, the port refuses connections."""
    with serve_app(hello_app) as base_url:
        pass
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/", timeout=2)


def test_port_in_use_raises_server_start_error() -> None:
    """A port that is already taken raises ServerStartError instead of hanging."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError), serve_app(hello_app, port=port, log_level="critical"):
            pass


async def test_aserve_app_answers() -> None:
    """aserve_app is the async form of serve_app."""
    async with aserve_app(hello_app) as base_url, httpx.AsyncClient() as client:
        response = await client.get(base_url + "/")
    assert response.status_code == 200


async def test_exit_does_not_wait_for_a_hanging_request() -> None:
    """Leaving the block stops the server within seconds even if a request never finishes."""
    _entered.clear()
    async with httpx.AsyncClient(timeout=10) as client:
        async with aserve_app(hanging_app) as base_url:
            request = asyncio.create_task(client.get(base_url + "/"))
            assert await asyncio.to_thread(_entered.wait, 5)
            leaving = time.monotonic()
        assert time.monotonic() - leaving < 5
        # The cancelled request ends with a 500 or a dropped connection, never a hang.
        try:
            response = await asyncio.wait_for(request, 5)
        except httpx.TransportError:
            return
        assert response.status_code == 500
