"""Reading a push off the wire: its format, parsed under the bus's caps, and which message it is.

Nothing here maps anything: a push that is not one of the partner's messages, in one of its
formats, is :class:`Refused` before any mapping runs. JSON goes through the API's own reader
(:func:`bus.api.body.parse_json`: UTF-8, depth cap); XML and SOAP only through the hardened
parser :func:`bus.xmlsafe.parse_xml` (no DTD, no entities, no XInclude, size and depth caps).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from bus.api.body import parse_json
from bus.api.problems import Problem
from bus.inbound import soap
from bus.inbound.answers import Verdict
from bus.inbound.settings import InboundFormat, InboundMessage
from bus.mapping.xmldoc import element_content
from bus.xmlsafe import UnsafeXml, parse_xml

__all__ = ["Push", "Refused", "looks_like", "media_type_of", "read_push"]

_SOAP_MEDIA_TYPES: Final = frozenset({"text/xml", "application/soap+xml"})
_XML_MEDIA_TYPES: Final = _SOAP_MEDIA_TYPES | {"application/xml"}


@dataclass(frozen=True, slots=True)
class Push:
    """A push as read: the message it is, its payload as expressions read it, its size."""

    message: InboundMessage
    payload: dict[str, Any]
    size: int
    #: The SOAP version of a SOAP push, which its answer must use.
    soap_version: soap.SoapVersion | None = None


class Refused(Exception):
    """Raised when a push is refused before mapping: why, what it looked like (so that the
    answer takes the style of the partner's messages of that format), and its SOAP version."""

    def __init__(
        self,
        verdict: Verdict,
        *,
        looked_like: InboundFormat | None,
        soap_version: soap.SoapVersion | None = None,
    ) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict
        self.looked_like = looked_like
        self.soap_version = soap_version


def media_type_of(content_type: str | None) -> str:
    """``text/xml; charset=utf-8`` → ``text/xml``."""
    return (content_type or "").split(";")[0].strip().lower()


def looks_like(media: str, formats: Collection[InboundFormat]) -> InboundFormat | None:
    """Which of the partner's formats a media type announces, before the body is read.

    ``text/xml`` is SOAP 1.1's media type, so a partner with both SOAP and plain XML messages
    is guessed SOAP until its body shows otherwise.
    """
    if _is_json(media):
        return "json" if "json" in formats else None
    if not _is_xml(media):
        return None
    if "soap" in formats and ("xml" not in formats or media in _SOAP_MEDIA_TYPES):
        return "soap"
    return "xml" if "xml" in formats else None


def read_push(
    raw: bytes,
    content_type: str | None,
    messages: Sequence[InboundMessage],
    *,
    max_bytes: int,
    max_depth: int,
) -> Push:
    """The message ``raw`` is, among the connector's ``messages``; :class:`Refused` otherwise."""
    media = media_type_of(content_type)
    formats = {m.format for m in messages}
    kind = looks_like(media, formats)
    guess = soap.version_for_media_type(media) if kind == "soap" else None
    if kind is None:
        offered = ", ".join(_MEDIA_TYPES_OF[f] for f in sorted(formats))
        raise Refused(
            Verdict("unreadable", f"send {offered} (got {media or 'no Content-Type'})", 415),
            looked_like=None,
        )
    if not raw.strip():
        raise _unreadable("the request body is empty", kind, guess)
    if kind == "json":
        return _read_json(raw, messages, max_depth)
    return _read_xml(raw, messages, kind, guess, max_bytes=max_bytes, max_depth=max_depth)


_MEDIA_TYPES_OF: Final[dict[InboundFormat, str]] = {
    "json": "application/json",
    "xml": "application/xml",
    "soap": "a SOAP envelope (text/xml or application/soap+xml)",
}


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _is_xml(media: str) -> bool:
    return media in _XML_MEDIA_TYPES or media.endswith("+xml")


def _unreadable(
    message: str,
    looked_like: InboundFormat,
    version: soap.SoapVersion | None = None,
    status: int = 400,
) -> Refused:
    return Refused(
        Verdict("unreadable", message, status), looked_like=looked_like, soap_version=version
    )


def _read_json(raw: bytes, messages: Sequence[InboundMessage], max_depth: int) -> Push:
    try:
        value = parse_json(raw, max_depth=max_depth)
    except Problem as exc:
        raise _unreadable(exc.detail, "json", status=exc.status) from exc
    if not isinstance(value, dict):
        raise _unreadable(f"expected a JSON object, got a JSON {type(value).__name__}", "json")
    for message in messages:
        if message.format == "json" and all(
            _text(value.get(name)) == expected for name, expected in message.when.items()
        ):
            return Push(message, value, len(raw))
    expected = "; ".join(
        ", ".join(f"{k} = {v}" for k, v in m.when.items()) for m in messages if m.format == "json"
    )
    raise _unreadable(f"the payload is none of this partner's JSON messages ({expected})", "json")


def _read_xml(
    raw: bytes,
    messages: Sequence[InboundMessage],
    kind: InboundFormat,
    guess: soap.SoapVersion | None,
    *,
    max_bytes: int,
    max_depth: int,
) -> Push:
    try:
        root = parse_xml(raw, max_bytes=max_bytes, max_depth=max_depth)
    except UnsafeXml as exc:
        raise _unreadable(f"XML refused: {exc}", kind, guess) from exc
    formats = {m.format for m in messages}
    if "soap" in formats and (soap.is_envelope(root) or "xml" not in formats):
        try:
            call = soap.read_call(root)
        except soap.NotSoap as exc:
            raise _unreadable(str(exc), "soap", guess or "1.1") from exc
        message = _by_element(messages, "soap", call.operation, call.version)
        return Push(message, element_content(call.element), len(raw), call.version)
    name = str(etree.QName(root).localname)
    return Push(_by_element(messages, "xml", name, None), element_content(root), len(raw))


def _by_element(
    messages: Sequence[InboundMessage],
    format_: InboundFormat,
    name: str,
    version: soap.SoapVersion | None,
) -> InboundMessage:
    for message in messages:
        if message.format == format_ and message.operation == name:
            return message
    offered = ", ".join(sorted(str(m.operation) for m in messages if m.format == format_))
    what = "operation" if format_ == "soap" else "document"
    raise _unreadable(f"no {what} <{name[:100]}> here; offered: {offered}", format_, version)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
