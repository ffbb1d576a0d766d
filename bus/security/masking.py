"""Personal numbers never reach a log line: every record is masked as it is made.

Connectors already mask what they put in notes and errors (:func:`contracts.mask_personal_numbers`);
this is the net under them, for what nobody thought of: an exception from a library that quotes
its input, a partner's error echoed in a traceback. It wraps the logging module's record factory,
so it applies to every logger and every handler of the process (a handler-level filter would miss
handlers added later, such as a test's capture), and only to records a logger actually emits.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Final

from contracts import mask_personal_numbers

__all__ = ["PAYLOAD_LOGGERS", "install_log_masking", "quiet_payload_loggers"]

_MARK: Final = "_masks_personal_numbers"

PAYLOAD_LOGGERS: Final = (
    "aiormq",
    "aio_pika",
    "aiosqlite",
    "asyncpg",
    "httpcore",
    "httpx",
    "sqlalchemy.engine",
    "zeep",
)
"""Libraries that write whole message bodies or query parameters at DEBUG: dossiers, with their
citizens' names, which no pattern can recognise. They log warnings and errors only."""


def quiet_payload_loggers() -> None:
    """Keep :data:`PAYLOAD_LOGGERS` at WARNING, whatever level the process logs at."""
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def install_log_masking() -> None:
    """Mask identity and phone numbers in every log record made from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record  # a broken format string: the logging module reports it as such
        record.msg, record.args = mask_personal_numbers(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Formatted now, so that the handler's formatter uses the masked text.
            record.exc_text = mask_personal_numbers(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            )
        if record.stack_info:
            record.stack_info = mask_personal_numbers(record.stack_info)
        return record

    setattr(masked_record, _MARK, True)
    logging.setLogRecordFactory(masked_record)
