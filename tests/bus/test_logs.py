"""Structured logs: the bound dossier, message, run and trace on every line, in JSON or text;
the trace carried on to partner calls as a child span."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from bus.logs import (
    JsonFormatter,
    TextFormatter,
    about,
    configure_logging,
    current_context,
    propagate_trace,
    trace_headers,
)

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CODE = "000.00.10.H12-240315-0001"


def _record(message: str = "delivered") -> logging.LogRecord:
    return logging.LogRecord("bus.worker", logging.INFO, __file__, 1, message, None, None)


def _formatted(formatter: logging.Formatter) -> str:
    configure_logging(logging.INFO, "json", "test")  # installs the context filter
    handler = logging.getLogger().handlers[0]
    record = _record()
    handler.filter(record)
    return formatter.format(record)


def test_a_json_line_carries_the_bound_context() -> None:
    with about(dossier=CODE, message_id="m-1", correlation_id="run-1", traceparent=TRACE):
        line = orjson.loads(_formatted(JsonFormatter("worker")))
    assert line["message"] == "delivered" and line["level"] == "info"
    assert line["process"] == "worker" and line["logger"] == "bus.worker"
    assert line["dossier"] == CODE and line["message_id"] == "m-1"
    assert line["correlation_id"] == "run-1"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == "00f067aa0ba902b7"
    assert line["time"].endswith("+00:00")


def test_outside_any_context_the_fields_are_left_out() -> None:
    line = orjson.loads(_formatted(JsonFormatter("api")))
    assert "dossier" not in line and "trace_id" not in line
    assert _formatted(TextFormatter()).endswith("bus.worker: delivered")


def test_a_text_line_ends_with_the_fields() -> None:
    with about(dossier=CODE, message_id="m-1"):
        text = _formatted(TextFormatter())
    assert text.endswith(f"delivered [dossier={CODE} message_id=m-1]")


def test_binding_nests_and_keeps_what_it_does_not_override() -> None:
    with about(dossier=CODE, traceparent=TRACE):
        with about(message_id="m-2"):
            inner = current_context()
        outer = current_context()
    assert (inner.dossier, inner.message_id, inner.trace_id) == (CODE, "m-2", TRACE.split("-")[1])
    assert outer.message_id is None
    assert current_context().dossier is None


async def test_tasks_started_inside_see_the_context() -> None:
    async def seen() -> str | None:
        return current_context().dossier

    with about(dossier=CODE):
        task = asyncio.create_task(seen())
    assert await task == CODE


async def test_a_partner_call_carries_a_child_span_of_the_bound_trace() -> None:
    assert trace_headers() == {}
    with about(traceparent=TRACE):
        header = trace_headers()["traceparent"]
        request = httpx.Request("POST", "http://127.0.0.1:9/x")
        await propagate_trace(request)
    version, trace_id, span_id, flags = header.split("-")
    assert (version, trace_id, flags) == ("00", TRACE.split("-")[1], "01")
    assert span_id != TRACE.split("-")[2] and len(span_id) == 16
    assert request.headers["traceparent"].split("-")[1] == trace_id


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
