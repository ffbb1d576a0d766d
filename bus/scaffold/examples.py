"""The golden examples of a new connector's mappings, computed by the mapping engine itself.

Each message gets one case: outbound, the project's sample birth dossier
(:func:`contracts.sample_birth_dossier_json`) and what the stub maps it to; inbound, a sample
partner message and the status change it reads. Computing the expected side from the stub
makes the examples true on the day they are written; when the integrator edits a spec, ``bus
mappings test`` shows which example to update, and the diff shows what the edit changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any

from bus.mapping.catalog import MessageMapping, load_version
from bus.scaffold.plan import ConnectorPlan, Kind
from contracts import sample_birth_dossier_json

__all__ = ["write_examples"]

TEMPLATES = Path(__file__).with_name("templates")


def write_examples(plan: ConnectorPlan) -> list[Path]:
    """Write one golden case per message under the plan's mapping folder; return the files."""
    folder = plan.dest / plan.mapping_folder
    mappings = {mapping.message: mapping for mapping in load_version(folder)}
    context = {"agency": plan.agency}
    if plan.kind is Kind.POLLER:
        record = _sample(plan, "record.input.json.tmpl")
        change = _inbound(mappings["record.in"], record, context)
        return [
            *_case(mappings["record.in"], "processing", record, change, context),
            *_case(mappings["acknowledge.out"], "processing", change, None, None),
        ]
    dossier = sample_birth_dossier_json()
    answer = _sample(plan, "answer.input.json.tmpl")
    return [
        *_case(mappings["submission.out"], "sample-dossier", dossier, None, None),
        *_case(
            mappings["answer.in"],
            "accepted",
            answer,
            _inbound(mappings["answer.in"], answer, context),
            context,
        ),
    ]


def _sample(plan: ConnectorPlan, template: str) -> dict[str, Any]:
    text = (TEMPLATES / "mappings" / template).read_text(encoding="utf-8")
    sample: dict[str, Any] = json.loads(Template(text).substitute(plan.variables()))
    return sample


def _inbound(
    mapping: MessageMapping, source: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """What ``bus mappings test`` compares an inbound case with."""
    change: dict[str, Any] = mapping.to_canonical(source, context).model_dump(
        mode="json", exclude_none=True
    )
    return change


def _case(
    mapping: MessageMapping,
    name: str,
    source: dict[str, Any],
    expected: dict[str, Any] | None,
    context: dict[str, Any] | None,
) -> list[Path]:
    folder = mapping.folder / "examples" / mapping.message
    folder.mkdir(parents=True, exist_ok=True)
    produced = expected if expected is not None else mapping.apply(source, context)
    files = {
        folder / f"{name}.input.json": source,
        folder / f"{name}.expected.json": produced,
    }
    if context is not None:
        files[folder / f"{name}.context.json"] = context
    for path, value in files.items():
        path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return list(files)
