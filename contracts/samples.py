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
    DeathRegistrationForm,
    Dossier,
    Fee,
    SubmittedDocument,
)
from contracts.status import ApplicantKind, Channel, DossierStatus
from contracts.timezone import VN_TZ

__all__ = [
    "SAMPLE_RECEIVED_AT",
    "sample_birth_dossier",
    "sample_birth_dossier_json",
    "sample_death_dossier",
    "sample_death_dossier_json",
]

SAMPLE_RECEIVED_AT: Final = datetime(2024, 3, 15, 9, 0, tzinfo=VN_TZ)
"""Friday 15 March 2024, 09:00 in Hanoi: the default receipt time of the samples."""

_BIRTH_PROCEDURE: Final = "1.001193"
_DEATH_PROCEDURE: Final = "1.007073"
# Invented CCCDs shaped like real ones: province 001 (Hà Nội), century-and-sex digit, birth year.
_FATHER_CCCD: Final = "001090012345"
_MOTHER_CCCD: Final = "001192054321"
_BIRTH_CERTIFICATE_PDF: Final = b"%PDF-1.7 Giay chung sinh - Benh vien Phu san Ha Noi - mau"
_MOTHER_CCCD_PDF: Final = b"%PDF-1.7 CCCD cua me - ban chup hai mat - mau"
# The death sample: a man born in 1948 (0 = male, 20th century) and his son, born in 1975.
_DECEASED_CCCD: Final = "001048009876"
_SON_CCCD: Final = "001075004321"
_DECEASED_SOCIAL_INSURANCE: Final = "0148003456"
_DEATH_NOTICE_PDF: Final = b"%PDF-1.7 Giay bao tu - Benh vien Bach Mai - mau"


def _local_receipt(received_at: datetime | None) -> datetime:
    """``received_at`` (default ``SAMPLE_RECEIVED_AT``) in Hanoi time; naive is refused."""
    received = SAMPLE_RECEIVED_AT if received_at is None else received_at
    if received.tzinfo is None:
        raise ValueError("received_at must include a UTC offset, e.g. 2024-03-15T09:00:00+07:00")
    return received.astimezone(VN_TZ)


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
    local = _local_receipt(received_at)
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


def sample_death_dossier(
    sequence: int = 1,
    received_at: datetime | None = None,
    agency: str = "000.00.10.H12",
) -> Dossier:
    """A valid death-registration dossier (procedure 1.007073) received by ``agency``.

    The son declares his father's death three days after it, at the commune of the father's
    last residence. Codes and ``received_at`` work as in :func:`sample_birth_dossier`. The form
    holds no death extract number: the civil-status step issues it and the linkage engine
    passes it on (``death_certificate_number``) to the residence and social-insurance steps.
    """
    local = _local_receipt(received_at)
    # Declared well within the 15 days the Law on Civil Status (art. 33) allows.
    died = local.date() - timedelta(days=3)
    home = Address(
        province_code="01",
        district_code="001",
        commune_code="00001",
        detail="Số 5, ngõ 20 phố Phúc Xá",
    )
    form = DeathRegistrationForm(
        deceased_full_name="Trần Văn Đức",
        deceased_date_of_birth=date(1948, 7, 2),
        deceased_gender="male",
        deceased_identity_number=_DECEASED_CCCD,
        deceased_ethnicity="Kinh",
        deceased_social_insurance_number=_DECEASED_SOCIAL_INSURANCE,
        last_residence=home,
        date_of_death=died,
        place_of_death="Bệnh viện Bạch Mai, thành phố Hà Nội",
        cause_of_death="Suy tim",
        death_notice_number="125/GBT",
        death_notice_issuer="Bệnh viện Bạch Mai",
        declarant_full_name="Trần Văn Hùng",
        declarant_identity_number=_SON_CCCD,
        declarant_relationship="Con",
    )
    return Dossier(
        code=make_dossier_code(agency, local.date(), sequence),
        procedure_code=_DEATH_PROCEDURE,
        procedure_name="Liên thông thủ tục đăng ký khai tử, xóa đăng ký thường trú",
        field_name="Hộ tịch",
        receiving_agency=agency,
        handling_agency=agency,
        receipt_number=f"BN-{local:%y%m%d}-{sequence:04d}",
        channel=Channel.IN_PERSON,
        summary=f"Đăng ký khai tử cho ông Trần Văn Đức, chết ngày {died:%d/%m/%Y}",
        applicant=Applicant(
            kind=ApplicantKind.CITIZEN,
            full_name="Trần Văn Hùng",
            identity_number=_SON_CCCD,
            date_of_birth=date(1975, 9, 14),
            phone="0983 456 789",
            address=home,
        ),
        received_at=local,
        status=DossierStatus.NEW,
        documents=[
            SubmittedDocument(
                document_id=f"TL-{sequence:04d}-1",
                name="Giấy báo tử",
                component_code="GBT",
                url=f"https://files.example.vn/hoso/{sequence:04d}/giay-bao-tu.pdf",
                sha256=hashlib.sha256(_DEATH_NOTICE_PDF).hexdigest(),
                size_bytes=len(_DEATH_NOTICE_PDF),
                media_type="application/pdf",
            )
        ],
        # Death registration on time is free of charge (Law on Civil Status, art. 11).
        fees=[Fee(name="Lệ phí đăng ký khai tử đúng hạn", amount_vnd=0)],
        form=form.model_dump(mode="json"),
    )


def sample_death_dossier_json(
    sequence: int = 1,
    received_at: datetime | None = None,
    agency: str = "000.00.10.H12",
) -> dict[str, Any]:
    """``sample_death_dossier`` dumped as JSON-ready data, as it would arrive over HTTP."""
    return sample_death_dossier(sequence, received_at, agency).model_dump(mode="json")
