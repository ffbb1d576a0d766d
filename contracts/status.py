"""Dossier status (DVCQG ``TrangThaiHoSo``), channel, applicant kind, and the status-change record.

Local and ministry status lists are mapped into ``DossierStatus`` at the connector edge.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, Literal

from pydantic import Field

from contracts._model import ContractModel
from contracts.codes import AgencyCode, DossierCode
from contracts.timezone import VnDateTime

__all__ = [
    "FINISHED_STATUSES",
    "OPEN_STATUSES",
    "STATUS_CHANGE_SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "ApplicantKind",
    "Channel",
    "DossierStatus",
    "StatusChange",
]

STATUS_CHANGE_SCHEMA_VERSION: Final = "1.0"


class DossierStatus(IntEnum):
    """The ten national dossier statuses (DVCQG ``TrangThaiHoSo``)."""

    NEW = 1
    ACCEPTED = 2
    NOT_ACCEPTED = 3
    PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    FINANCIAL_OBLIGATION = 6
    WITHDRAWN = 7
    STOPPED = 8
    PROCESSED = 9
    RESULT_RETURNED = 10

    @property
    def label_vi(self) -> str:
        """The Vietnamese label shown to officers and citizens."""
        return _STATUS_LABELS[self][0]

    @property
    def label_en(self) -> str:
        """The English label."""
        return _STATUS_LABELS[self][1]


_STATUS_LABELS: Final[dict[DossierStatus, tuple[str, str]]] = {
    DossierStatus.NEW: ("Mới đăng ký", "Newly registered"),
    DossierStatus.ACCEPTED: ("Được tiếp nhận", "Accepted"),
    DossierStatus.NOT_ACCEPTED: ("Không được tiếp nhận", "Not accepted"),
    DossierStatus.PROCESSING: ("Đang xử lý", "Processing"),
    DossierStatus.SUPPLEMENT_REQUESTED: ("Yêu cầu bổ sung giấy tờ", "Supplement requested"),
    DossierStatus.FINANCIAL_OBLIGATION: (
        "Yêu cầu thực hiện nghĩa vụ tài chính",
        "Financial obligation requested",
    ),
    DossierStatus.WITHDRAWN: ("Công dân yêu cầu rút hồ sơ", "Withdrawn by the applicant"),
    DossierStatus.STOPPED: ("Dừng xử lý", "Processing stopped"),
    DossierStatus.PROCESSED: ("Đã xử lý xong", "Processed"),
    DossierStatus.RESULT_RETURNED: ("Đã trả kết quả", "Result returned"),
}

FINISHED_STATUSES: Final[frozenset[DossierStatus]] = frozenset(
    {DossierStatus.PROCESSED, DossierStatus.RESULT_RETURNED, DossierStatus.STOPPED}
)
"""Statuses that count as finished for the on-time rule (bộ chỉ số 766)."""

TERMINAL_STATUSES: Final[frozenset[DossierStatus]] = frozenset(
    {
        DossierStatus.NOT_ACCEPTED,
        DossierStatus.WITHDRAWN,
        DossierStatus.STOPPED,
        DossierStatus.RESULT_RETURNED,
    }
)
"""Statuses after which nothing more happens to the dossier."""

OPEN_STATUSES: Final[frozenset[DossierStatus]] = frozenset(
    set(DossierStatus) - FINISHED_STATUSES - TERMINAL_STATUSES
)
"""Statuses of a dossier still in the agencies' hands: the only ones that can be overdue."""


class Channel(IntEnum):
    """How the dossier was submitted (``KenhThucHien``)."""

    IN_PERSON = 1
    ONLINE = 2
    POSTAL = 3

    @property
    def label_vi(self) -> str:
        """The Vietnamese label."""
        return _CHANNEL_LABELS[self][0]

    @property
    def label_en(self) -> str:
        """The English label."""
        return _CHANNEL_LABELS[self][1]


_CHANNEL_LABELS: Final[dict[Channel, tuple[str, str]]] = {
    Channel.IN_PERSON: ("Trực tiếp", "In person"),
    Channel.ONLINE: ("Trực tuyến", "Online"),
    Channel.POSTAL: ("Qua dịch vụ bưu chính công ích", "Public postal service"),
}


class ApplicantKind(IntEnum):
    """Who applies (``LoaiDoiTuong``)."""

    CITIZEN = 1
    ORGANISATION = 2

    @property
    def label_vi(self) -> str:
        """The Vietnamese label."""
        return "Công dân" if self is ApplicantKind.CITIZEN else "Tổ chức"

    @property
    def label_en(self) -> str:
        """The English label."""
        return "Citizen" if self is ApplicantKind.CITIZEN else "Organisation"


class StatusChange(ContractModel):
    """One change of a dossier's status or processing step (DVCQG ``CapNhatTienDoHoSoMC``)."""

    schema_version: Literal["1.0"] = "1.0"
    dossier_code: DossierCode = Field(description="Mã hồ sơ (MaHoSo) — the dossier that changed")
    status: DossierStatus = Field(description="Trạng thái mới (TrangThai) — the new status")
    previous_status: DossierStatus | None = Field(
        default=None, description="The status before this change, when known"
    )
    changed_at: VnDateTime = Field(description="Thời điểm xử lý (ThoiDiemXuLy) — when it changed")
    agency: AgencyCode = Field(description="The agency that made the change")
    officer: str | None = Field(
        default=None, max_length=200, description="Người xử lý (NguoiXuLy) — the officer"
    )
    officer_title: str | None = Field(
        default=None, max_length=200, description="Chức danh (ChucDanh) — the officer's title"
    )
    department: str | None = Field(
        default=None, max_length=300, description="Phòng ban xử lý (PhongBanXuLy) — department"
    )
    note: str | None = Field(
        default=None, max_length=2000, description="Nội dung xử lý (NoiDungXuLy) — what was done"
    )
    step_started_at: VnDateTime | None = Field(
        default=None, description="Ngày bắt đầu (NgayBatDau) — when the current step started"
    )
    step_due_at: VnDateTime | None = Field(
        default=None,
        description="Ngày kết thúc theo quy định (NgayKetThucTheoQuyDinh) — when the step is due",
    )
    partner_reference: str | None = Field(
        default=None,
        max_length=100,
        description="The partner system's own record id, e.g. a birth-certificate number",
    )
