"""What the bus does with a push: map it inbound, then commit it as a polled change or a dossier.

A pushed status change takes the poller's road (:func:`bus.store.polls.commit_pushed`): one
transaction holds the dedup record (connector + the record's key), the ``receive`` hop, the
dossier's forward-only move and its ``dossier.status_changed`` event in the outbox, so a change
pushed twice, or pushed and also polled under the same key, is applied once, and an older change
never moves a dossier back. A pushed dossier takes the ingest road of ``POST /v1/dossiers``
(:class:`bus.ingest.IngestService`): committed with its ``dossier.submitted`` event before the
answer, and a repeat with the same content changes nothing.

A connector's inbound side is compiled once, on its first push: its mappings loaded (only its
partners'), its JMESPath expressions compiled, its WSDL read and checked against its messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bus import events
from bus.connector import ConnectorConfig
from bus.errors import MappingError
from bus.inbound.answers import Answer, Verdict, render
from bus.inbound.reading import Push, Refused, read_push
from bus.inbound.settings import (
    InboundFormat,
    InboundMessage,
    JsonAnswer,
    SoapAnswer,
    XmlAnswer,
)
from bus.inbound.soap import SoapVersion
from bus.inbound.wsdl import InboundWsdl, WsdlError, load_wsdl
from bus.ingest import IngestService, Submission, UnroutableDossier
from bus.logs import about
from bus.mapping import MappingCatalog, MessageMapping, SpecError
from bus.mapping.compiler import Getter, compile_expression
from bus.poller import record_key
from bus.store.deliveries import StatusTransition
from bus.store.ingest import IngestConflict
from bus.store.polls import (
    RECEIVE_HOP,
    PolledEntry,
    PollOutcome,
    commit_pushed,
    dated_in_future,
)
from contracts import VN_TZ, Dossier, StatusChange

if TYPE_CHECKING:
    from bus.runtime import Runtime

__all__ = ["InboundRoute", "InboundService", "InboundSetupError", "NoInbound"]

log = logging.getLogger(__name__)


class NoInbound(LookupError):
    """Raised when a connector declares no ``[[inbound]]`` message: its partner cannot push."""


class InboundSetupError(ValueError):
    """Raised when a connector's ``[[inbound]]`` cannot be used (mapping, contract, WSDL)."""


@dataclass(frozen=True, slots=True)
class _Message:
    """One ``[[inbound]]`` table with its mapping and expressions compiled."""

    settings: InboundMessage
    mapping: MessageMapping
    record: Getter | None
    key: tuple[Getter, ...]
    context_from: tuple[tuple[str, Getter], ...]

    def record_of(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The one record the payload carries, or ``None`` when it carries no single object."""
        value = payload if self.record is None else self.record(payload)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a partner's list of one record
        return value if isinstance(value, dict) else None

    def context(
        self, config: ConnectorConfig, payload: dict[str, Any], received_at: datetime
    ) -> dict[str, Any]:
        """What the mapping may ask the caller for: agency, times, configured values."""
        moment = received_at.astimezone(VN_TZ)
        context: dict[str, Any] = {
            "agency": config.agency,
            "received_at": moment,
            # What mappings of partner answers call the moment the answer arrived.
            "answered_at": moment,
            **self.settings.context,
        }
        for name, getter in self.context_from:
            value = getter(payload)
            if value is not None:
                context[name] = value
        return context


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """A connector's inbound side, compiled: its messages and the WSDL its SOAP callers get."""

    config: ConnectorConfig
    messages: tuple[_Message, ...]
    wsdl: InboundWsdl | None

    def compiled(self, settings: InboundMessage) -> _Message:
        """The compiled form of one of this connector's messages."""
        return next(m for m in self.messages if m.settings is settings)

    def answer(
        self,
        verdict: Verdict,
        message: InboundMessage | None,
        soap_version: SoapVersion | None,
        *,
        looked_like: InboundFormat | None = None,
    ) -> Answer:
        """``verdict`` as the partner expects it.

        Before the push is known to be one of the messages, it is answered in the style of the
        connector's first message of the format it ``looked_like`` (else its first message).
        """
        if message is None:
            settings = [m.settings for m in self.messages]
            alike = [m for m in settings if m.format == looked_like]
            message = (alike or settings)[0]
        style: JsonAnswer | XmlAnswer | SoapAnswer = message.answer_style
        return render(
            style,
            verdict,
            soap_version=soap_version or "1.1",
            namespace=self.wsdl.namespace if self.wsdl is not None else None,
            response_element=message.response_element if message.format == "soap" else None,
        )


EventRow = Callable[[StatusChange, StatusTransition], dict[str, Any]]


class InboundService:
    """Receives pushes for every connector of a bus process (shared by all requests)."""

    def __init__(self, runtime: Runtime, ingest: IngestService) -> None:
        self._runtime = runtime
        self._ingest = ingest
        self._routes: dict[str, InboundRoute] = {}
        self._catalogs: dict[str, MappingCatalog] = {}

    # -- which connector --------------------------------------------------------------------

    def route(self, connector_id: str) -> InboundRoute:
        """The compiled inbound side of a connector.

        Raises :class:`bus.errors.UnknownConnector`, :class:`NoInbound` or
        :class:`InboundSetupError`.
        """
        route = self._routes.get(connector_id)
        if route is None:
            route = self._compile(self._runtime.registry.get(connector_id).config)
            self._routes[connector_id] = route
        return route

    def _compile(self, config: ConnectorConfig) -> InboundRoute:
        if not config.inbound:
            raise NoInbound(f"connector {config.id!r} accepts no pushes (no [[inbound]] table)")
        messages = tuple(self._compile_message(config, m) for m in config.inbound)
        wsdl_path = next((m.wsdl for m in config.inbound if m.wsdl is not None), None)
        wsdl = None
        if wsdl_path is not None:
            try:
                wsdl = load_wsdl(wsdl_path)
            except WsdlError as exc:
                raise InboundSetupError(f"connector {config.id}: {exc}") from exc
            missing = [
                str(m.operation)
                for m in config.inbound
                if m.format == "soap" and m.operation not in wsdl.operations
            ]
            if missing:
                raise InboundSetupError(
                    f"connector {config.id}: {wsdl_path} declares no operation {', '.join(missing)}"
                )
        return InboundRoute(config, messages, wsdl)

    def _compile_message(self, config: ConnectorConfig, settings: InboundMessage) -> _Message:
        where = f"connector {config.id}: inbound {settings.message}"
        base = settings.mapping or config.mapping
        if base is None:
            raise InboundSetupError(f"{where}: no `mapping` here nor in the connector")
        ref = f"{base}/{settings.message}.in"
        try:
            mapping = self._catalog(base.split("/")[0]).get(ref)
            expression = _compiler(where)
            record = expression(settings.record) if settings.record is not None else None
            key = tuple(expression(k) for k in settings.key)
            context_from = tuple((n, expression(e)) for n, e in settings.context_from.items())
        except SpecError as exc:
            raise InboundSetupError(f"{where}: {exc}") from exc
        if mapping.spec.direction != "inbound" or mapping.spec.contract != settings.produces:
            raise InboundSetupError(
                f"{where}: {ref} maps {mapping.spec.direction} to the {mapping.spec.contract} "
                f"contract, but the message is declared to produce {settings.produces}"
            )
        return _Message(settings, mapping, record, key, context_from)

    def _catalog(self, partner: str) -> MappingCatalog:
        catalog = self._catalogs.get(partner)
        if catalog is None:
            catalog = MappingCatalog.load(partners=(partner,))
            self._catalogs[partner] = catalog
        return catalog

    # -- one push ---------------------------------------------------------------------------

    async def receive(
        self, route: InboundRoute, raw: bytes, content_type: str | None, received_at: datetime
    ) -> Answer:
        """Read, map and commit one push; the answer is ready only after the commit."""
        settings = self._runtime.settings
        try:
            push = read_push(
                raw,
                content_type,
                route.config.inbound,
                max_bytes=settings.max_body_bytes,
                max_depth=settings.max_json_depth,
            )
        except Refused as exc:
            return route.answer(exc.verdict, None, exc.soap_version, looked_like=exc.looked_like)
        verdict = await self._apply(route, route.compiled(push.message), push, received_at)
        return route.answer(verdict, push.message, push.soap_version)

    async def _apply(
        self, route: InboundRoute, message: _Message, push: Push, received_at: datetime
    ) -> Verdict:
        ref = message.mapping.ref
        record = message.record_of(push.payload)
        if record is None:
            where = message.settings.record or "the payload"
            return Verdict("unreadable", f"{where} holds no single record (one object per push)")
        context = message.context(route.config, push.payload, received_at)
        try:
            canonical = message.mapping.to_canonical(record, context)
        except MappingError as exc:
            return Verdict("invalid", exc.message)
        except Exception as exc:
            # The engine choked on a value no example foresaw: a refusal, not a crash.
            log.exception("%s: mapping %s failed on a push", route.config.id, ref)
            return Verdict("invalid", f"{ref}: cannot read the record: {type(exc).__name__}")
        if isinstance(canonical, StatusChange):
            code = canonical.dossier_code
        elif isinstance(canonical, Dossier):
            code = canonical.code
        else:
            return Verdict("invalid", f"{ref} maps to neither a dossier nor a status change")
        with about(dossier=code):
            if isinstance(canonical, StatusChange):
                if dated_in_future(canonical, received_at):
                    return Verdict(
                        "invalid",
                        f"the change is dated {canonical.changed_at.isoformat()}, after the "
                        "bus's time: check the sending system's clock",
                    )
                return await self._change(route, message, record, canonical, push, received_at)
            assert isinstance(canonical, Dossier)
            return await self._dossier(route, ref, canonical, push, received_at)

    async def _change(
        self,
        route: InboundRoute,
        message: _Message,
        record: Mapping[str, Any],
        change: StatusChange,
        push: Push,
        received_at: datetime,
    ) -> Verdict:
        ref = message.mapping.ref
        if message.key:
            key = record_key(*(getter(record) for getter in message.key))
        else:
            key = record_key(change.dossier_code, int(change.status), change.changed_at.isoformat())
        hop = {
            "message_id": key,
            "dossier_code": change.dossier_code,
            # Replaced by the dossier's linkage run when the bus knows the dossier.
            "correlation_id": key,
            "kind": RECEIVE_HOP,
            "sender": route.config.id,
            "recipient": "bus",
            "received_at": received_at,
            "sent_at": None,  # the partner's date of the change, set at the commit
            "answered_at": datetime.now(UTC),
            "request_bytes": push.size,
            "response_bytes": 0,
            "fault_code": None,
            "fault_detail": None,
            "mapping_version": ref,
            "attempt": 1,
        }
        entry = PolledEntry(route.config.id, key, hop, change)
        [outcome] = await commit_pushed(
            self._runtime.writer, [entry], self._event_row(ref), linkage=self._runtime.linkage
        )
        if outcome == "applied":
            self._runtime.relay.wake()
        return _change_verdict(outcome, change)

    async def _dossier(
        self, route: InboundRoute, ref: str, dossier: Dossier, push: Push, received_at: datetime
    ) -> Verdict:
        submission = Submission(
            received_at=received_at,
            request_bytes=push.size,
            connector=route.config.id,
            mapping_version=ref,
        )
        try:
            receipt = await self._ingest.accept(dossier, submission)
        except UnroutableDossier as exc:
            return Verdict("invalid", str(exc))
        except IngestConflict as exc:
            return Verdict("invalid", str(exc), 409)
        if receipt.replayed:
            return Verdict("accepted", f"dossier {dossier.code} was accepted before; unchanged")
        return Verdict("accepted", f"dossier {dossier.code} accepted")

    def _event_row(self, ref: str) -> EventRow:
        exchange = self._runtime.names.events

        def row(change: StatusChange, transition: StatusTransition) -> dict[str, Any]:
            return events.status_outbox_row(
                change,
                sequence=transition.sequence,
                receiving_agency=transition.receiving_agency,
                exchange=exchange,
                correlation_id=transition.accepted_event_id,
                mapping=ref,
            )

        return row


def _compiler(where: str) -> Callable[[str], Getter]:
    return lambda expression: compile_expression(expression, where=where)


def _change_verdict(outcome: PollOutcome, change: StatusChange) -> Verdict:
    code, status = change.dossier_code, change.status
    if outcome == "applied":
        return Verdict("accepted", f"dossier {code}: status {int(status)} ({status.label_en})")
    if outcome == "duplicate":
        return Verdict("accepted", f"dossier {code}: this change was received before, applied once")
    if outcome == "stale":
        return Verdict(
            "accepted", f"dossier {code}: older than its current state; recorded, not applied"
        )
    return Verdict("not_found", f"no dossier {code} on this bus")
