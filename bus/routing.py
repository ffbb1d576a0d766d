"""Routing keys of bus events on the topic exchange, and the bindings connectors declare.

Agency and procedure codes keep their dots, so each group of a code is one topic word and a
binding can select on any group (``dossier.status.*.*.*.*.H12`` is every agency of province
H12). Procedure codes vary in length (base, issuing unit, online suffix), so they come last,
where ``#`` absorbs the optional groups.

- ``dossier.submitted.<receiving agency>.<procedure code>`` e.g.
  ``dossier.submitted.000.00.10.H12.1.001193``
- ``dossier.status.<status>.<receiving agency>`` e.g. ``dossier.status.9.000.00.10.H12``
- ``dossier.step.<connector>.<step>`` e.g. ``dossier.step.residence.permanent_residence``: the
  linkage engine's order to one connector (every connector queue binds its own)
- ``dossier.at_risk.<receiving agency>`` and ``dossier.overdue.<receiving agency>``: deadline
  alerts
"""

from __future__ import annotations

from contracts import DossierStatus, procedure_base

SUBMITTED_PREFIX = "dossier.submitted"
STATUS_PREFIX = "dossier.status"
STEP_PREFIX = "dossier.step"
ALERT_PREFIXES = ("dossier.at_risk", "dossier.overdue")


def submitted_key(receiving_agency: str, procedure_code: str) -> str:
    """Routing key of a ``dossier.submitted`` event."""
    return f"{SUBMITTED_PREFIX}.{receiving_agency}.{procedure_code}"


def status_key(status: DossierStatus | int, receiving_agency: str) -> str:
    """Routing key of a ``dossier.status_changed`` event."""
    return f"{STATUS_PREFIX}.{int(status)}.{receiving_agency}"


def procedure_bindings(procedure_code: str) -> tuple[str, ...]:
    """Binding keys that catch submitted dossiers of a procedure, any agency, any suffix.

    A connector serving base code ``1.001193`` also receives ``1.001193.000.00.00.H38`` and
    ``1.001193.000.00.00.H38.02``: the issuing unit and online suffix do not change the partner.
    """
    base = procedure_base(procedure_code)
    if base == procedure_code:
        return (f"{SUBMITTED_PREFIX}.*.*.*.*.{base}.#",)
    return (f"{SUBMITTED_PREFIX}.*.*.*.*.{procedure_code}.#",)


def step_key(connector_id: str, step_id: str) -> str:
    """Routing key of a ``dossier.step_requested`` event: the order to one connector."""
    return f"{STEP_PREFIX}.{connector_id}.{step_id}"


def step_binding(connector_id: str) -> str:
    """The binding key of a connector's queue for the steps it is ordered to do."""
    return f"{STEP_PREFIX}.{connector_id}.#"


def alert_key(kind: str, receiving_agency: str) -> str:
    """Routing key of a ``dossier.at_risk`` (kind ``at_risk``) or ``dossier.overdue`` event."""
    return f"dossier.{kind}.{receiving_agency}"
