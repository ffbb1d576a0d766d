"""Accepting a dossier: check it can be routed, give it a due date, commit it with its event."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bus import events
from bus.batching import Batcher
from bus.calendar import WorkingCalendar, calendar_from_settings, end_of_day
from bus.failpoints import failpoint
from bus.metrics import DOSSIERS_ACCEPTED
from bus.routing import submitted_key
from bus.runtime import Runtime
from bus.store.ingest import IngestReceipt, IngestRequest, write_ingest_batch
from bus.store.polls import RECEIVE_HOP
from contracts import Dossier, ProcedureCatalogue


class UnroutableDossier(ValueError):
    """Raised when no procedure or no connector matches a dossier: it would go nowhere."""

    def __init__(self, message: str, *, field: str, allowed: str) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class Submission:
    """How a dossier arrived: who pushed it, when, and its tracing identities."""

    received_at: datetime
    request_bytes: int
    idempotency_key: str | None = None
    traceparent: str | None = None
    correlation_id: str | None = None
    #: The connector whose partner pushed it in its own format (``/v1/inbound``), and the
    #: mapping that read it; ``None`` for the canonical contract, sent by the receiving agency.
    connector: str | None = None
    mapping_version: str | None = None


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 of a dossier's canonical JSON: equal for equal content, whatever the spacing."""
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class IngestService:
    """The write side of ``POST /v1/dossiers``, group-committed."""

    def __init__(
        self,
        runtime: Runtime,
        catalogue: ProcedureCatalogue,
        *,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self._runtime = runtime
        self._catalogue = catalogue
        # Built here, not on first use, so a contradictory BUS_EXTRA_DAYS_OFF /
        # BUS_MAKEUP_WORKING_DAYS stops the process at start-up.
        self._calendar = calendar or calendar_from_settings(runtime.settings)
        self._batcher: Batcher[IngestRequest, IngestReceipt] = Batcher(
            self._write,
            max_batch=runtime.settings.batch_max,
            name="ingest",
            max_pending=runtime.settings.ingest_max_pending,
        )

    def start(self) -> None:
        """Start the group-commit task."""
        self._batcher.start()

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        await self._batcher.stop()

    async def _write(
        self, requests: Sequence[IngestRequest]
    ) -> Sequence[IngestReceipt | Exception]:
        relay = self._runtime.relay
        handover = relay.handover()
        results = await write_ingest_batch(
            self._runtime.writer, requests, linkage=self._runtime.linkage, handover=handover
        )
        # Committed, not yet answered nor published: the fault suite kills the API here.
        failpoint("ingest.after_commit")
        relay.take(handover)
        return results

    def check_routable(self, dossier: Dossier) -> str:
        """Who takes the dossier (``linkage:<bundle>`` or a connector id), or
        :class:`UnroutableDossier`."""
        if dossier.procedure_code not in self._catalogue:
            known = ", ".join(p.code for p in self._catalogue)
            raise UnroutableDossier(
                f"procedure {dossier.procedure_code} is not in the bus's procedure catalogue",
                field="procedure_code",
                allowed=f"one of: {known}",
            )
        bundle = self._runtime.linkage.starts(dossier)
        if bundle is not None:
            return f"linkage:{bundle.id}"
        connector = self._runtime.registry.for_procedure(dossier.procedure_code)
        if connector is None:
            served = sorted(
                {
                    p
                    for c in self._runtime.registry.ids
                    for p in self._runtime.registry.get(c).config.procedures
                }
            )
            raise UnroutableDossier(
                f"no connector serves procedure {dossier.procedure_code}",
                field="procedure_code",
                allowed=f"a procedure served by a connector: {', '.join(served) or 'none'}",
            )
        return connector.id

    def derived_due_at(self, dossier: Dossier) -> datetime | None:
        """The due date the bus gives a dossier sent without one, from its procedure's time.

        ``None`` when the sender gave a due date (the receiving agency's word stands) or when
        the catalogue has no processing time for the procedure.
        """
        if dossier.due_at is not None:
            return None
        # A bundle's deadline is the whole linkage's, not its first procedure's.
        bundle_due = self._runtime.linkage.due_on(dossier)
        if bundle_due is not None:
            return bundle_due
        procedure = self._catalogue.get(dossier.procedure_code)
        if procedure is None or procedure.working_days is None:
            return None
        day = self._calendar.due_date(
            dossier.received_at, procedure.working_days, procedure.cutoff_hour
        )
        return end_of_day(day)

    async def accept(self, dossier: Dossier, submission: Submission) -> IngestReceipt:
        """Commit the dossier and its ``dossier.submitted`` event; returns after the commit."""
        taker = self.check_routable(dossier)
        request = build_ingest_request(
            dossier,
            submission,
            events_exchange=self._runtime.names.events,
            due_at=self.derived_due_at(dossier),
            linked=taker.startswith("linkage:"),
        )
        receipt = await self._batcher.submit(request)
        if not receipt.replayed:
            DOSSIERS_ACCEPTED.labels(dossier.procedure_code).inc()
        return receipt


def build_ingest_request(
    dossier: Dossier,
    submission: Submission,
    *,
    events_exchange: str,
    due_at: datetime | None = None,
    linked: bool = False,
) -> IngestRequest:
    """The rows that accepting ``dossier`` writes: state, outbox event and ingest hop.

    ``due_at``, the due date the bus derived, fills the dossier's when it has none. A
    ``linked`` dossier starts a linkage run: the engine orders its steps, so its submitted
    event is for consumers only and may find no queue.
    """
    now = datetime.now(UTC)
    document = events.dossier_json(dossier)
    # The fingerprint is of what the sender sent, so that a retry after a change of the
    # calendar's configuration (which may move the derived due date) is still a replay.
    fingerprint = content_hash(document)
    if due_at is not None and dossier.due_at is None:
        dossier = dossier.model_copy(update={"due_at": due_at})
        document = events.dossier_json(dossier)
    event = events.dossier_submitted(
        dossier,
        event_id=events.new_event_id(),
        time=now,
        correlation_id=submission.correlation_id,
        traceparent=submission.traceparent,
        data=document,
    )
    payload = events.encode(event)
    return IngestRequest(
        dossier_row={
            "code": dossier.code,
            "procedure_code": dossier.procedure_code,
            "receiving_agency": dossier.receiving_agency,
            "handling_agency": dossier.handling_agency,
            "commune_code": (
                dossier.applicant.address.commune_code if dossier.applicant.address else None
            ),
            "channel": int(dossier.channel),
            "status": int(dossier.status),
            "sequence": event.dossierseq,
            "received_at": dossier.received_at,
            "due_at": dossier.due_at,
            "finished_at": dossier.finished_at,
            "partner_reference": None,
            "content_hash": fingerprint,
            "idempotency_key": submission.idempotency_key,
            "accepted_event_id": event.id,
            "document": document,
            "created_at": now,
            "updated_at": now,
        },
        outbox_row={
            "event_id": event.id,
            "dossier_code": dossier.code,
            "exchange": events_exchange,
            "routing_key": submitted_key(dossier.receiving_agency, dossier.procedure_code),
            # A submitted dossier must reach its connector's queue: unroutable is an error.
            "mandatory": not linked,
            "payload": payload,
            "created_at": now,
            "attempts": 0,
        },
        hop_row={
            "message_id": event.id,
            "dossier_code": dossier.code,
            "correlation_id": event.correlationid,
            "kind": "ingest" if submission.connector is None else RECEIVE_HOP,
            "sender": submission.connector or dossier.receiving_agency,
            "recipient": "bus",
            "received_at": submission.received_at,
            "sent_at": None,
            "answered_at": now,
            "request_bytes": submission.request_bytes,
            "response_bytes": 0,
            "outcome": "accepted",
            "fault_code": None,
            "fault_detail": None,
            "mapping_version": submission.mapping_version,
            "attempt": 1,
        },
        idempotency_key=submission.idempotency_key,
        dossier=dossier,
        event=event,
    )
