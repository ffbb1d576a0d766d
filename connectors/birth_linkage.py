"""What the later steps of the birth linkage bundle share: the request, the call and the answer.

Residence and social insurance both take the birth certificate number produced by the
civil-status step, and both answer with a status their mapping reads. Until the linkage engine
hands over the civil-status step's ``partner_reference``, the number comes from the form key
``birth_certificate_number``.
"""

from __future__ import annotations

import logging
from typing import Any, Final, cast

from bus.connector import Delivery, DeliveryReceipt
from bus.errors import MappingError
from bus.mapping import MessageMapping
from bus.rest import MalformedReply, RestClient, RestReply, mask_personal_numbers, translate_errors
from contracts import Dossier, StatusChange

_log = logging.getLogger(__name__)

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


async def deliver_birth_step(
    client: RestClient,
    delivery: Delivery,
    *,
    path: str,
    request: MessageMapping,
    answer: MessageMapping,
    certificate_field: str,
    status_field: str,
) -> DeliveryReceipt:
    """One call of a later birth step: map the dossier, post it, read the answer.

    The form is mapped before any network call, so a MappingError never reaches the partner.
    The dossier code (``maHoSo``) makes the call idempotent on the partner's side, and the
    message id is the ``Idempotency-Key``; ``status_field`` names the partner's own status in
    the answer, kept in the receipt for the transaction log.
    """
    dossier = delivery.require_dossier()
    body = map_birth_request(request, dossier, certificate_field=certificate_field)
    reply = await client.request(
        "POST",
        path,
        json=body,
        headers={"Idempotency-Key": delivery.message_id},
        issue=dossier.code,
    )
    change = decode_answer(
        answer,
        reply,
        dossier_code=dossier.code,
        agency=client.config.agency,
        where=client.where(dossier.code),
    )
    fields: dict[str, Any] = reply.body
    already = fields.get("daTonTai") is True
    _log.info(
        "%s answered dossier %s (message %s, attempt %d): %s %s%s",
        client.config.id,
        dossier.code,
        delivery.message_id,
        delivery.attempt,
        status_field,
        fields.get(status_field),
        " (already done before)" if already else "",
    )
    extra = {"partner_status": str(fields.get(status_field))}
    if already:
        extra["already_registered"] = "true"
    if reply.session_renewed:
        extra["session_renewed"] = "true"
    return DeliveryReceipt(
        status=change.status,
        sent_at=reply.sent_at,
        answered_at=reply.answered_at,
        partner_reference=change.partner_reference,
        note=None if change.note is None else mask_personal_numbers(change.note),
        request_size=reply.request_size,
        response_size=reply.response_size,
        mapping_version=request.ref,
        extra=extra,
    )
