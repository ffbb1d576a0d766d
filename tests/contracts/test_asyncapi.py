"""contracts/asyncapi.yaml stays true to the code: event types, routing keys and schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus import events
from bus.routing import alert_key, status_key, step_key, submitted_key
from bus.topology import Names
from contracts import VN_TZ, DeadlineAlert, DossierStatus, envelope
from contracts.export import SCHEMAS_DIR, render_schemas

ASYNCAPI = SCHEMAS_DIR.parent / "asyncapi.yaml"
EVENT_TYPES = {
    value
    for name, value in vars(envelope).items()
    if name.startswith("EVENT_") and isinstance(value, str)
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The AsyncAPI document, parsed."""
    loaded: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return loaded


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``#/...`` references."""
    while "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = document
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _pinned(document: dict[str, Any], message_ref: dict[str, Any]) -> dict[str, Any]:
    """The properties a message's payload pins on top of the envelope (type, dataschema, data)."""
    message = _resolve(document, message_ref)
    payload = _resolve(document, message["payload"])
    [pinned] = [part["properties"] for part in payload["allOf"] if "properties" in part]
    assert isinstance(pinned, dict)
    return pinned


def _event_type(document: dict[str, Any], message_ref: dict[str, Any]) -> str:
    """The CloudEvent type a message's payload pins with ``const``."""
    event_type = _pinned(document, message_ref)["type"]["const"]
    assert isinstance(event_type, str)
    return event_type


def _messages(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message the document defines."""
    return list(document["components"]["messages"].values())


def test_it_is_an_asyncapi_2_6_document(document: dict[str, Any]) -> None:
    """The document declares AsyncAPI 2.6 and names an AMQP server and the HTTP API."""
    assert document["asyncapi"] == "2.6.0"
    assert {s["protocol"] for s in document["servers"].values()} == {"amqp", "http"}


def test_every_event_type_is_documented_and_no_other(document: dict[str, Any]) -> None:
    """Each EVENT_* constant of contracts/envelope.py is a message type, and nothing else is."""
    assert EVENT_TYPES, "no event type constants found"
    pinned = {
        node["properties"]["type"]["const"]
        for node in _walk(document)
        if isinstance(node.get("properties"), dict)
        and isinstance(node["properties"].get("type"), dict)
        and "const" in node["properties"]["type"]
    }
    assert pinned == EVENT_TYPES
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert names == EVENT_TYPES


@pytest.mark.parametrize("status", list(DossierStatus))
def test_routing_key_channels_render_the_keys_the_bus_publishes(
    document: dict[str, Any], status: DossierStatus
) -> None:
    """Filling a channel's parameters gives exactly what bus/routing.py builds for its event."""
    agency, procedure = "000.00.10.H12", "1.001193.000.00.00.H38.02"
    connector, step = "residence", "permanent_residence"
    expected = {
        "vn.lienthong.dossier.submitted": submitted_key(agency, procedure),
        "vn.lienthong.dossier.status_changed": status_key(status, agency),
        "vn.lienthong.dossier.step_requested": step_key(connector, step),
        "vn.lienthong.dossier.at_risk": alert_key("at_risk", agency),
        "vn.lienthong.dossier.overdue": alert_key("overdue", agency),
    }
    assert set(expected) == EVENT_TYPES, "a new event type needs its routing key checked here"
    rendered = {}
    for name, channel in document["channels"].items():
        if not name.startswith("dossier."):
            continue
        parameters = set(re.findall(r"\{(\w+)\}", name))
        assert parameters == set(channel["parameters"]), name
        event_type = _event_type(document, channel["subscribe"]["message"])
        rendered[event_type] = name.format(
            agency=agency, procedure=procedure, status=int(status), connector=connector, step=step
        )
        assert channel["bindings"]["amqp"]["exchange"]["name"] == Names("bus").events
    assert rendered == expected


def test_channel_parameters_match_the_contracts(document: dict[str, Any]) -> None:
    """Code and id patterns are the exported schemas' own; statuses are DossierStatus's."""
    parameters = document["components"]["parameters"]
    dossier = yaml.safe_load((SCHEMAS_DIR / "dossier-1.0.json").read_text(encoding="utf-8"))
    fields = dossier["properties"]
    assert parameters["agency"]["schema"]["pattern"] == fields["receiving_agency"]["pattern"]
    assert parameters["procedure"]["schema"]["pattern"] == fields["procedure_code"]["pattern"]
    assert parameters["status"]["schema"]["enum"] == [int(s) for s in DossierStatus]
    order = yaml.safe_load((SCHEMAS_DIR / "step-order-1.0.json").read_text(encoding="utf-8"))
    for name in ("connector", "step"):
        assert parameters[name]["schema"]["pattern"] == order["properties"][name]["pattern"]


def test_each_message_pins_the_dataschema_of_the_data_it_references(
    document: dict[str, Any],
) -> None:
    """A payload's ``dataschema`` const is the ``$id`` of the exported schema its ``data`` is."""
    for message in _messages(document):
        pinned = _pinned(document, message)
        data_file = SCHEMAS_DIR / Path(pinned["data"]["$ref"]).name
        exported = yaml.safe_load(data_file.read_text(encoding="utf-8"))
        assert pinned["dataschema"]["const"] == exported["$id"], message["name"]


def test_alert_events_the_bus_builds_carry_the_documented_type_and_dataschema(
    document: dict[str, Any],
) -> None:
    """bus/events.py writes each kind of alert with the type and dataschema documented for it."""
    documented = {
        pinned["type"]["const"]: pinned["dataschema"]["const"]
        for pinned in (_pinned(document, message) for message in _messages(document))
    }
    for kind in ("at_risk", "overdue"):
        alert = DeadlineAlert(
            dossier_code="000.00.10.H12-240315-0001",
            kind=kind,
            scope="dossier",
            status=DossierStatus.PROCESSING,
            due_on=date(2024, 3, 15),
            detected_at=datetime(2024, 3, 15, 9, tzinfo=VN_TZ),
        )
        event = events.deadline_alert(
            alert, source="000.00.10.H12", sequence=2, correlation_id="accepted-event"
        )
        assert documented[event.type] == event.dataschema
        assert event.type.endswith(f".{kind}")


def test_referenced_schema_files_exist_and_equal_the_exported_ones(
    document: dict[str, Any],
) -> None:
    """Every file $ref resolves to a file in contracts/ whose text is what the models export."""
    references = {
        node["$ref"]
        for node in _walk(document)
        if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#")
    }
    exported = render_schemas()
    assert {Path(ref).name for ref in references} >= {
        "event-envelope-1.0.json",
        "dossier-1.0.json",
        "status-change-1.0.json",
        "step-order-1.0.json",
        "deadline-alert-1.0.json",
    }
    for ref in references:
        path = ASYNCAPI.parent / ref
        assert path.is_file(), f"{ref} does not exist"
        assert path.parent == SCHEMAS_DIR and path.name in exported, f"{ref} is not exported"
        assert path.read_text(encoding="utf-8") == exported[path.name], f"{ref} drifted"


def test_every_local_reference_resolves(document: dict[str, Any]) -> None:
    """No ``#/...`` reference points at something the document does not define."""
    for node in _walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = document
            for part in ref[2:].split("/"):
                assert isinstance(target, dict) and part in target, ref
                target = target[part]
