"""What the connector checks on the civil-status software's answer before the mapping reads it.

The translation itself is declarative, in ``mappings/civil_status/``. What stays here is the
protocol around it: the answer must be a JSON object, ``trangThai`` 0 is a refusal (never a
status), and the partner's free text is masked before it reaches a receipt, a log or an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from contracts import mask_citizen_id

__all__ = [
    "PARTNER_STATUS_ERROR",
    "MalformedAnswer",
    "PartnerAnswer",
    "mask_identity_numbers",
    "partner_message",
    "read_answer",
]

PARTNER_STATUS_ERROR: Final = 0
"""``trangThai`` 0: the partner refused the request."""

_MAX_MESSAGE: Final = 500
# 9 digits (old identity card), 12 (CCCD), the typos in between and around, and phone numbers;
# dates (8 or 14 digits) stay readable.
_PERSONAL_NUMBER: Final = re.compile(r"(?<!\d)\d{9,13}(?!\d)")


class MalformedAnswer(ValueError):
    """Raised when the partner's answer is not the JSON object the protocol promises."""


@dataclass(frozen=True, slots=True)
class PartnerAnswer:
    """The partner's JSON answer to ``dangKyHoTich``, before the mapping reads it."""

    body: dict[str, Any]

    @property
    def refused(self) -> bool:
        """Whether the partner refused the dossier (``trangThai`` 0, as a number or text)."""
        status = self.body.get("trangThai")
        # bool is an int in Python, and False must not pass for a refusal.
        return not isinstance(status, bool) and status in (PARTNER_STATUS_ERROR, "0")

    @property
    def partner_status(self) -> str:
        """``trangThai`` as text, for the receipt."""
        return str(self.body.get("trangThai"))

    @property
    def dossier_code(self) -> str | None:
        """The dossier the answer is about (``maHoSo``), when the partner names one."""
        value = self.body.get("maHoSo")
        if value is not None and not isinstance(value, str):
            raise MalformedAnswer(f"answer field maHoSo is not a string but {type(value).__name__}")
        return value or None

    @property
    def already_registered(self) -> bool:
        """Whether the partner says it had registered this dossier before (``daTonTai``)."""
        return self.body.get("daTonTai") is True

    @property
    def message(self) -> str | None:
        """The partner's own words (``moTa``), masked and cut short."""
        text = self.body.get("moTa")
        return mask_identity_numbers(text[:_MAX_MESSAGE]) if isinstance(text, str) else None


def read_answer(content: bytes) -> PartnerAnswer:
    """Read the partner's answer; raise :class:`MalformedAnswer` when it is not a JSON object."""
    try:
        payload = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedAnswer(f"answer is not JSON: {_snippet(content)}") from exc
    if not isinstance(payload, dict):
        raise MalformedAnswer(f"answer is not a JSON object: {_snippet(content)}")
    return PartnerAnswer(payload)


def partner_message(content: bytes) -> str:
    """The partner's own words from an error answer: ``moTa`` when it sent JSON, else a snippet."""
    try:
        payload = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _snippet(content)
    if isinstance(payload, dict):
        message = PartnerAnswer(payload).message
        if message is not None:
            return message
    return _snippet(content)


def mask_identity_numbers(text: str) -> str:
    """Mask every run of 9 to 13 digits (identity and phone numbers) in free text."""
    return _PERSONAL_NUMBER.sub(lambda match: mask_citizen_id(match.group()), text)


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", errors="replace")
    return repr(mask_identity_numbers(text) + ("…" if len(content) > limit else ""))
