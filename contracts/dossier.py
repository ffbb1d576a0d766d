"""The canonical dossier (hồ sơ) and its parts, as the bus carries them between agencies.

Field descriptions name the DVCQG ``DongBoHoSoMC`` field each one maps to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Final, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contracts._model import ContractModel
from contracts.codes import (
    AdminUnitCode,
    AgencyCode,
    CitizenId,
    DossierCode,
    ProcedureCode,
    dossier_receipt_date,
    is_citizen_id,
    mask_citizen_id,
)
from contracts.status import ApplicantKind, Channel, DossierStatus
from contracts.timezone import VN_TZ, VnDateTime

__all__ = [
    "DOSSIER_SCHEMA_VERSION",
    "FORM_MAX_BYTES",
    "FORM_MAX_KEYS",
    "Address",
    "Applicant",
    "BirthRegistrationForm",
    "DeathRegistrationForm",
    "Dossier",
    "Fee",
    "ResultDocument",
    "Sha256Hex",
    "SubmittedDocument",
    "SupplementRequest",
]

DOSSIER_SCHEMA_VERSION: Final = "1.0"
FORM_MAX_KEYS: Final = 200
# A declaration form (tờ khai) is a few kilobytes; attachments travel by URL, never inline.
FORM_MAX_BYTES: Final = 64 * 1024

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Deliberately simple: the one-stop desk types addresses by hand, and email-validator would be a
# dependency for a check the mail server makes anyway.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE_RE = re.compile(r"\+?[0-9 ]+", re.ASCII)
# Mã số BHXH: the 10-digit social-insurance number a person keeps for life.
_SOCIAL_INSURANCE_NUMBER = r"^[0-9]{10}$"

_ReprArgs = Iterable[tuple[str | None, Any]]


def _check_sha256(value: str) -> str:
    if _SHA256_RE.fullmatch(value) is None:
        raise PydanticCustomError("sha256", "sha256 must be 64 lowercase hexadecimal characters")
    return value


def _check_email(value: str) -> str:
    if _EMAIL_RE.fullmatch(value) is None:
        raise PydanticCustomError("email", "email must look like name@example.vn")
    return value


def _check_phone(value: str) -> str:
    digits = sum(ch.isdigit() for ch in value)
    if _PHONE_RE.fullmatch(value) is None or not 8 <= digits <= 15:
        raise PydanticCustomError(
            "phone", "phone must be 8 to 15 digits, optionally with a leading + and spaces"
        )
    return value


Sha256Hex = Annotated[
    str,
    AfterValidator(_check_sha256),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
]
"""A SHA-256 checksum as 64 lowercase hexadecimal characters."""

_Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_check_email)]
_Phone = Annotated[str, StringConstraints(max_length=20), AfterValidator(_check_phone)]
_Text = Annotated[str, StringConstraints(min_length=1, max_length=300)]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
_Url = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
_FormKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _mask_personal(value: Any) -> Any:
    """Mask every CCCD-shaped string in a JSON-like value, for reprs of free-form data."""
    if isinstance(value, str):
        return mask_citizen_id(value) if is_citizen_id(value) else value
    if isinstance(value, dict):
        return {key: _mask_personal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_personal(item) for item in value]
    return value


class _MasksPersonalData(ContractModel):
    """Masks CCCD-shaped values in repr and str, so a logged model does not leak identities."""

    def __repr_args__(self) -> _ReprArgs:
        for name, value in super().__repr_args__():
            yield name, _mask_personal(value)


class Address(ContractModel):
    """A postal address located by statistics-office administrative unit codes."""

    province_code: AdminUnitCode = Field(description="Mã tỉnh — province code, 2 digits")
    district_code: AdminUnitCode | None = Field(
        default=None,
        description="Mã huyện — district code, 3 digits; absent where the 2025 reform removed "
        "the district level",
    )
    commune_code: AdminUnitCode = Field(description="Mã xã — commune code, 5 digits")
    detail: str | None = Field(
        default=None, max_length=500, description="Số nhà, đường, thôn — house number, street"
    )


class Applicant(_MasksPersonalData):
    """The dossier holder (ChuHoSo): a citizen with a CCCD or an organisation with a tax code."""

    kind: ApplicantKind = Field(
        default=ApplicantKind.CITIZEN, description="Loại đối tượng (LoaiDoiTuong)"
    )
    full_name: str = Field(
        min_length=1, max_length=200, description="Chủ hồ sơ (ChuHoSo) — full name"
    )
    identity_number: CitizenId | None = Field(
        default=None, description="Mã đối tượng (MaDoiTuong) — CCCD of a citizen; personal data"
    )
    organisation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Mã số thuế / mã số doanh nghiệp — tax or business code of an organisation",
    )
    date_of_birth: date | None = Field(default=None, description="Ngày sinh — date of birth")
    email: _Email | None = Field(default=None, description="Email")
    phone: _Phone | None = Field(default=None, description="Số điện thoại (SoDienThoai)")
    address: Address | None = Field(default=None, description="Địa chỉ — address")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.kind is ApplicantKind.CITIZEN and self.identity_number is None:
            raise PydanticCustomError(
                "applicant_identity",
                "a citizen applicant needs identity_number (CCCD, 12 digits)",
            )
        if self.kind is ApplicantKind.ORGANISATION and self.organisation_id is None:
            raise PydanticCustomError(
                "applicant_identity",
                "an organisation applicant needs organisation_id (tax or business code)",
            )
        return self


class SubmittedDocument(ContractModel):
    """A document submitted with the dossier (TaiLieuNop), always with its checksum."""

    document_id: _Id = Field(description="Tệp đính kèm (TepDinhKemId) — document id")
    name: _Text = Field(description="Tên tệp đính kèm (TenTepDinhKem) — document name")
    component_code: str | None = Field(
        default=None,
        max_length=100,
        description="Mã thành phần hồ sơ (MaThanhPhanHoSo) — which required component it is",
    )
    url: _Url | None = Field(
        default=None, description="Đường dẫn tải tệp tin (DuongDanTaiTepTin) — download URL"
    )
    sha256: Sha256Hex = Field(description="SHA-256 of the file, so every hop can verify it")
    size_bytes: int | None = Field(default=None, ge=0, description="File size in bytes")
    media_type: str | None = Field(
        default=None, max_length=100, description="Media type, e.g. application/pdf"
    )


class Fee(ContractModel):
    """A fee or charge of the procedure (DanhSachLePhi)."""

    name: _Text = Field(description="Tên phí, lệ phí (TenPhiLePhi) — fee name")
    code: str | None = Field(
        default=None, max_length=50, description="Mã phí, lệ phí (MaPhiLePhi) — fee code"
    )
    collection_method: int | None = Field(
        default=None, description="Hình thức thu (HinhThucThu) — how it is collected"
    )
    amount_vnd: int = Field(ge=0, description="Giá (Gia) — amount in Vietnamese đồng")


class SupplementRequest(ContractModel):
    """A request to the applicant for missing papers (DanhSachHoSoBoSung)."""

    requested_at: VnDateTime = Field(description="Ngày yêu cầu bổ sung — when it was requested")
    reason: str = Field(
        min_length=1, max_length=2000, description="Nội dung yêu cầu bổ sung — what is missing"
    )
    requested_by: str | None = Field(
        default=None, max_length=200, description="Người yêu cầu — the requesting officer"
    )
    deadline_at: VnDateTime | None = Field(
        default=None, description="Hạn bổ sung — by when the applicant must supply it"
    )
    supplied_at: VnDateTime | None = Field(
        default=None,
        description="Ngày công dân bổ sung — when it was supplied; the wait does not count "
        "against the agency's deadline",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for name in ("deadline_at", "supplied_at"):
            moment = getattr(self, name)
            if moment is not None and moment < self.requested_at:
                raise PydanticCustomError(
                    "date_order", "{field} must not be before requested_at", {"field": name}
                )
        return self


class ResultDocument(ContractModel):
    """A result paper issued to the applicant (DanhSachGiayToKetQua)."""

    document_id: _Id = Field(description="Giấy tờ (GiayToId) — result document id")
    name: _Text = Field(description="Tên giấy tờ (TenGiayTo) — result document name")
    url: _Url | None = Field(
        default=None, description="Đường dẫn tệp tin kết quả (DuongDanTepTinKetQua) — URL"
    )
    sha256: Sha256Hex | None = Field(default=None, description="SHA-256 of the file")


class Dossier(_MasksPersonalData):
    """One application for one procedure by one applicant: the unit that flows on the bus."""

    schema_version: Literal["1.0"] = "1.0"
    code: DossierCode = Field(description="Mã hồ sơ (MaHoSo) — dossier code")
    procedure_code: ProcedureCode = Field(description="Mã TTHC (MaTTHC) — procedure code")
    procedure_name: str | None = Field(
        default=None, max_length=500, description="Tên TTHC (TenTTHC) — procedure name"
    )
    field_code: str | None = Field(
        default=None, max_length=50, description="Mã lĩnh vực (MaLinhVuc) — field code"
    )
    field_name: str | None = Field(
        default=None, max_length=300, description="Tên lĩnh vực (TenLinhVuc) — field name"
    )
    receiving_agency: AgencyCode = Field(description="Cơ quan tiếp nhận — receiving agency")
    handling_agency: AgencyCode = Field(description="Đơn vị xử lý (DonViXuLy) — handling agency")
    receipt_number: str | None = Field(
        default=None, max_length=50, description="Số biên nhận (SoBienNhan) — receipt number"
    )
    channel: Channel = Field(description="Kênh thực hiện (KenhThucHien) — submission channel")
    summary: str | None = Field(
        default=None, max_length=2000, description="Trích yếu hồ sơ (TrichYeuHoSo) — summary"
    )
    applicant: Applicant = Field(
        description="Chủ hồ sơ (ChuHoSo, LoaiDoiTuong, MaDoiTuong, Email, SoDienThoai)"
    )
    received_at: VnDateTime = Field(description="Ngày tiếp nhận (NgayTiepNhan) — received at")
    due_at: VnDateTime | None = Field(
        default=None, description="Ngày hẹn trả (NgayHenTra) — due date of the result"
    )
    finished_at: VnDateTime | None = Field(
        default=None, description="Ngày kết thúc xử lý (NgayKetThucXuLy) — processing finished"
    )
    returned_at: VnDateTime | None = Field(
        default=None, description="Ngày trả (NgayTra) — result returned to the applicant"
    )
    result_delivery: int | None = Field(
        default=None, description="Hình thức (HinhThuc) — how the result is delivered"
    )
    status: DossierStatus = Field(
        default=DossierStatus.NEW, description="Trạng thái hồ sơ (TrangThaiHoSo) — status"
    )
    documents: list[SubmittedDocument] = Field(
        default_factory=list, max_length=100, description="Tài liệu nộp (TaiLieuNop)"
    )
    fees: list[Fee] = Field(
        default_factory=list, max_length=50, description="Danh sách lệ phí (DanhSachLePhi)"
    )
    supplement_requests: list[SupplementRequest] = Field(
        default_factory=list,
        max_length=20,
        description="Danh sách hồ sơ bổ sung (DanhSachHoSoBoSung) — supplement requests",
    )
    results: list[ResultDocument] = Field(
        default_factory=list,
        max_length=50,
        description="Danh sách giấy tờ kết quả (DanhSachGiayToKetQua) — result documents",
    )
    form: dict[_FormKey, JsonValue] = Field(
        default_factory=dict,
        max_length=FORM_MAX_KEYS,
        description="Tờ khai — procedure-specific form data, validated by the procedure's "
        f"connector; at most {FORM_MAX_KEYS} keys and {FORM_MAX_BYTES} bytes as JSON",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name in ("due_at", "finished_at", "returned_at"):
            moment = getattr(self, name)
            if moment is not None and moment < self.received_at:
                raise PydanticCustomError(
                    "date_order",
                    "{field} ({moment}) must not be before received_at ({received})",
                    {
                        "field": name,
                        "moment": moment.isoformat(),
                        "received": self.received_at.isoformat(),
                    },
                )
        # Circular 01/2018 art. 19: the code carries the receipt date, in local time.
        coded = dossier_receipt_date(self.code)
        local = self.received_at.astimezone(VN_TZ).date()
        if coded != local:
            raise PydanticCustomError(
                "dossier_code_date",
                "dossier code {code} carries receipt date {coded} but received_at is {local} "
                "in Asia/Ho_Chi_Minh; the YYMMDD part must be the local receipt date",
                {"code": self.code, "coded": coded.isoformat(), "local": local.isoformat()},
            )
        if self.form and len(orjson.dumps(self.form)) > FORM_MAX_BYTES:
            raise PydanticCustomError(
                "form_too_large",
                "form must not exceed {limit} bytes as JSON; send attachments as documents",
                {"limit": FORM_MAX_BYTES},
            )
        return self


class BirthRegistrationForm(_MasksPersonalData):
    """The declaration form (tờ khai) of birth registration, procedure 1.001193.

    The civil-status connector validates ``Dossier.form`` against this model.
    """

    child_full_name: str = Field(
        min_length=1, max_length=200, description="Họ, chữ đệm, tên người được khai sinh"
    )
    child_date_of_birth: date = Field(description="Ngày, tháng, năm sinh — date of birth")
    child_gender: Literal["male", "female"] = Field(description="Giới tính — gender")
    place_of_birth: str = Field(min_length=1, max_length=500, description="Nơi sinh")
    mother_full_name: str = Field(min_length=1, max_length=200, description="Họ tên mẹ")
    mother_identity_number: CitizenId | None = Field(default=None, description="Số CCCD của mẹ")
    father_full_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Họ tên cha"
    )
    father_identity_number: CitizenId | None = Field(default=None, description="Số CCCD của cha")
    ethnicity: str | None = Field(default=None, max_length=100, description="Dân tộc")
    nationality: str = Field(
        default="VN",
        pattern=r"^[A-Z]{2}$",
        description="Quốc tịch — nationality, ISO 3166-1 alpha-2",
    )

    @model_validator(mode="after")
    def _father_named(self) -> Self:
        if self.father_identity_number is not None and self.father_full_name is None:
            raise PydanticCustomError(
                "father_name", "father_identity_number needs father_full_name"
            )
        return self


class DeathRegistrationForm(_MasksPersonalData):
    """The declaration form (tờ khai) of death registration, procedure 1.007073.

    One form feeds the whole death linkage bundle: civil status registers the death (khai tử),
    Public Security removes the deceased's permanent residence (xóa đăng ký thường trú) at the
    last place of residence, and Social Security settles the funeral allowance (trợ cấp mai
    táng) for the declarant. The death extract number that civil status issues is passed on to
    the later steps by the linkage engine, not typed into this form.
    """

    deceased_full_name: str = Field(
        min_length=1, max_length=200, description="Họ, chữ đệm, tên người đã chết"
    )
    deceased_date_of_birth: date = Field(description="Ngày, tháng, năm sinh — date of birth")
    deceased_gender: Literal["male", "female"] = Field(description="Giới tính — gender")
    deceased_identity_number: CitizenId = Field(
        description="Số định danh cá nhân (CCCD) của người đã chết: how residence and social "
        "insurance find the person; personal data"
    )
    deceased_ethnicity: str | None = Field(default=None, max_length=100, description="Dân tộc")
    deceased_nationality: str = Field(
        default="VN",
        pattern=r"^[A-Z]{2}$",
        description="Quốc tịch — nationality, ISO 3166-1 alpha-2",
    )
    deceased_social_insurance_number: str | None = Field(
        default=None,
        pattern=_SOCIAL_INSURANCE_NUMBER,
        description="Mã số BHXH — social-insurance number (10 digits), when the deceased had "
        "one; personal data",
    )
    last_residence: Address = Field(
        description="Nơi cư trú cuối cùng — last place of residence, where the permanent "
        "residence is removed"
    )
    date_of_death: date = Field(description="Ngày chết — date of death")
    place_of_death: str = Field(min_length=1, max_length=500, description="Nơi chết")
    cause_of_death: str | None = Field(
        default=None, min_length=1, max_length=500, description="Nguyên nhân chết"
    )
    death_notice_number: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Số Giấy báo tử (or of the paper that replaces it)",
    )
    death_notice_issuer: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="Nơi cấp Giấy báo tử — who issued it, e.g. the hospital",
    )
    declarant_full_name: str = Field(
        min_length=1, max_length=200, description="Họ tên người đi khai tử — the declarant"
    )
    declarant_identity_number: CitizenId | None = Field(
        default=None, description="Số CCCD của người đi khai tử; personal data"
    )
    declarant_relationship: str = Field(
        min_length=1,
        max_length=100,
        description="Quan hệ với người đã chết — e.g. Con, Vợ, Chồng",
    )

    def __repr_args__(self) -> _ReprArgs:
        # The social-insurance number is 10 digits, not CCCD-shaped: masked by name.
        for name, value in super().__repr_args__():
            if name == "deceased_social_insurance_number" and isinstance(value, str):
                yield name, mask_citizen_id(value)
            else:
                yield name, value

    @model_validator(mode="after")
    def _plausible(self) -> Self:
        if self.date_of_death < self.deceased_date_of_birth:
            raise PydanticCustomError(
                "date_order", "date_of_death must not be before deceased_date_of_birth"
            )
        if self.declarant_identity_number == self.deceased_identity_number:
            raise PydanticCustomError(
                "declarant_identity",
                "declarant_identity_number is the deceased's: the declarant is someone else",
            )
        return self
