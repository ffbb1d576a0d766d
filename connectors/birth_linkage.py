"""What the later steps of the birth linkage bundle share: the request and the answer handling.

Residence and social insurance both take the birth certificate number produced by the
civil-status step, and both answer with a status their mapping reads. Until the linkage engine
hands over the civil-status step's ``partner_reference``, the number comes from the form key
``birth_certificate_number``.
"""

from __future__ import annotations

from typing import Any, Final, cast

from bus.errors import MappingError
from bus.mapping import MessageMapping
from bus.rest import MalformedReply, RestReply, mask_personal_numbers, translate_errors
from contracts import Dossier, StatusChange

BIRTH_CERTIFICATE_KEY: Final = "birth_certificate_number"
"""The form key (and mapping context value) of the birth certificate number from step 1."""


def map_birth_request(
    mapping: MessageMapping, dossier: Dossier, *, certificate_field: str
) -> dict[str, Any]:
    """The partner's request body; a form the mapping cannot translate is FORM_INVALID.

    ``certificate_field`` names the partner field that carries the certificate number, for the
    error raised when the form has none.
    """
    number = dossier.form.get(BIRTH_CERTIFICATE_KEY)
    if not isinstance(number, str) or not number.strip():
        raise MappingError(
            f"dossier {dossier.code}: {mapping.ref}: no birth certificate number: the form key "
            f"{BIRTH_CERTIFICATE_KEY} (the civil-status step's partner_reference) is "
            f"{'missing' if number is None else 'not a non-empty string'}",
            fault_code="FORM_INVALID",
            mapping=mapping.ref,
            source_path=f"form.{BIRTH_CERTIFICATE_KEY}",
            target_field=certificate_field,
        )
    try:
        return mapping.apply(
            dossier.model_dump(mode="json"), {BIRTH_CERTIFICATE_KEY: number.strip()}
        )
    except MappingError as exc:
        raise MappingError(
            f"dossier {dossier.code}: {mask_personal_numbers(exc.message)}",
            fault_code="FORM_INVALID",
            mapping=exc.mapping,
            source_path=exc.source_path,
            target_field=exc.target_field,
            value=exc.value,
        ) from exc


def decode_answer(
    answer_mapping: MessageMapping, reply: RestReply, *, dossier_code: str, agency: str, where: str
) -> StatusChange:
    """The partner's answer as a status change; one the mapping cannot read is MALFORMED_REPLY."""
    with translate_errors(where):
        answer: dict[str, Any] = reply.body
        named = answer.get("maHoSo")
        if named not in (None, "", dossier_code):
            raise MalformedReply(f"answer is about dossier {named!r}, not {dossier_code}")
        # The partner may leave out maHoSo: the answer is then about the dossier it was sent.
        source = {**answer, "maHoSo": dossier_code}
        try:
            change = answer_mapping.to_canonical(source, {"agency": agency})
        except MappingError as exc:
            raise MalformedReply(str(exc)) from exc
    return cast(StatusChange, change)
