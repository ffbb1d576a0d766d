"""Linkage bundles (liên thông): one submission, several agencies acting in turn, as data.

A bundle is a small graph of steps. Each step names the connector of the agency that acts, the
steps it waits for (``after``: a sequence; steps waiting for the same step run in parallel; a
step waiting for several is a join), what it passes on to the steps after it (the birth
certificate number that civil status issues feeds residence and health insurance), and its
deadline in working days. The bundle adds the deadline of the whole and the cut-off hour after
which a dossier counts as received the next working day (DOMAIN: "Deadlines").

Bundles live as YAML files in ``contracts/linkage_bundles/``: adding or changing one is a data
change. This module checks a definition on its own (names, graph, deadlines); whether its
connectors are installed is checked by the bus when it loads the bundles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import ConfigDict, Field, StringConstraints, model_validator

from contracts._model import ContractModel
from contracts.codes import AgencyCode, ProcedureCode
from contracts.dossier import Dossier

__all__ = [
    "DEFAULT_BUNDLES_DIR",
    "STEP_RESULT_FIELDS",
    "LinkageBundle",
    "LinkageStep",
    "StepOrder",
    "load_linkage_bundles",
]

DEFAULT_BUNDLES_DIR: Final = Path(__file__).with_name("linkage_bundles")

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]

STEP_RESULT_FIELDS: Final = frozenset({"partner_reference", "note", "status", "changed_at"})
"""What a finished step offers the steps after it: fields of its final status change."""

_SOURCE = re.compile(r"^steps\.(?P<step>[a-z][a-z0-9_]*)\.(?P<field>[a-z_]+)$")


class LinkageStep(ContractModel):
    """One agency's part of a bundle."""

    model_config = ConfigDict(frozen=True)

    id: Slug = Field(description="Step id, unique in its bundle, e.g. civil_status_registration")
    title: str = Field(min_length=1, max_length=200, description="What the agency does")
    connector: Slug = Field(description="Connector id of the agency's system")
    operation: Slug | None = Field(
        default=None,
        description="What the connector is asked to do, for systems that do several things "
        "(e.g. register or remove a permanent residence); None: its one operation",
    )
    after: tuple[Slug, ...] = Field(
        default=(), description="Steps that must have finished before this one starts"
    )
    passes: Mapping[Slug, str] = Field(
        default_factory=dict,
        description="Form keys this step is given, each from a finished earlier step: "
        "'steps.<step id>.<field>' (fields: partner_reference, note, status, changed_at)",
    )
    working_days: int = Field(ge=0, le=365, description="The step's deadline in working days")


class LinkageBundle(ContractModel):
    """A whole linkage: which procedure starts it, its steps, its deadlines."""

    model_config = ConfigDict(frozen=True)

    id: Slug = Field(description="Bundle id, e.g. birth")
    title: str = Field(min_length=1, max_length=300)
    procedure: ProcedureCode = Field(description="The procedure whose dossiers start the bundle")
    working_days: int = Field(ge=0, le=365, description="Deadline of the whole, in working days")
    working_days_with_verification: int | None = Field(
        default=None,
        ge=0,
        le=365,
        description="The longer deadline when verification is needed (xác minh)",
    )
    cutoff_hour: int | None = Field(
        default=None, ge=0, le=23, description="From this local hour, received the next day"
    )
    steps: tuple[LinkageStep, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self) -> LinkageBundle:
        ids = [step.id for step in self.steps]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"step ids must be unique; repeated: {', '.join(duplicated)}")
        for step in self.steps:
            unknown = [a for a in step.after if a not in ids]
            if unknown:
                raise ValueError(f"step {step.id} waits for unknown steps: {', '.join(unknown)}")
        self.topological_order()  # raises on a cycle
        if self.working_days_with_verification is not None and (
            self.working_days_with_verification < self.working_days
        ):
            raise ValueError("working_days_with_verification is shorter than working_days")
        for step in self.steps:
            self._check_passes(step)
        connectors = [step.connector for step in self.steps]
        twice = sorted({c for c in connectors if connectors.count(c) > 1})
        if twice:
            # A partner's answer (pushed, polled or returned) names its connector, not a step:
            # one step per connector keeps every answer about exactly one step.
            raise ValueError(
                f"a connector acts in one step of a bundle; repeated: {', '.join(twice)}"
            )
        longest = self.critical_path_days()
        if longest > self.working_days:
            raise ValueError(
                f"its steps take up to {longest} working days in a row, more than the "
                f"bundle's {self.working_days}"
            )
        return self

    def _check_passes(self, step: LinkageStep) -> None:
        before = self.ancestors(step.id)
        for key, source in step.passes.items():
            match = _SOURCE.match(source)
            if match is None:
                raise ValueError(
                    f"step {step.id} passes {key} from {source!r}: write 'steps.<step id>.<field>'"
                )
            if match["step"] not in before:
                raise ValueError(
                    f"step {step.id} passes {key} from step {match['step']}, which does not "
                    "finish before it (list it, or a step after it, in `after`)"
                )
            if match["field"] not in STEP_RESULT_FIELDS:
                known = ", ".join(sorted(STEP_RESULT_FIELDS))
                raise ValueError(
                    f"step {step.id} passes {key} from unknown field {match['field']} ({known})"
                )

    def step(self, step_id: str) -> LinkageStep:
        """The step ``step_id``."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def first_steps(self) -> tuple[LinkageStep, ...]:
        """The steps that start as soon as the dossier is accepted."""
        return tuple(step for step in self.steps if not step.after)

    def next_steps(self, finished: set[str]) -> tuple[LinkageStep, ...]:
        """Steps not finished whose every predecessor is in ``finished``."""
        return tuple(
            step
            for step in self.steps
            if step.id not in finished and all(a in finished for a in step.after)
        )

    def ancestors(self, step_id: str) -> set[str]:
        """Every step that finishes before ``step_id`` starts."""
        seen: set[str] = set()
        todo = list(self.step(step_id).after)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.step(current).after)
        return seen

    def topological_order(self) -> list[str]:
        """Step ids in an order that respects ``after``; a cycle is a ValueError."""
        placed: list[str] = []
        remaining = {step.id: set(step.after) for step in self.steps}
        while remaining:
            ready = sorted(i for i, waits in remaining.items() if waits <= set(placed))
            if not ready:
                raise ValueError(f"steps wait for each other in a cycle: {', '.join(remaining)}")
            placed.extend(ready)
            for i in ready:
                del remaining[i]
        return placed

    def critical_path_days(self) -> int:
        """The longest chain of step deadlines: the least the whole can be promised in."""
        finish: dict[str, int] = {}
        for step_id in self.topological_order():
            step = self.step(step_id)
            start = max((finish[a] for a in step.after), default=0)
            finish[step_id] = start + step.working_days
        return max(finish.values())


class StepOrder(ContractModel):
    """What the linkage engine asks one agency to do: its step of a dossier's bundle.

    The data of a ``dossier.step_requested`` event. ``dossier.form`` already holds the keys
    earlier steps pass on (``passed`` lists them), so a connector reads one form.
    """

    model_config = ConfigDict(frozen=True)

    schema_version: Literal["1.0"] = "1.0"
    bundle: Slug = Field(description="The bundle, e.g. birth")
    step: Slug = Field(description="The step, e.g. permanent_residence")
    title: str = Field(min_length=1, max_length=200, description="What the agency does")
    connector: Slug = Field(description="The connector of the agency's system")
    agency: AgencyCode | None = Field(default=None, description="The agency that acts")
    operation: Slug | None = Field(
        default=None, description="What the connector is asked to do; None: its one operation"
    )
    due_on: date = Field(description="The step's due date (working days from its request)")
    passed: dict[Slug, str] = Field(
        default_factory=dict, description="Form keys given by earlier steps, with their values"
    )
    dossier: Dossier = Field(description="The dossier, its form completed with ``passed``")


def load_linkage_bundles(directory: Path = DEFAULT_BUNDLES_DIR) -> Iterator[LinkageBundle]:
    """Every ``*.yaml`` bundle of ``directory``, checked; the file name must be its id."""
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        bundle = LinkageBundle.model_validate(data)
        if bundle.id != path.stem:
            raise ValueError(f"{path.name} defines bundle {bundle.id!r}: name the file after it")
        yield bundle
