"""The bundles this bus runs, checked against the connectors it has.

Every bundle file is loaded, so a run that started before its bundle was switched off still
finishes; ``BUS_LINKAGE_BUNDLES`` chooses which bundles *start* for new dossiers. Checked at
start-up rather than when the first dossier arrives: a step whose connector is missing, cannot
take orders, or does not know the step's operation would otherwise strand dossiers mid-run. A
bundle named in ``BUS_LINKAGE_BUNDLES`` that cannot run stops the bus; when the setting is left
unset (every bundle), such a bundle is only left off, with a warning, so a bus installed with
some connectors only still starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from bus.calendar import WorkingCalendar
from bus.errors import BusError
from bus.registry import ConnectorRegistry
from contracts import (
    DEFAULT_BUNDLES_DIR,
    LinkageBundle,
    LinkageStep,
    load_linkage_bundles,
    procedure_base,
)

__all__ = ["LinkageBook", "LinkageSetupError"]

log = logging.getLogger(__name__)


class LinkageSetupError(BusError):
    """A bundle cannot run with this bus's connectors or settings."""

    fault_code = "LINKAGE_SETUP"
    transient = False


class LinkageBook:
    """Bundles by id and by the procedure that starts them, with the working-day calendar."""

    def __init__(
        self,
        bundles: Iterable[LinkageBundle],
        calendar: WorkingCalendar,
        *,
        enabled: Iterable[str] | None = None,
    ) -> None:
        self.calendar = calendar
        self._by_id = {bundle.id: bundle for bundle in bundles}
        self._chosen = enabled is not None
        wanted = set(self._by_id) if enabled is None else set(enabled)
        unknown = sorted(wanted - set(self._by_id))
        if unknown:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise LinkageSetupError(
                f"BUS_LINKAGE_BUNDLES names unknown bundles: {', '.join(unknown)} (known: {known})"
            )
        self._starting = {
            bundle.procedure: bundle for bundle in self._by_id.values() if bundle.id in wanted
        }

    @classmethod
    def load(
        cls,
        calendar: WorkingCalendar,
        *,
        enabled: Iterable[str] | None = None,
        directory: Path = DEFAULT_BUNDLES_DIR,
    ) -> LinkageBook:
        """The bundles of ``directory`` (the shipped ones by default)."""
        return cls(load_linkage_bundles(directory), calendar, enabled=enabled)

    def bundle(self, bundle_id: str) -> LinkageBundle:
        """The bundle ``bundle_id`` (enabled or not: its runs may still be under way)."""
        try:
            return self._by_id[bundle_id]
        except KeyError:
            raise LinkageSetupError(
                f"a run of bundle {bundle_id!r} is under way but no such bundle is loaded"
            ) from None

    def starting_for(self, procedure_code: str) -> LinkageBundle | None:
        """The enabled bundle a dossier of ``procedure_code`` starts (full code, then base)."""
        return self._starting.get(procedure_code) or self._starting.get(
            procedure_base(procedure_code)
        )

    @property
    def procedures(self) -> frozenset[str]:
        """Procedures whose dossiers start a bundle: no connector queue binds them directly."""
        return frozenset(self._starting)

    @property
    def bundles(self) -> list[LinkageBundle]:
        """Every loaded bundle."""
        return list(self._by_id.values())

    def check(self, registry: ConnectorRegistry) -> None:
        """Make sure every starting bundle's steps can be ordered with ``registry``.

        A bundle chosen in ``BUS_LINKAGE_BUNDLES`` that cannot run raises
        :class:`LinkageSetupError`; by default such a bundle is left off, with a warning.
        """
        problems: dict[str, list[str]] = {}
        for bundle in self._starting.values():
            for step in bundle.steps:
                problem = _step_problem(step, registry)
                if problem is not None:
                    problems.setdefault(bundle.id, []).append(f"step {step.id}: {problem}")
        if not problems:
            return
        described = "; ".join(f"bundle {b}, {'; '.join(p)}" for b, p in problems.items())
        if self._chosen:
            raise LinkageSetupError(
                f"linkage bundles cannot run: {described}. Install the connector, or leave the "
                "bundle out of BUS_LINKAGE_BUNDLES."
            )
        log.warning("linkage bundles left off: %s", described)
        self._starting = {p: b for p, b in self._starting.items() if b.id not in problems}


def _step_problem(step: LinkageStep, registry: ConnectorRegistry) -> str | None:
    if step.connector not in registry.ids:
        return f"connector {step.connector!r} is not installed"
    registered = registry.get(step.connector)
    if registered.config.kind == "poller":
        return f"connector {step.connector!r} only polls; it cannot be sent a step order"
    if step.operation is not None:
        supported: frozenset[str] = getattr(registered.factory, "operations", frozenset())
        if step.operation not in supported:
            offered = ", ".join(sorted(supported)) or "only its default one"
            return (
                f"connector {step.connector!r} has no operation {step.operation!r} "
                f"(operations: {offered})"
            )
    return None
