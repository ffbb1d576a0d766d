"""What the connector checks on the civil-status software's answer before the mapping reads it.

The translation itself is declarative, in ``mappings/civil_status/``, and the SOAP exchange is
the generic kit's (:mod:`bus.soap`). What stays here is the protocol around them: the answer
must be an object, ``trangThai`` 0 is a refusal (never a status), and the partner's free text is
masked before it reaches a receipt, a log or an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from contracts import mask_personal_numbers

__all__ = [
    "PARTNER_STATUS_ERROR",
    "MalformedAnswer",
    "PartnerAnswer",
    "read_answer",
]

PARTNER_STATUS_ERROR: Final = 0
"""``trangThai`` 0: the partner refused the request."""

_MAX_MESSAGE: Final = 500
# 9 digits (old identity card), 12 (CCCD), the typos in between and around, and phone numbers;
# dates (8 or 14 digits) stay readable.


class MalformedAnswer(ValueError):
    """Raised when the partner's answer is not the object the protocol promises."""


@dataclass(frozen=True, slots=True)
class PartnerAnswer:
    """The partner's answer to ``dangKyHoTich`` as a dict, before the mapping reads it."""

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
        return mask_personal_numbers(text[:_MAX_MESSAGE]) if isinstance(text, str) else None


def read_answer(body: object) -> PartnerAnswer:
    """Read the answer the SOAP kit returned; raise :class:`MalformedAnswer` unless an object."""
    if not isinstance(body, dict):
        raise MalformedAnswer(f"answer is not an object but {type(body).__name__}")
    return PartnerAnswer(body)
