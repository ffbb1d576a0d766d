"""Inbound pushes in a partner's own format: ``POST /v1/inbound/{connector}``.

A partner that can push (a ministry's software announcing a status change, a one-stop system
synchronising a dossier) calls the bus in its own dialect: JSON, XML, or a SOAP envelope. The
connector's ``[[inbound]]`` tables (:mod:`bus.inbound.settings`) say which messages it accepts,
which declarative mapping reads each one, and how the partner expects to be answered.

The modules, in the order a push meets them: :mod:`~bus.inbound.reading` (media type, hardened
parsing, which message it is), :mod:`~bus.inbound.service` (mapping, then the same commits as a
polled change or an ingested dossier), :mod:`~bus.inbound.answers` (the verdict in the partner's
words), :mod:`~bus.inbound.soap` and :mod:`~bus.inbound.wsdl` (the SOAP side of it).

Only the configuration models are imported here: :mod:`bus.connector` needs them, and the rest
of the package needs :mod:`bus.connector`.
"""

from __future__ import annotations

from bus.inbound.settings import (
    InboundMessage,
    InboundMessages,
    JsonAnswer,
    SoapAnswer,
    VerdictCodes,
    XmlAnswer,
)

__all__ = [
    "InboundMessage",
    "InboundMessages",
    "JsonAnswer",
    "SoapAnswer",
    "VerdictCodes",
    "XmlAnswer",
]
