"""Linkage-step deliveries for the connector tests: a bundle's step, as the engine orders it."""

from __future__ import annotations

from typing import Any, Final

from bus.connector import Delivery
from contracts import (
    EVENT_DOSSIER_STEP_REQUESTED,
    STEP_ORDER_DATASCHEMA,
    Dossier,
    EventEnvelope,
    LinkageBundle,
    StepOrder,
    load_linkage_bundles,
    sample_death_dossier,
)

BUNDLES: Final = {bundle.id: bundle for bundle in load_linkage_bundles()}
"""The shipped bundles, by id: the steps and operations the connectors must serve."""

DEATH_CERTIFICATE: Final = "KT/2024/000001"
"""A death extract number, as the civil-status simulator issues them."""

_UNSET: Final[Any] = object()


def death_dossier(sequence: int = 1, **form: Any) -> Dossier:
    """The sample death dossier, its form completed with the death extract number step 1 issued.

    ``form`` overrides form keys; a value of None removes the key.
    """
    dossier = sample_death_dossier(sequence=sequence)
    values = {**dossier.form, "death_certificate_number": DEATH_CERTIFICATE, **form}
    return dossier.model_copy(update={"form": {k: v for k, v in values.items() if v is not None}})


def step_delivery(
    dossier: Dossier,
    step_id: str,
    *,
    bundle: LinkageBundle = BUNDLES["death"],
    operation: str | None = _UNSET,
    message_id: str | None = None,
    attempt: int = 1,
) -> Delivery:
    """The delivery of ``dossier``'s step ``step_id`` of ``bundle``, as a worker hands it over.

    The order carries the step's own operation unless ``operation`` says otherwise, and as
    ``passed`` the form keys the step is given that the dossier's form holds as text.
    """
    step = bundle.step(step_id)
    passed = {
        key: dossier.form[key] for key in step.passes if isinstance(dossier.form.get(key), str)
    }
    order = StepOrder(
        bundle=bundle.id,
        step=step.id,
        title=step.title,
        connector=step.connector,
        operation=step.operation if operation is _UNSET else operation,
        due_on=dossier.received_at.date(),
        passed=passed,
        dossier=dossier,
    )
    event = EventEnvelope(
        id=message_id or f"step-{dossier.code}-{step.id}",
        source=dossier.receiving_agency,
        type=EVENT_DOSSIER_STEP_REQUESTED,
        subject=dossier.code,
        time=dossier.received_at,
        dataschema=STEP_ORDER_DATASCHEMA,
        correlationid=f"run-{dossier.code}",
        dossierseq=2,
        data=order.model_dump(mode="json", exclude_none=True),
    )
    return Delivery(message_id=event.id, event=event, dossier=dossier, attempt=attempt, step=order)
