"""What the civil-status software reads and answers: the ``dangKyHoTich`` request and its reply.

Pure functions, no I/O: a canonical :class:`~contracts.Dossier` becomes the JSON body with its
``<hoSoKhaiSinh>`` XML, and the partner's JSON answer becomes a :class:`PartnerAnswer`.
Vietnamese names appear here because the partner speaks them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from lxml import etree
from pydantic import ValidationError

from bus.errors import MappingError
from contracts import VN_TZ, BirthRegistrationForm, Dossier, DossierStatus, mask_citizen_id

__all__ = [
    "BIRTH_MODULE",
    "DOSSIER_STATUS_BY_PARTNER_STATUS",
    "MAPPING_VERSION",
    "PARTNER_STATUS_ERROR",
    "MalformedAnswer",
    "PartnerAnswer",
    "birth_registration_xml",
    "build_request",
    "encode_request",
    "mask_identity_numbers",
    "parse_answer",
    "partner_message",
    "read_birth_form",
]

MAPPING_VERSION: Final = "civil_status@1.0"
"""Version of this mapping, recorded on every delivery receipt; bump it when the wire changes."""

BIRTH_MODULE: Final = "KS"
"""``module`` of birth registration (khai sinh) in the civil-status software."""

PARTNER_STATUS_ERROR: Final = 0
"""``trangThai`` 0: the partner refused the request."""

DOSSIER_STATUS_BY_PARTNER_STATUS: Final[dict[int, DossierStatus]] = {
    1: DossierStatus.ACCEPTED,  # đã tiếp nhận
    2: DossierStatus.SUPPLEMENT_REQUESTED,  # cần bổ sung hồ sơ
    3: DossierStatus.PROCESSING,  # đủ điều kiện, chờ đăng ký
    4: DossierStatus.PROCESSED,  # đã đăng ký: the certificate is issued the same day
}
"""Civil-status ``trangThai`` (1-4) to the national dossier status (DVCQG ``TrangThaiHoSo``)."""

_GENDER_CODES: Final = {"male": "1", "female": "2"}
_RECEIVED_AT_FORMAT: Final = "%Y%m%d%H%M%S"
_DATE_FORMAT: Final = "%d/%m/%Y"
_MAX_QUOTED_VALUE: Final = 60
_CCCD_IN_TEXT: Final = re.compile(r"(?<!\d)\d{12}(?!\d)")


class MalformedAnswer(ValueError):
    """Raised when the partner's answer is not the JSON object the protocol promises."""


@dataclass(frozen=True, slots=True)
class PartnerAnswer:
    """The partner's answer to ``dangKyHoTich`` or ``traTrangThaiHoSo``."""

    partner_status: int
    dossier_code: str | None = None
    registration_number: str | None = None
    message: str | None = None
    already_registered: bool = False

    @property
    def refused(self) -> bool:
        """Whether the partner refused the dossier (``trangThai`` 0)."""
        return self.partner_status == PARTNER_STATUS_ERROR

    @property
    def dossier_status(self) -> DossierStatus:
        """The national dossier status this answer means; not defined for a refusal."""
        return DOSSIER_STATUS_BY_PARTNER_STATUS[self.partner_status]


def read_birth_form(dossier: Dossier) -> BirthRegistrationForm:
    """Validate the dossier's form as a birth declaration; raise MappingError naming the field."""
    try:
        return BirthRegistrationForm.model_validate(dossier.form)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors(include_url=False))
        raise MappingError(
            f"dossier {dossier.code}: birth registration form is invalid: {problems}",
            fault_code="FORM_INVALID",
        ) from exc


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "form"
    if error["type"] == "missing":
        return f"{field} is missing"
    return f"{field}={_quote(field, error.get('input'))}: {error['msg']}"


def _quote(field: str, value: object) -> str:
    # Error messages reach logs and parking queues: never quote an identity number whole.
    if isinstance(value, dict | list):
        return f"<{type(value).__name__}>"
    text = str(value)
    if "identity" in field or (text.isdigit() and len(text) >= 9):
        return repr(mask_citizen_id(text))
    if len(text) > _MAX_QUOTED_VALUE:
        text = text[:_MAX_QUOTED_VALUE] + "…"
    return repr(text)


def birth_registration_xml(dossier: Dossier, form: BirthRegistrationForm) -> bytes:
    """The ``<hoSoKhaiSinh>`` document (UTF-8) carried in the request's ``data`` field."""
    root = etree.Element("hoSoKhaiSinh")
    child = etree.SubElement(root, "treEm")
    _add(child, "hoTen", form.child_full_name)
    _add(child, "ngaySinh", _format_date(form.child_date_of_birth))
    _add(child, "gioiTinh", _GENDER_CODES[form.child_gender])
    _add(child, "noiSinh", form.place_of_birth)
    _add(child, "danToc", form.ethnicity)
    _add(child, "quocTich", form.nationality)

    mother = etree.SubElement(root, "me")
    _add(mother, "hoTen", form.mother_full_name)
    _add(mother, "soDinhDanh", form.mother_identity_number)

    if form.father_full_name is not None:
        father = etree.SubElement(root, "cha")
        _add(father, "hoTen", form.father_full_name)
        _add(father, "soDinhDanh", form.father_identity_number)

    requester = etree.SubElement(root, "nguoiYeuCau")
    _add(requester, "hoTen", dossier.applicant.full_name)
    _add(requester, "soDinhDanh", dossier.applicant.identity_number)
    result: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    return result


def _add(parent: Any, tag: str, text: str | None) -> None:
    # Absent optional values are left out rather than sent as empty elements.
    if text is not None:
        etree.SubElement(parent, tag).text = text


def _format_date(value: date) -> str:
    return value.strftime(_DATE_FORMAT)


def build_request(dossier: Dossier) -> dict[str, str]:
    """The ``dangKyHoTich`` JSON body for a birth-registration dossier.

    Raises :class:`~bus.errors.MappingError` when the form is not a valid birth declaration.
    """
    form = read_birth_form(dossier)
    return {
        "maDonVi": dossier.receiving_agency,
        "module": BIRTH_MODULE,
        "maHoSo": dossier.code,
        "ngayTiepNhan": dossier.received_at.astimezone(VN_TZ).strftime(_RECEIVED_AT_FORMAT),
        "data": birth_registration_xml(dossier, form).decode("utf-8"),
    }


def encode_request(body: dict[str, str]) -> bytes:
    """The request body as UTF-8 JSON bytes (Vietnamese text kept readable, not escaped)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_answer(content: bytes) -> PartnerAnswer:
    """Read the partner's JSON answer; raise :class:`MalformedAnswer` when it is not one."""
    try:
        payload = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedAnswer(f"answer is not JSON: {_snippet(content)}") from exc
    if not isinstance(payload, dict):
        raise MalformedAnswer(f"answer is not a JSON object: {_snippet(content)}")
    status = payload.get("trangThai")
    # bool is an int in Python, and True must not pass for trangThai 1.
    if isinstance(status, bool) or not isinstance(status, int):
        raise MalformedAnswer(f"answer has no integer trangThai: {_snippet(content)}")
    if status != PARTNER_STATUS_ERROR and status not in DOSSIER_STATUS_BY_PARTNER_STATUS:
        raise MalformedAnswer(f"answer has unknown trangThai {status}")
    return PartnerAnswer(
        partner_status=status,
        dossier_code=_optional_text(payload, "maHoSo"),
        registration_number=_optional_text(payload, "soDangKy"),
        message=_masked(_optional_text(payload, "moTa")),
        already_registered=payload.get("daTonTai") is True,
    )


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedAnswer(f"answer field {key} is not a string: {value!r}")
    return value or None


def _masked(text: str | None) -> str | None:
    # The partner's free text may echo the form; it ends up in receipts and errors.
    return None if text is None else mask_identity_numbers(text)


def partner_message(content: bytes) -> str:
    """The partner's own words from an error answer: ``moTa`` when it sent JSON, else a snippet."""
    try:
        payload = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _snippet(content)
    if isinstance(payload, dict) and isinstance(payload.get("moTa"), str):
        return mask_identity_numbers(str(payload["moTa"])[:500])
    return _snippet(content)


def mask_identity_numbers(text: str) -> str:
    """Mask every CCCD-shaped run of 12 digits in free text before it reaches a log or error."""
    return _CCCD_IN_TEXT.sub(lambda match: mask_citizen_id(match.group()), text)


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", errors="replace")
    return repr(mask_identity_numbers(text) + ("…" if len(content) > limit else ""))
