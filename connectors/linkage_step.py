"""What the connectors of linkage bundles share: choosing the operation, and the later steps' call.

A linkage step names an ``operation`` when its agency's system does several things (register a
permanent residence for a newborn, or remove a deceased's); :func:`for_operation` picks what a
connector does for it, and refuses, permanently, an operation the connector does not have.

The later steps of both national bundles are one REST call each (residence, social insurance):
they take a number an earlier step issued (the birth certificate number, the death extract
number), which the linkage engine has put in the dossier's form under the key the bundle's
``passes`` names, and they answer with a status their mapping reads. :func:`deliver_step` makes
that call for the :class:`StepCall` of the operation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from bus.connector import Delivery, DeliveryReceipt
from bus.errors import InvalidMessage, MappingError
from bus.mapping import MessageMapping
from bus.rest import MalformedReply, RestClient, RestReply, translate_errors
from contracts import Dossier, StatusChange, mask_personal_numbers

__all__ = [
    "BIRTH_CERTIFICATE_KEY",
    "DEATH_CERTIFICATE_KEY",
    "StepCall",
    "decode_answer",
    "deliver_step",
    "for_operation",
    "map_step_request",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

BIRTH_CERTIFICATE_KEY: Final = "birth_certificate_number"
"""Form key (and mapping context value) of the birth certificate number, from civil status."""

DEATH_CERTIFICATE_KEY: Final = "death_certificate_number"
"""Form key (and mapping context value) of the death extract number (số trích lục khai tử)."""


def for_operation(delivery: Delivery, choices: Mapping[str | None, T], *, connector: str) -> T:
    """What the connector does for the delivery's operation (``None``: its default one).

    An operation it does not have is a permanent :class:`InvalidMessage`: a bundle or a step
    order that asks for it is wrong, and no retry will teach the connector a new operation.
    """
    operation = delivery.operation
    if operation in choices:
        return choices[operation]
    named = sorted(name for name in choices if name is not None)
    supported = ", ".join(["the default (none named)", *named])
    raise InvalidMessage(
        f"connector {connector} has no operation {operation!r}; it supports: {supported}",
        fault_code="UNSUPPORTED_OPERATION",
    )


@dataclass(frozen=True, slots=True)
class StepCall:
    """One operation of a later linkage step: where it is posted and how it is translated."""

    #: The partner's path, e.g. ``/api/cutru/xoaDangKyThuongTru``.
    path: str
    #: Dossier → the partner's request body.
    request: MessageMapping
    #: The partner's answer → status change.
    answer: MessageMapping
    #: Form key an earlier step passed on, e.g. :data:`DEATH_CERTIFICATE_KEY`; the request
    #: mapping reads it as the context value of the same name.
    passed_key: str
    #: The partner field that carries it, named in the error when the form has none.
    passed_field: str
    #: The partner's own status in the answer, kept in the receipt for the transaction log.
    status_field: str


def map_step_request(
    mapping: MessageMapping, dossier: Dossier, *, passed_key: str, passed_field: str
) -> dict[str, Any]:
    """The partner's request body; a form the mapping cannot translate is FORM_INVALID.

    ``passed_key`` is the form key an earlier step passed on (a certificate number); without a
    non-empty string there, nothing can be sent, whatever else the form holds.
    """
    number = dossier.form.get(passed_key)
    if not isinstance(number, str) or not number.strip():
        raise MappingError(
            f"dossier {dossier.code}: {mapping.ref}: no {passed_key.replace('_', ' ')}: the form "
            f"key {passed_key} (passed on by an earlier linkage step) is "
            f"{'missing' if number is None else 'not a non-empty string'}",
            fault_code="FORM_INVALID",
            mapping=mapping.ref,
            source_path=f"form.{passed_key}",
            target_field=passed_field,
        )
    try:
        return mapping.apply(dossier.model_dump(mode="json"), {passed_key: number.strip()})
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


async def deliver_step(client: RestClient, delivery: Delivery, call: StepCall) -> DeliveryReceipt:
    """One call of a later linkage step: map the dossier, post it, read the answer.

    The form is mapped before any network call, so a MappingError never reaches the partner.
    The dossier code (``maHoSo``) makes the call idempotent on the partner's side, and the
    message id is the ``Idempotency-Key``.
    """
    dossier = delivery.require_dossier()
    body = map_step_request(
        call.request, dossier, passed_key=call.passed_key, passed_field=call.passed_field
    )
    reply = await client.request(
        "POST",
        call.path,
        json=body,
        headers={"Idempotency-Key": delivery.message_id},
        issue=dossier.code,
    )
    change = decode_answer(
        call.answer,
        reply,
        dossier_code=dossier.code,
        agency=client.config.agency,
        where=client.where(dossier.code),
    )
    return _receipt(client, delivery, call, reply, change)


def _receipt(
    client: RestClient, delivery: Delivery, call: StepCall, reply: RestReply, change: StatusChange
) -> DeliveryReceipt:
    """The receipt of an answered call, with the partner's own status kept beside ours."""
    fields: dict[str, Any] = reply.body
    already = fields.get("daTonTai") is True
    _log.info(
        "%s answered dossier %s (message %s, attempt %d, %s): %s %s%s",
        client.config.id,
        change.dossier_code,
        delivery.message_id,
        delivery.attempt,
        call.path,
        call.status_field,
        fields.get(call.status_field),
        " (already done before)" if already else "",
    )
    extra = {"partner_status": str(fields.get(call.status_field))}
    if already:
        extra["already_registered"] = "true"
    if reply.session_renewed:
        extra["session_renewed"] = "true"
    return DeliveryReceipt(
        status=change.status,
        sent_at=reply.sent_at,
        answered_at=reply.answered_at,
        changed_at=change.changed_at,
        partner_reference=change.partner_reference,
        note=None if change.note is None else mask_personal_numbers(change.note),
        request_size=reply.request_size,
        response_size=reply.response_size,
        mapping_version=call.request.ref,
        extra=extra,
    )
