"""The partner side of a provincial JSON gateway: its error codes, its refusals, its field checks.

Gateways in front of ministry systems answer every call with ``error_code`` (0 for success) and
a ``message``, with HTTP 200 even for a refusal; :mod:`bus.rest` reads them on the bus side
(``GATEWAY_ERRORS``). A simulator checks a request with :func:`read_json_object`,
:func:`required_text` and :func:`optional_text`, which raise :class:`GatewayRefusal` with the
code the gateway would answer, and turns the refusal into the answer with
:meth:`GatewayRefusal.response`; :func:`read_gateway_payload` reads a call's body up to that
point, answering an oversized, sick or unreadable call on the way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bus.testing.answers import SickAnswers, read_capped_body, sick_answer
from bus.testing.state import PartnerState
from bus.testing.switches import DossierFaultSwitches

__all__ = [
    "GATEWAY_SICK",
    "GatewayCode",
    "GatewayRefusal",
    "PayloadReader",
    "applied_answer",
    "dossier_fault_answer",
    "gateway_error",
    "optional_text",
    "read_gateway_payload",
    "read_json_object",
    "required_text",
]

GATEWAY_SICK: Final = SickAnswers(
    busy=lambda: JSONResponse({"message": "Hệ thống đang bận, vui lòng thử lại sau"}, 503),
    timed_out=lambda: JSONResponse({"message": "Hết thời gian xử lý"}, 504),
)
"""How a provincial gateway answers when sick: busy and timed out in its own words, in JSON."""

PayloadReader = Callable[[Request], Awaitable["dict[str, Any] | Response"]]
"""Reads a call's JSON object, or answers the call (see :func:`read_gateway_payload`)."""


class GatewayCode(IntEnum):
    """Error codes seen on provincial gateways (the same table as ``bus.rest.GATEWAY_ERRORS``)."""

    AUTHEN_ERROR = 100
    IP_DISALLOWED = 101
    AGENCY_ID_INCORRECT = 106
    PROVINCE_ID_INCORRECT = 108
    RECORD_UNCOMPLETE = 200
    RECORD_NOT_FOUND = 201
    DATA_TYPE_INVALID = 302
    DATA_INCORRECT = 500


def gateway_error(code: int, message: str, status_code: int = 200) -> JSONResponse:
    """``{"error_code": code, "message": message}``, with HTTP 200 unless told otherwise."""
    return JSONResponse({"error_code": int(code), "message": message}, status_code=status_code)


def dossier_fault_answer(faults: DossierFaultSwitches, dossier_code: str) -> JSONResponse | None:
    """The answer to a dossier the switches make the partner choke on or refuse; else None.

    A dossier in ``failing_dossiers`` gets HTTP 503 (unapplied, so the bus retries it);
    ``reject_all`` gets DATA_INCORRECT with HTTP 200 (a business refusal, never retried).
    """
    if dossier_code in faults.failing_dossiers:
        return JSONResponse({"message": "Lỗi xử lý hồ sơ, vui lòng thử lại sau"}, 503)
    if faults.reject_all:
        message = "Dữ liệu không chính xác: hồ sơ bị từ chối"
        return gateway_error(GatewayCode.DATA_INCORRECT, message)
    return None


def applied_answer(body: dict[str, Any], existed: bool) -> JSONResponse:
    """The answer to an applied dossier; a repeat also says ``daTonTai: true`` (already there)."""
    return JSONResponse({**body, "daTonTai": True} if existed else body)


def answer_dossier_act(
    faults: DossierFaultSwitches,
    read: Callable[[Any], dict[str, Any]],
    payload: Any,
    act: Callable[..., tuple[Any, bool]],
    kind: type[Any] | tuple[type[Any], ...],
) -> JSONResponse:
    """Read a call about one dossier, apply the dossier switches, act once, answer.

    ``read`` turns the payload into ``act``'s keyword arguments (with ``dossier_code``) or
    raises :class:`GatewayRefusal`; ``act`` returns the record (with an ``answer()``) and whether
    it existed. One dossier code names one act: a code already used for another ``kind`` of act
    (a registration, then a removal) is refused.
    """
    try:
        fields = read(payload)
    except GatewayRefusal as refusal:
        return refusal.response()
    refused = dossier_fault_answer(faults, fields["dossier_code"])
    if refused is not None:
        return refused
    record, existed = act(**fields)
    if not isinstance(record, kind):
        return gateway_error(GatewayCode.DATA_INCORRECT, "Mã hồ sơ đã được dùng cho thủ tục khác")
    return applied_answer(record.answer(), existed)


class GatewayRefusal(Exception):
    """Raised by a simulator's checks: the call is refused with this gateway error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self, status_code: int = 200) -> JSONResponse:
        """The refusal as the gateway answers it."""
        return gateway_error(self.code, self.message, status_code)


def read_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; DATA_TYPE_INVALID when it is not one."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GatewayRefusal(
            GatewayCode.DATA_TYPE_INVALID, "Dữ liệu gửi lên không phải JSON hợp lệ"
        ) from exc
    if not isinstance(payload, dict):
        raise GatewayRefusal(
            GatewayCode.DATA_TYPE_INVALID, "Dữ liệu gửi lên phải là một đối tượng JSON"
        )
    return payload


def optional_text(payload: dict[str, Any], path: str) -> str | None:
    """A text field at a dotted path, stripped; None when absent; DATA_TYPE_INVALID if not text."""
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise GatewayRefusal(GatewayCode.DATA_TYPE_INVALID, f"{path} phải là chuỗi ký tự")
    return value.strip()


def required_text(payload: dict[str, Any], path: str) -> str:
    """A text field at a dotted path; RECORD_UNCOMPLETE when it is missing or blank."""
    value = optional_text(payload, path)
    if not value:
        raise GatewayRefusal(GatewayCode.RECORD_UNCOMPLETE, f"Thiếu thông tin bắt buộc: {path}")
    return value


async def read_gateway_payload(
    request: Request,
    state: PartnerState[Any],
    *,
    limit: int,
    answers: SickAnswers = GATEWAY_SICK,
    too_large: int = GatewayCode.DATA_INCORRECT,
) -> dict[str, Any] | Response:
    """The call's JSON object; or, for an oversized, sick or unreadable call, its answer.

    In the gateway's order: a body over ``limit`` bytes is refused first (``too_large`` with
    HTTP 413, unread), then the switches may make the partner sick (:func:`sick_answer`), then
    a body that is not a JSON object is DATA_TYPE_INVALID.
    """
    raw = await read_capped_body(request, limit)
    if raw is None:
        return gateway_error(too_large, "Dữ liệu gửi lên quá lớn", 413)
    if (sick := await sick_answer(request, state, answers)) is not None:
        return sick
    try:
        return read_json_object(raw)
    except GatewayRefusal as refusal:
        return refusal.response()
