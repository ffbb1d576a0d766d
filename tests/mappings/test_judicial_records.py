"""Judicial-records mappings: status records read in, acknowledgements name them back exactly."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import MappingError
from bus.mapping import MappingCatalog
from contracts import VN_TZ, DossierStatus, StatusChange, make_dossier_code

catalog = MappingCatalog.load()
STATUS_RECORD = catalog.get("judicial_records/1.0/status-record.in")
ACKNOWLEDGE = catalog.get("judicial_records/1.0/acknowledge.out")

JUDICIAL_STATUS = {
    3: DossierStatus.PROCESSING,
    4: DossierStatus.PROCESSED,
    5: DossierStatus.RESULT_RETURNED,
}
"""The judicial software's status → the national one, as codes/status.yaml states it."""
WITHOUT_JUDICIAL_CODE = sorted(set(DossierStatus) - set(JUDICIAL_STATUS.values()))

# What the acknowledgement (danhDauHsThanhCong) carries of a status change: the record's key.
ACKNOWLEDGED_FIELDS = ("dossier_code", "status")

SOURCE_AGENCY = "000.00.22.H12"  # the provincial Department of Justice, supplied as context

# -- realistic values ----------------------------------------------------------------------------
AGENCIES = ("000.00.10.H12", "000.00.00.H30", "000.12.34.H38")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ")
MIDDLE = ("Văn", "Thị", "Minh", "Đức", "Thu", "Ngọc")
GIVEN = ("An", "Hồng", "Lan", "Mai", "Nam", "Tuấn", "Yến")
NOTES = (
    "Đã gửi văn bản tra cứu thông tin lý lịch tư pháp đến Công an tỉnh",
    "Đã cấp Phiếu lý lịch tư pháp số 1, chuyển Bộ phận Một cửa trả kết quả",
    "Đã trả Phiếu lý lịch tư pháp cho người yêu cầu",
)

names = st.builds(
    "{} {} {}".format, st.sampled_from(FAMILY), st.sampled_from(MIDDLE), st.sampled_from(GIVEN)
)
days = st.dates(date(2019, 1, 1), date(2030, 12, 31))


@st.composite
def dossier_codes(draw: st.DrawFn) -> str:
    """A dossier code of a one-stop desk: agency, receipt day, daily sequence."""
    return make_dossier_code(
        draw(st.sampled_from(AGENCIES)), draw(days), draw(st.integers(1, 9999))
    )


certificate_numbers = st.builds(
    "{}/{}/LLTP".format, st.integers(1, 99_999), st.integers(2019, 2030)
)


@st.composite
def status_records(draw: st.DrawFn) -> dict[str, Any]:
    """One item of the judicial software's status list, as it sends it (codes as number or text;
    an empty soPhieu before the certificate is issued)."""
    code = draw(st.sampled_from(sorted(JUDICIAL_STATUS)))
    return {
        "maHoSo": draw(dossier_codes()),
        "trangThai": draw(st.sampled_from((code, str(code)))),
        "ngayCapNhat": draw(days).strftime("%d/%m/%Y"),
        "nguoiXuLy": draw(st.none() | names),
        "ghiChu": draw(st.none() | st.sampled_from(NOTES)),
        "soPhieu": draw(st.sampled_from(("", None)) | certificate_numbers),
    }


@st.composite
def status_changes(draw: st.DrawFn) -> StatusChange:
    """A status change the judicial software has a code for (processing, processed, returned)."""
    moment = datetime.combine(draw(days), time(0, 0), tzinfo=VN_TZ)
    return StatusChange(
        dossier_code=draw(dossier_codes()),
        status=draw(st.sampled_from(sorted(JUDICIAL_STATUS.values()))),
        changed_at=moment,
        agency=SOURCE_AGENCY,
        officer=draw(st.none() | names),
        note=draw(st.none() | st.sampled_from(NOTES)),
        partner_reference=draw(st.none() | certificate_numbers),
    )


# -- round trips ---------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(record=status_records())
def test_record_reads_into_a_status_change_and_is_acknowledged_by_its_own_key(
    record: dict[str, Any],
) -> None:
    """A status record becomes a valid status change of that day (local midnight) carrying every
    record field, and the acknowledgement of that change names the record's dossier code and
    judicial status code."""
    change = STATUS_RECORD.to_canonical(record, {"agency": SOURCE_AGENCY})
    assert isinstance(change, StatusChange)
    day = datetime.strptime(record["ngayCapNhat"], "%d/%m/%Y").date()

    assert change.model_dump(exclude_none=True) == {
        "schema_version": "1.0",
        "dossier_code": record["maHoSo"],
        "status": JUDICIAL_STATUS[int(record["trangThai"])],
        "changed_at": datetime.combine(day, time(0, 0), tzinfo=VN_TZ),
        "agency": SOURCE_AGENCY,
        **({"officer": record["nguoiXuLy"]} if record["nguoiXuLy"] else {}),
        **({"note": record["ghiChu"]} if record["ghiChu"] else {}),
        **({"partner_reference": record["soPhieu"]} if record["soPhieu"] else {}),
    }
    assert ACKNOWLEDGE.apply(change.model_dump(mode="json", exclude_none=True)) == {
        "maHoSo": record["maHoSo"],
        "trangThai": int(record["trangThai"]),
    }


@settings(max_examples=100, deadline=None)
@given(change=status_changes())
def test_acknowledged_change_reads_back_to_the_same_dossier_and_status(
    change: StatusChange,
) -> None:
    """A status change with a judicial code, acknowledged and then read back as the judicial
    record of that day, keeps the fields the acknowledgement carries: dossier code and status."""
    canonical = change.model_dump(mode="json", exclude_none=True)

    acknowledgement = ACKNOWLEDGE.apply(canonical)
    record = acknowledgement | {"ngayCapNhat": f"{change.changed_at:%d/%m/%Y}"}
    back = STATUS_RECORD.to_canonical(record, {"agency": SOURCE_AGENCY})

    assert set(acknowledgement) == {"maHoSo", "trangThai"}
    assert back.model_dump(include=set(ACKNOWLEDGED_FIELDS)) == change.model_dump(
        include=set(ACKNOWLEDGED_FIELDS)
    )


# -- precise failures ----------------------------------------------------------------------------
@pytest.mark.parametrize("partner_status", [0, 1, 2, 6, "9"])
def test_record_status_outside_the_judicial_list_names_mapping_source_target_and_value(
    partner_status: int | str,
) -> None:
    """A record whose trangThai is not 3, 4 or 5 fails with a MappingError naming the mapping,
    the partner field, the canonical field and the value."""
    record = {
        "maHoSo": "000.00.10.H12-240402-0007",
        "trangThai": partner_status,
        "ngayCapNhat": "03/04/2024",
    }

    with pytest.raises(MappingError) as caught:
        STATUS_RECORD.apply(record, {"agency": SOURCE_AGENCY})

    error = caught.value
    assert (error.mapping, error.source_path, error.target_field, error.value) == (
        "judicial_records/1.0/status-record.in",
        "trangThai",
        "status",
        repr(partner_status),
    )


@pytest.mark.parametrize("status", WITHOUT_JUDICIAL_CODE)
def test_acknowledging_a_status_without_judicial_code_names_mapping_source_target_and_value(
    status: DossierStatus,
) -> None:
    """Acknowledging a change to a status the judicial software has no code for fails with a
    MappingError naming the mapping, the canonical field, the partner field and the value."""
    change = {
        "dossier_code": "000.00.10.H12-240402-0007",
        "status": int(status),
        "changed_at": "2024-04-03T00:00:00+07:00",
        "agency": SOURCE_AGENCY,
    }

    with pytest.raises(MappingError) as caught:
        ACKNOWLEDGE.apply(change)

    error = caught.value
    assert (error.mapping, error.source_path, error.target_field, error.value) == (
        "judicial_records/1.0/acknowledge.out",
        "status",
        "trangThai",
        str(int(status)),
    )


def test_record_day_is_read_day_first() -> None:
    """ngayCapNhat is dd/MM/yyyy: 03/04/2024 is the 3rd of April, at local midnight."""
    record = {"maHoSo": "000.00.10.H12-240402-0007", "trangThai": 3, "ngayCapNhat": "03/04/2024"}

    change = STATUS_RECORD.to_canonical(record, {"agency": SOURCE_AGENCY})

    assert isinstance(change, StatusChange)
    assert change.changed_at.isoformat() == "2024-04-03T00:00:00+07:00"
