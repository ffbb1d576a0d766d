"""The base model of every contract: closed to unknown fields, and quiet about personal data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ContractModel(BaseModel):
    """Base of the canonical models; a typo in a field name is an error, not a silent drop."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        frozen=False,
        # Validation errors end up in logs and dead-letter reasons; the inputs they would quote
        # are citizens' names, CCCDs and phone numbers. exc.errors() still carries them for code.
        hide_input_in_errors=True,
    )
