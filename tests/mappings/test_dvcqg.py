"""DVCQG mappings: dossier sync and progress survive a round trip; unknown codes fail precisely."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import MappingError
from bus.mapping import MappingCatalog
from contracts import (
    VN_TZ,
    Applicant,
    ApplicantKind,
    Channel,
    Dossier,
    DossierStatus,
    Fee,
    ResultDocument,
    StatusChange,
    SubmittedDocument,
    SupplementRequest,
    make_dossier_code,
)

catalog = MappingCatalog.load()
DOSSIER_OUT = catalog.get("dvcqg/1.0/dossier-sync.out")
DOSSIER_IN = catalog.get("dvcqg/1.0/dossier-sync.in")
PROGRESS_OUT = catalog.get("dvcqg/1.0/progress.out")
PROGRESS_IN = catalog.get("dvcqg/1.0/progress.in")

# What DongBoHoSoMC carries, field by field. Everything else of the dossier stays home: the
# receiving agency (the caller supplies it back as context), checksums, sizes and media types of
# documents, result checksums, the applicant's date of birth and address, and the form.
DOSSIER_FIELDS = (
    "code",
    "procedure_code",
    "procedure_name",
    "field_code",
    "field_name",
    "handling_agency",
    "receipt_number",
    "channel",
    "summary",
    "received_at",
    "due_at",
    "finished_at",
    "returned_at",
    "result_delivery",
    "status",
)
APPLICANT_FIELDS = ("kind", "full_name", "identity_number", "organisation_id", "email", "phone")
LIST_FIELDS = {
    "documents": ("document_id", "name", "component_code", "url"),
    "fees": ("name", "code", "collection_method", "amount_vnd"),
    "supplement_requests": ("requested_at", "reason", "requested_by", "deadline_at", "supplied_at"),
    "results": ("document_id", "name", "url"),
}
# What CapNhatTienDoHoSoMC carries; the agency travels as the call's madonvi (context), and
# previous_status and partner_reference are not carried.
STATUS_CHANGE_FIELDS = (
    "dossier_code",
    "status",
    "changed_at",
    "officer",
    "officer_title",
    "department",
    "note",
    "step_started_at",
    "step_due_at",
)

MINIMAL_DOSSIER: dict[str, Any] = Dossier(
    code="000.00.10.H12-240315-0001",
    procedure_code="1.001193",
    receiving_agency="000.00.10.H12",
    handling_agency="000.00.10.H12",
    channel=Channel.ONLINE,
    applicant=Applicant(full_name="Nguyễn Văn An", identity_number="001090012345"),
    received_at=datetime(2024, 3, 15, 9, 0, tzinfo=VN_TZ),
).model_dump(mode="json", exclude_none=True)
"""A dossier with only the required fields, as canonical JSON."""
MINIMAL_CHANGE: dict[str, Any] = StatusChange(
    dossier_code="000.00.10.H12-240315-0001",
    status=DossierStatus.ACCEPTED,
    changed_at=datetime(2024, 3, 15, 9, 5, tzinfo=VN_TZ),
    agency="000.00.10.H12",
).model_dump(mode="json", exclude_none=True)
"""A status change with only the required fields, as canonical JSON."""

# -- realistic values ----------------------------------------------------------------------------
AGENCIES = ("000.00.10.H12", "000.00.00.H30", "000.00.22.H12", "000.12.34.H38", "000.00.00.G12")
PROCEDURES = (
    ("1.001193", "Đăng ký khai sinh", "Hộ tịch"),
    ("1.007073", "Liên thông thủ tục đăng ký khai tử, xóa đăng ký thường trú", "Hộ tịch"),
    # Codes with the issuing unit and the online-service suffix (names not taken from a catalogue).
    ("1.011442.000.00.00.H38", "Thủ tục hành chính cấp tỉnh", "Lĩnh vực cấp tỉnh"),
    ("1.011442.000.00.00.H38.02", "Thủ tục hành chính cấp tỉnh (trực tuyến)", "Lĩnh vực cấp tỉnh"),
)
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Lò", "Hà")
MIDDLE = ("Văn", "Thị", "Minh", "Đức", "Thu", "Ngọc", "Hữu", "Thanh")
GIVEN = ("An", "Bình", "Cúc", "Dũng", "Hoa", "Hồng", "Lan", "Mai", "Nam", "Sáu", "Tuấn", "Yến")
ORGANISATIONS = (
    "Trung tâm Công tác xã hội tỉnh",
    "Công ty TNHH Thương mại Hoàng Long",
    "Hợp tác xã Nông nghiệp Tân Phú",
    "Bệnh viện Đa khoa tỉnh",
)
TITLES = ("Công chức Bộ phận Một cửa", "Công chức Tư pháp - Hộ tịch", "Phó Chủ tịch UBND xã")
DEPARTMENTS = ("Bộ phận Tiếp nhận và Trả kết quả", "Phòng Tư pháp", "Lãnh đạo UBND xã")
NOTES = (
    "Tiếp nhận hồ sơ đủ thành phần",
    "Chuyển Phòng Tư pháp thẩm định",
    "Yêu cầu bổ sung bản chụp Giấy chứng nhận kết hôn",
    "Ký Giấy khai sinh, chuyển Bộ phận Một cửa trả kết quả",
)

names = st.builds(
    "{} {} {}".format, st.sampled_from(FAMILY), st.sampled_from(MIDDLE), st.sampled_from(GIVEN)
)
citizen_ids = st.from_regex(r"\A0[0-9]{2}[0-3][0-9]{8}\Z")
tax_codes = st.from_regex(r"\A0[1-9][0-9]{8}(-00[1-9])?\Z")
phones = st.from_regex(r"\A0[35789][0-9]{2} [0-9]{3} [0-9]{3}\Z")
emails = st.builds("{}@example.vn".format, st.from_regex(r"\A[a-z]{3,12}\Z"))
moments = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(VN_TZ)
).map(lambda moment: moment.replace(microsecond=0))
"""Aware datetimes in Asia/Ho_Chi_Minh with whole seconds: what yyyyMMddHHmmss can hold."""
sha256s = st.from_regex(r"\A[0-9a-f]{64}\Z")
urls = st.builds(
    "https://files.example.vn/hoso/{:04d}/tep-{}.pdf".format,
    st.integers(1, 9999),
    st.integers(1, 99),
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value or nothing, as an optional contract field."""
    return st.none() | strategy


def later(draw: st.DrawFn, moment: datetime, *, days: int = 60) -> datetime:
    """A moment at or after ``moment``, within ``days``."""
    return moment + timedelta(seconds=draw(st.integers(0, days * 86_400)))


def dossier_codes(agency: str, received: datetime) -> st.SearchStrategy[str]:
    """Codes of dossiers ``agency`` received on the local day of ``received``."""
    return st.integers(1, 9999).map(
        lambda sequence: make_dossier_code(agency, received.astimezone(VN_TZ).date(), sequence)
    )


@st.composite
def applicants(draw: st.DrawFn) -> Applicant:
    """A citizen with a CCCD or an organisation with a tax code (one identifier each)."""
    kind = draw(st.sampled_from(ApplicantKind))
    citizen = kind is ApplicantKind.CITIZEN
    return Applicant(
        kind=kind,
        full_name=draw(names if citizen else st.sampled_from(ORGANISATIONS)),
        identity_number=draw(citizen_ids) if citizen else None,
        organisation_id=None if citizen else draw(tax_codes),
        date_of_birth=draw(optional(st.dates(date(1940, 1, 1), date(2006, 12, 31)))),
        email=draw(optional(emails)),
        phone=draw(optional(phones)),
    )


@st.composite
def supplement_requests(draw: st.DrawFn, received: datetime) -> SupplementRequest:
    """A supplement request made after receipt, with an optional deadline and answer."""
    requested = later(draw, received, days=10)
    return SupplementRequest(
        requested_at=requested,
        reason=draw(st.sampled_from(NOTES)),
        requested_by=draw(optional(names)),
        deadline_at=draw(optional(st.just(later(draw, requested, days=15)))),
        supplied_at=draw(optional(st.just(later(draw, requested, days=15)))),
    )


@st.composite
def dossiers(draw: st.DrawFn) -> Dossier:
    """A valid dossier at any status, with documents, fees, supplements and results."""
    agency = draw(st.sampled_from(AGENCIES))
    received = draw(moments)
    procedure_code, procedure_name, field_name = draw(st.sampled_from(PROCEDURES))
    sequence = draw(st.integers(1, 9999))
    documents = [
        SubmittedDocument(
            document_id=f"TL-{sequence:04d}-{index}",
            name=name,
            component_code=draw(optional(st.sampled_from(("GCS", "CCCD", "GBT", "TK")))),
            url=draw(optional(urls)),
            sha256=draw(sha256s),
            size_bytes=draw(optional(st.integers(1, 10_000_000))),
            media_type=draw(optional(st.just("application/pdf"))),
        )
        for index, name in enumerate(
            draw(
                st.lists(st.sampled_from(("Giấy chứng sinh", "CCCD của mẹ", "Tờ khai")), max_size=4)
            ),
            start=1,
        )
    ]
    fees = [
        Fee(
            name=name,
            code=draw(optional(st.sampled_from(("LP-KS", "PHI-BSTL", "LP-LLTP")))),
            collection_method=draw(optional(st.integers(1, 3))),
            amount_vnd=draw(st.sampled_from((0, 8_000, 16_000, 200_000))),
        )
        for name in draw(
            st.lists(st.sampled_from(("Lệ phí đăng ký khai sinh", "Phí cấp bản sao")), max_size=2)
        )
    ]
    results = [
        ResultDocument(
            document_id=f"KQ-{sequence:04d}-{index}",
            name=name,
            url=draw(optional(urls)),
            sha256=draw(optional(sha256s)),
        )
        for index, name in enumerate(
            draw(st.lists(st.sampled_from(("Giấy khai sinh", "Trích lục khai tử")), max_size=2)),
            start=1,
        )
    ]
    return Dossier(
        code=make_dossier_code(agency, received.date(), sequence),
        procedure_code=procedure_code,
        procedure_name=draw(optional(st.just(procedure_name))),
        field_code=draw(optional(st.sampled_from(("G09-TP02", "G09-TP05")))),
        field_name=draw(optional(st.just(field_name))),
        receiving_agency=agency,
        handling_agency=draw(st.sampled_from(AGENCIES)),
        receipt_number=draw(optional(st.just(f"BN-{received:%y%m%d}-{sequence:04d}"))),
        channel=draw(st.sampled_from(Channel)),
        summary=draw(optional(st.builds("{} cho {}".format, st.just(procedure_name), names))),
        applicant=draw(applicants()),
        received_at=received,
        due_at=draw(optional(st.just(later(draw, received)))),
        finished_at=draw(optional(st.just(later(draw, received)))),
        returned_at=draw(optional(st.just(later(draw, received)))),
        result_delivery=draw(optional(st.integers(1, 3))),
        status=draw(st.sampled_from(DossierStatus)),
        documents=documents,
        fees=fees,
        supplement_requests=draw(st.lists(supplement_requests(received), max_size=2)),
        results=results,
    )


@st.composite
def status_changes(draw: st.DrawFn) -> StatusChange:
    """A valid status change at any status, every optional field present or not."""
    agency = draw(st.sampled_from(AGENCIES))
    received = draw(moments)
    changed = later(draw, received, days=30)
    started = draw(optional(st.just(later(draw, received, days=30))))
    return StatusChange(
        dossier_code=draw(dossier_codes(agency, received)),
        status=draw(st.sampled_from(DossierStatus)),
        previous_status=draw(optional(st.sampled_from(DossierStatus))),
        changed_at=changed,
        agency=agency,
        officer=draw(optional(names)),
        officer_title=draw(optional(st.sampled_from(TITLES))),
        department=draw(optional(st.sampled_from(DEPARTMENTS))),
        note=draw(optional(st.sampled_from(NOTES))),
        step_started_at=started,
        step_due_at=None if started is None else draw(optional(st.just(later(draw, started)))),
        partner_reference=draw(optional(st.just("125/2024"))),
    )


def carried_dossier(dossier: dict[str, Any]) -> dict[str, Any]:
    """The part of a canonical dossier (as JSON) that DongBoHoSoMC carries."""
    carried = {name: dossier[name] for name in DOSSIER_FIELDS if name in dossier}
    carried["applicant"] = {
        name: dossier["applicant"][name]
        for name in APPLICANT_FIELDS
        if name in dossier["applicant"]
    }
    for list_name, fields in LIST_FIELDS.items():
        carried[list_name] = [
            {name: item[name] for name in fields if name in item} for item in dossier[list_name]
        ]
    return carried


# -- round trips ---------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(dossier=dossiers())
def test_dossier_sync_round_trip_keeps_every_field_dvcqg_carries(dossier: Dossier) -> None:
    """A dossier pushed with dossier-sync.out and read back with dossier-sync.in is unchanged in
    every field DongBoHoSoMC carries, and the receiving agency comes back from the context."""
    canonical = dossier.model_dump(mode="json", exclude_none=True)

    back = DOSSIER_IN.apply(
        DOSSIER_OUT.apply(canonical), {"receiving_agency": dossier.receiving_agency}
    )

    assert back == carried_dossier(canonical) | {"receiving_agency": dossier.receiving_agency}


@settings(max_examples=100, deadline=None)
@given(change=status_changes())
def test_progress_round_trip_keeps_every_field_dvcqg_carries(change: StatusChange) -> None:
    """A status change sent with progress.out and read back with progress.in is a valid status
    change equal to the original in every field CapNhatTienDoHoSoMC carries, plus the agency."""
    canonical = change.model_dump(mode="json", exclude_none=True)

    back = PROGRESS_IN.to_canonical(PROGRESS_OUT.apply(canonical), {"agency": change.agency})

    assert back.model_dump(mode="json", exclude_none=True) == {
        "schema_version": "1.0",
        "agency": change.agency,
        **{name: canonical[name] for name in STATUS_CHANGE_FIELDS if name in canonical},
    }


# -- details of the applicant identifier ---------------------------------------------------------
def test_organisation_applicant_is_identified_by_its_tax_code() -> None:
    """An organisation's MaDoiTuong is its tax code even when a representative's CCCD is on file,
    and reading it back fills organisation_id, not identity_number."""
    organisation = {
        "kind": 2,
        "full_name": "Trung tâm Công tác xã hội tỉnh",
        "organisation_id": "0101234567",
        "identity_number": "001075009876",
    }

    message = DOSSIER_OUT.apply(MINIMAL_DOSSIER | {"applicant": organisation})
    back = DOSSIER_IN.apply(message, {"receiving_agency": "000.00.10.H12"})

    assert (message["LoaiDoiTuong"], message["MaDoiTuong"]) == (2, "0101234567")
    assert back["applicant"] == {
        "kind": 2,
        "full_name": "Trung tâm Công tác xã hội tỉnh",
        "organisation_id": "0101234567",
    }


def test_applicant_without_kind_reads_as_citizen() -> None:
    """A DongBoHoSoMC without LoaiDoiTuong reads MaDoiTuong as the CCCD of a citizen, the
    canonical default kind."""
    message = DOSSIER_OUT.apply(MINIMAL_DOSSIER)
    del message["LoaiDoiTuong"]

    back = DOSSIER_IN.apply(message, {"receiving_agency": "000.00.10.H12"})

    assert back["applicant"] == {"full_name": "Nguyễn Văn An", "identity_number": "001090012345"}


# -- precise failures ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outbound", "inbound", "status_field", "canonical"),
    [
        ("dossier-sync.out", "dossier-sync.in", "TrangThaiHoSo", MINIMAL_DOSSIER),
        ("progress.out", "progress.in", "TrangThai", MINIMAL_CHANGE),
    ],
)
def test_unmapped_partner_status_names_mapping_source_target_and_value(
    outbound: str, inbound: str, status_field: str, canonical: dict[str, Any]
) -> None:
    """A DVCQG status outside 1–10 fails inbound with a MappingError naming the mapping, the
    partner field, the canonical field and the value."""
    partner = catalog.get(f"dvcqg/1.0/{outbound}").apply(canonical) | {status_field: 11}
    context = {"receiving_agency": "000.00.10.H12", "agency": "000.00.10.H12"}

    with pytest.raises(MappingError) as caught:
        catalog.get(f"dvcqg/1.0/{inbound}").apply(partner, context)

    error = caught.value
    assert (error.mapping, error.source_path, error.target_field, error.value) == (
        f"dvcqg/1.0/{inbound}",
        status_field,
        "status",
        "11",
    )


@pytest.mark.parametrize(
    ("outbound", "status_field", "canonical"),
    [
        ("dossier-sync.out", "TrangThaiHoSo", MINIMAL_DOSSIER),
        ("progress.out", "TrangThai", MINIMAL_CHANGE),
    ],
)
def test_unmapped_canonical_status_names_mapping_source_target_and_value(
    outbound: str, status_field: str, canonical: dict[str, Any]
) -> None:
    """A canonical status DVCQG has no code for fails outbound with a MappingError naming the
    mapping, the canonical field, the partner field and the value."""
    with pytest.raises(MappingError) as caught:
        catalog.get(f"dvcqg/1.0/{outbound}").apply(canonical | {"status": 0})

    error = caught.value
    assert (error.mapping, error.source_path, error.target_field, error.value) == (
        f"dvcqg/1.0/{outbound}",
        "status",
        status_field,
        "0",
    )
