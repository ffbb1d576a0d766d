"""The bus's own exceptions: every foreign error becomes one of these at the edge.

Hierarchy (each failure is classified so the worker knows whether to retry)::

    BusError
    ├── TransientError            retry later through the delay tiers
    │   ├── PartnerUnavailable    partner refused the connection, timed out, or answered 5xx
    │   ├── BrokerUnavailable     RabbitMQ could not be reached or did not confirm in time
    │   └── Unroutable            RabbitMQ had no queue bound for a mandatory message
    └── PermanentError            retrying cannot help: park the message with its reason
        ├── InvalidMessage        a message on a queue is not a well-formed bus event
        ├── PartnerRejected       partner answered with a business rejection or a 4xx
        ├── UntrustedReply        partner's answer is not signed as agreed, or not for this call
        ├── MappingError          a value could not be translated to or from a partner dialect
        └── UnknownConnector      no connector is registered under the requested id

Foreign libraries (httpx, zeep, aio-pika) are translated in exactly one place per library, always
with ``raise ... from exc`` so the original traceback stays attached.
"""

from __future__ import annotations

from typing import ClassVar


class BusError(Exception):
    """Base of every error the bus raises on purpose."""

    #: Stable short code written to the transaction log and to parking-queue headers.
    fault_code: ClassVar[str] = "BUS_ERROR"
    #: Whether trying again later may succeed.
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, fault_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if fault_code is not None:
            # Instances may carry the partner's own code (e.g. "201 RECORD_NOT_FOUND").
            self.fault_code = fault_code  # type: ignore[misc]

    @property
    def error_class(self) -> str:
        """``transient`` or ``permanent``: how the worker must treat this failure."""
        return "transient" if self.transient else "permanent"


class TransientError(BusError):
    """Raised when a failure may pass by itself: the message is retried with back-off."""

    fault_code = "TRANSIENT"
    transient = True


class PartnerUnavailable(TransientError):
    """Raised when a partner cannot be reached, times out, or answers with a server error."""

    fault_code = "PARTNER_UNAVAILABLE"


class BrokerUnavailable(TransientError):
    """Raised when RabbitMQ is unreachable or a publish is not confirmed within its timeout."""

    fault_code = "BROKER_UNAVAILABLE"


class Backlogged(TransientError):
    """Raised when more work already waits than a process queues: the load is shed ("busy,
    retry") rather than let waiting requests pile up without bound."""

    fault_code = "BACKLOGGED"


class Unroutable(TransientError):
    """Raised when a mandatory message matched no queue: its consumer's queue is not declared."""

    fault_code = "UNROUTABLE"


class PermanentError(BusError):
    """Raised when retrying cannot help: the message is parked with the reason."""

    fault_code = "PERMANENT"


class InvalidMessage(PermanentError):
    """Raised when a queued message is not a well-formed bus event (bad JSON, missing fields)."""

    fault_code = "INVALID_MESSAGE"


class PartnerRejected(PermanentError):
    """Raised when a partner refuses the request itself: a business rejection or an HTTP 4xx."""

    fault_code = "PARTNER_REJECTED"


class UntrustedReply(PermanentError):
    """Raised when a partner that signs its answers sends one unsigned, signed by another key,
    altered, stale, or naming another request: the bus cannot act on it. Permanent, so the
    dossier is parked (a wrong key is fixed in configuration, then the dossier replayed)
    instead of hammering the partner with calls whose answers will be refused alike."""

    fault_code = "UNTRUSTED_REPLY"


class MappingError(PermanentError):
    """Raised when a value cannot be translated between a partner dialect and the contract.

    When raised by the mapping engine it names the mapping (``partner/version/message``), the
    source path, the target field and the offending value (personal numbers masked).
    """

    fault_code = "MAPPING_ERROR"

    def __init__(
        self,
        message: str,
        *,
        fault_code: str | None = None,
        mapping: str | None = None,
        source_path: str | None = None,
        target_field: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message, fault_code=fault_code)
        self.mapping = mapping
        self.source_path = source_path
        self.target_field = target_field
        self.value = value


class UnknownConnector(PermanentError):
    """Raised when a message names a connector id that no registry entry provides."""

    fault_code = "UNKNOWN_CONNECTOR"
