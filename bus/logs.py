"""Structured logs: every line says which dossier, message, run and trace it is about.

Code that works on one message binds it (:func:`about`): the worker for each message it takes,
the API for each dossier or push it accepts, the poller for each record. Every log record made
inside, in this task or the tasks it starts, carries ``dossier``, ``message_id``,
``correlation_id``, ``trace_id`` and ``span_id`` (the W3C trace context the event carries, see
:func:`bus.events.child_traceparent`), so one ``grep`` on a dossier code or a trace id follows
a dossier through every process. ``BUS_LOG_FORMAT=json`` writes one JSON object per line for a
log pipeline; ``text`` writes the same fields after the message, for a terminal.

The same context is what a partner call passes on: :func:`trace_headers` gives the request's
``traceparent`` (a child span of the message's), so a partner that traces sees the bus's trace.
Log records are masked before any of this (:mod:`bus.security.masking`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Literal

import httpx
import orjson

from bus.events import child_traceparent

__all__ = [
    "LogContext",
    "LogFormat",
    "about",
    "configure_logging",
    "current_context",
    "propagate_trace",
    "trace_headers",
]

LogFormat = Literal["json", "text"]
#: The fields every line carries, in order ("-" when unknown).
FIELDS: Final = ("dossier", "message_id", "correlation_id", "trace_id", "span_id")


@dataclass(frozen=True, slots=True)
class LogContext:
    """What the code running now works on."""

    dossier: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id of ``traceparent``."""
        return _part(self.traceparent, 1)

    @property
    def span_id(self) -> str | None:
        """The W3C span (parent) id of ``traceparent``."""
        return _part(self.traceparent, 2)


#: Outside any :func:`about` (immutable, so one instance serves as the default everywhere).
_NOTHING: Final = LogContext()
_CONTEXT: ContextVar[LogContext] = ContextVar("bus_log_context", default=_NOTHING)


def _part(traceparent: str | None, index: int) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[index] if len(parts) == 4 else None


def current_context() -> LogContext:
    """The context bound now (empty fields outside any :func:`about`)."""
    return _CONTEXT.get()


@contextlib.contextmanager
def about(
    *,
    dossier: str | None = None,
    message_id: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> Iterator[LogContext]:
    """Bind these fields (the ones given; the others stay as bound) for the block."""
    given = {
        "dossier": dossier,
        "message_id": message_id,
        "correlation_id": correlation_id,
        "traceparent": traceparent,
    }
    bound = replace(_CONTEXT.get(), **{k: v for k, v in given.items() if v is not None})
    token = _CONTEXT.set(bound)
    try:
        yield bound
    finally:
        _CONTEXT.reset(token)


def trace_headers() -> dict[str, str]:
    """The ``traceparent`` of an outgoing call: a new span in the bound message's trace."""
    traceparent = _CONTEXT.get().traceparent
    return {} if traceparent is None else {"traceparent": child_traceparent(traceparent)}


async def propagate_trace(request: httpx.Request) -> None:
    """An httpx request hook: carry the bound trace to the partner (unless already set)."""
    if "traceparent" not in request.headers:
        request.headers.update(trace_headers())


class _WithContext(logging.Filter):
    """Adds the bound context's fields to each record (a handler filter: every record passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        values = {
            "dossier": context.dossier,
            "message_id": context.message_id,
            "correlation_id": context.correlation_id,
            "trace_id": context.trace_id,
            "span_id": context.span_id,
        }
        for name, value in values.items():
            if not hasattr(record, name) or getattr(record, name) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message, the context fields,
    and the traceback when there is one."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self._process = process_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self._process,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode("utf-8")


class TextFormatter(logging.Formatter):
    """``time level logger: message [dossier=… message_id=… trace_id=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}"
            for name in FIELDS
            if getattr(record, name, None) is not None and name != "span_id"
        ]
        if not fields:
            return text
        first, _, rest = text.partition("\n")
        return f"{first} [{' '.join(fields)}]" + (f"\n{rest}" if rest else "")


def configure_logging(level: int, log_format: LogFormat, process_name: str) -> None:
    """Log to standard error in ``log_format``, every record with its context."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_WithContext())
    formatter: logging.Formatter = (
        JsonFormatter(process_name) if log_format == "json" else TextFormatter()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
