"""Realistic sample dossiers for demos and tests across the project.

The values are invented but shaped like real ones; no real person is described.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any, Final

from contracts.codes import make_dossier_code
from contracts.dossier import (
    Address,
    Applicant,
    BirthRegistrationForm,
    Dossier,
    Fee,
    SubmittedDocument,
)
from contracts.status import ApplicantKind, Channel, DossierStatus
from contracts.timezone import VN_TZ

__all__ = ["SAMPLE_RECEIVED_AT", "sample_birth_dossier", "sample_birth_dossier_json"]

SAMPLE_RECEIVED_AT: Final = datetime(2024, 3, 15, 9, 0, tzinfo=VN_TZ)
"""Friday 15 March 2024, 09:00 in Hanoi: the default receipt time of the samples."""

_BIRTH_PROCEDURE: Final = "1.001193"
# Invented CCCDs shaped like real ones: province 001 (Hà Nội), century-and-sex digit, birth year.
_FATHER_CCCD: Final = "001090012345"
_MOTHER_CCCD: Final = "001192054321"
_BIRTH_CERTIFICATE_PDF: Final = b"%PDF-1.7 Giay chung sinh - Benh vien Phu san Ha Noi - mau"
_MOTHER_CCCD_PDF: Final = b"%PDF-1.7 CCCD cua me - ban chup hai mat - mau"


def sample_birth_dossier(
    sequence: int = 1,
    received_at: datetime | None = None,
    agency: str = "000.00.10.H12",
) -> Dossier:
    """A valid birth-registration dossier (procedure 1.001193) received by ``agency``.

    The code is ``<agency>-<local receipt date>-<sequence>``, so varying ``sequence`` gives
    distinct dossiers of the same day. ``received_at`` must be aware; it defaults to
    ``SAMPLE_RECEIVED_AT``. ``due_at`` is left empty: the bus computes it from its calendar.
    """
    received = SAMPLE_RECEIVED_AT if received_at is None else received_at
    if received.tzinfo is None:
        raise ValueError("received_at must include a UTC offset, e.g. 2024-03-15T09:00:00+07:00")
    local = received.astimezone(VN_TZ)
    # Parents register a few days after the birth, well within the 60 days the law allows.
    born = local.date() - timedelta(days=5)
    form = BirthRegistrationForm(
        child_full_name="Nguyễn Thị Bình",
        child_date_of_birth=born,
        child_gender="female",
        place_of_birth="Bệnh viện Phụ sản Hà Nội, thành phố Hà Nội",
        mother_full_name="Trần Thị Cúc",
        mother_identity_number=_MOTHER_CCCD,
        father_full_name="Nguyễn Văn An",
        father_identity_number=_FATHER_CCCD,
        ethnicity="Kinh",
    )
    return Dossier(
        code=make_dossier_code(agency, local.date(), sequence),
        procedure_code=_BIRTH_PROCEDURE,
        procedure_name="Đăng ký khai sinh",
        field_name="Hộ tịch",
        receiving_agency=agency,
        handling_agency=agency,
        receipt_number=f"BN-{local:%y%m%d}-{sequence:04d}",
        channel=Channel.ONLINE,
        summary=f"Đăng ký khai sinh cho cháu Nguyễn Thị Bình, sinh ngày {born:%d/%m/%Y}",
        applicant=Applicant(
            kind=ApplicantKind.CITIZEN,
            full_name="Nguyễn Văn An",
            identity_number=_FATHER_CCCD,
            date_of_birth=date(1990, 5, 20),
            email="nguyenvanan@example.vn",
            phone="0912 345 678",
            address=Address(
                province_code="01",
                district_code="001",
                commune_code="00001",
                detail="Số 12, ngõ 34 phố Phúc Xá",
            ),
        ),
        received_at=local,
        status=DossierStatus.NEW,
        documents=[
            SubmittedDocument(
                document_id=f"TL-{sequence:04d}-1",
                name="Giấy chứng sinh",
                component_code="GCS",
                url=f"https://files.example.vn/hoso/{sequence:04d}/giay-chung-sinh.pdf",
                sha256=hashlib.sha256(_BIRTH_CERTIFICATE_PDF).hexdigest(),
                size_bytes=len(_BIRTH_CERTIFICATE_PDF),
                media_type="application/pdf",
            ),
            SubmittedDocument(
                document_id=f"TL-{sequence:04d}-2",
                name="CCCD của mẹ",
                component_code="CCCD",
                url=f"https://files.example.vn/hoso/{sequence:04d}/cccd-me.pdf",
                sha256=hashlib.sha256(_MOTHER_CCCD_PDF).hexdigest(),
                size_bytes=len(_MOTHER_CCCD_PDF),
                media_type="application/pdf",
            ),
        ],
        # Birth registration on time is free of charge (Law on Civil Status, art. 11).
        fees=[Fee(name="Lệ phí đăng ký khai sinh đúng hạn", amount_vnd=0)],
        form=form.model_dump(mode="json"),
    )


def sample_birth_dossier_json(
    sequence: int = 1,
    received_at: datetime | None = None,
    agency: str = "000.00.10.H12",
) -> dict[str, Any]:
    """``sample_birth_dossier`` dumped as JSON-ready data, as it would arrive over HTTP."""
    return sample_birth_dossier(sequence, received_at, agency).model_dump(mode="json")
