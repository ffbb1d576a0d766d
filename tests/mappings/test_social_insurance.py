"""Social Security mappings: a child's card, a funeral allowance, their answers, person lookups."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import MappingError
from bus.mapping import MappingCatalog
from bus.mapping.dates import Precision, parse
from contracts import VN_TZ, Dossier, DossierStatus, StatusChange
from contracts.codes import make_dossier_code
from contracts.samples import sample_birth_dossier_json, sample_death_dossier_json
from tests.mappings.death_forms import death_dossiers

catalog = MappingCatalog.load()
CARD_REQUEST = catalog.get("social_insurance/1.0/card-request.out")
CARD_ANSWER = catalog.get("social_insurance/1.0/card-answer.in")
PERSON = catalog.get("social_insurance/1.0/person.in")

AGENCY = "000.00.10.H12"
SOCIAL_SECURITY = "000.26.10.H12"
BIRTH_CERTIFICATE = {"birth_certificate_number": "125/2024"}
#: Social Security's gender codes: 1 nam, 2 nữ, 3 không xác định (never sent: see the code list).
GENDERS_IN = {"1": "male", "2": "female", "3": "undetermined"}
GENDERS_OUT = {"male": "1", "female": "2"}
#: loaiNgaySinh: the precision of the yyyyMMdd date beside it.
PRECISION_FLAGS = {"day": "0", "month": "1", "year": "2"}
PRECISION_BY_LENGTH: dict[int, Precision] = {4: "year", 7: "month", 10: "day"}
#: Social Security's card-request statuses and the national status each one stands for.
CARD_STATUSES = {
    "01": DossierStatus.ACCEPTED,
    "02": DossierStatus.PROCESSING,
    "03": DossierStatus.PROCESSED,
    "04": DossierStatus.SUPPLEMENT_REQUESTED,
    "05": DossierStatus.NOT_ACCEPTED,
}
#: The birth-form fields a person lookup gives back: what the card request sends about people.
PERSON_FIELDS = (
    "child_full_name",
    "child_date_of_birth",
    "child_gender",
    "mother_full_name",
    "mother_identity_number",
    "mother_date_of_birth",
)

_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
names = st.lists(
    st.text(_LETTERS + _LETTERS.upper(), min_size=1, max_size=8), min_size=1, max_size=5
).map(" ".join)
texts = st.text(_LETTERS + " ,.-/0123456789", min_size=1, max_size=120).filter(str.strip)
citizen_ids = st.text("0123456789", min_size=12, max_size=12)
days = st.dates(date(1900, 1, 1), date(2099, 12, 31))
partial_dates = st.tuples(days, st.sampled_from([4, 7, 10])).map(
    lambda drawn: drawn[0].isoformat()[: drawn[1]]
)
"""ISO dates of every precision: "1990", "1990-05", "1990-05-12"."""
moments = st.datetimes(
    min_value=datetime(2018, 1, 1),
    max_value=datetime(2099, 12, 30),
    timezones=st.sampled_from([VN_TZ, UTC, timezone(timedelta(hours=-5))]),
).map(lambda moment: moment.replace(microsecond=0))
birth_certificates = st.from_regex(r"[0-9]{1,6}/20[0-9]{2}", fullmatch=True)


@st.composite
def birth_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid canonical birth dossier with the fields Social Security reads drawn at random."""
    received = draw(moments)
    dossier = sample_birth_dossier_json(received_at=received, agency=AGENCY)
    dossier["code"] = make_dossier_code(
        AGENCY, received.astimezone(VN_TZ).date(), draw(st.integers(1, 9999))
    )
    dossier["applicant"]["address"] = {
        "province_code": draw(st.text("0123456789", min_size=2, max_size=2)),
        "district_code": draw(st.none() | st.text("0123456789", min_size=3, max_size=3)),
        "commune_code": draw(st.text("0123456789", min_size=5, max_size=5)),
        "detail": draw(st.none() | texts),
    }
    dossier["form"].update(
        child_full_name=draw(names),
        child_date_of_birth=draw(days).isoformat(),
        child_gender=draw(st.sampled_from(sorted(GENDERS_OUT))),
        mother_full_name=draw(names),
        mother_identity_number=draw(st.none() | citizen_ids),
        mother_date_of_birth=draw(st.none() | partial_dates),
    )
    return Dossier.model_validate(dossier).model_dump(mode="json")


def _dossier(**form: Any) -> dict[str, Any]:
    dossier = sample_birth_dossier_json()
    dossier["form"].update(form)
    return dossier


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@settings(max_examples=100, deadline=None)
@given(dossier=birth_dossiers(), certificate=birth_certificates)
def test_person_lookup_reads_back_what_the_card_request_sent(
    dossier: dict[str, Any], certificate: str
) -> None:
    """A card request read back as a person record gives the birth form's person fields exactly."""
    request = CARD_REQUEST.apply(dossier, {"birth_certificate_number": certificate})

    back = PERSON.apply(request)

    assert back == {"form": _without_none({k: dossier["form"][k] for k in PERSON_FIELDS})}


@settings(max_examples=100, deadline=None)
@given(dossier=birth_dossiers(), certificate=birth_certificates)
def test_card_request_carries_exactly_the_canonical_values(
    dossier: dict[str, Any], certificate: str
) -> None:
    """The dossier code, certificate, area codes, address and request date reach the partner."""
    out = CARD_REQUEST.apply(dossier, {"birth_certificate_number": certificate})
    address = dossier["applicant"]["address"]
    received = datetime.fromisoformat(dossier["received_at"]).astimezone(VN_TZ)

    assert out["maHoSo"] == dossier["code"]
    assert out["soGiayKhaiSinh"] == certificate
    assert out["gioiTinh"] == GENDERS_OUT[dossier["form"]["child_gender"]]
    area = {key: out.get(key) for key in ("maTinh", "maHuyen", "maXa", "diaChi")}
    assert area == {
        "maTinh": address["province_code"],
        "maHuyen": address["district_code"],
        "maXa": address["commune_code"],
        "diaChi": address["detail"],
    }
    assert ("maHuyen" in out) == (address["district_code"] is not None)
    assert parse(out["ngayDeNghi"], "yyyyMMdd") == received.date().isoformat()


@settings(max_examples=100, deadline=None)
@given(birth=partial_dates)
def test_partial_dates_of_every_precision_round_trip(birth: str) -> None:
    """A guardian's date of birth of any precision goes out with its flag and comes back equal."""
    request = CARD_REQUEST.apply(_dossier(mother_date_of_birth=birth), BIRTH_CERTIFICATE)
    guardian = request["nguoiGiamHo"]
    precision = PRECISION_BY_LENGTH[len(birth)]

    assert guardian["loaiNgaySinh"] == PRECISION_FLAGS[precision]
    assert parse(guardian["ngaySinh"], "yyyyMMdd", precision=precision) == birth
    assert PERSON.apply(request)["form"]["mother_date_of_birth"] == birth


@pytest.mark.parametrize(
    ("birth", "text", "flag"),
    [("1990", "19900000", "2"), ("1990-05", "19900500", "1"), ("1990-05-12", "19900512", "0")],
)
def test_partial_dates_go_out_with_zeros_and_their_flag(birth: str, text: str, flag: str) -> None:
    """Unknown parts of a partial date are sent as 00, and loaiNgaySinh names the precision."""
    request = CARD_REQUEST.apply(_dossier(mother_date_of_birth=birth), BIRTH_CERTIFICATE)

    assert request["nguoiGiamHo"] == {
        "hoTen": "Trần Thị Cúc",
        "soDinhDanh": "001192054321",
        "ngaySinh": text,
        "loaiNgaySinh": flag,
    }


@pytest.mark.parametrize(
    ("text", "flag", "child_birth"),
    [("20210000", "2", "2021"), ("20210700", "1", "2021-07"), ("20210709", "0", "2021-07-09")],
)
def test_person_lookup_reads_partial_dates_by_their_flag(
    text: str, flag: str, child_birth: str
) -> None:
    """A looked-up date of birth keeps exactly the precision its loaiNgaySinh flag gives."""
    record = {"hoTen": "Trần Gia Hân", "ngaySinh": text, "loaiNgaySinh": flag, "gioiTinh": "2"}

    assert PERSON.apply(record)["form"]["child_date_of_birth"] == child_birth


def test_the_flag_decides_over_the_digits() -> None:
    """A full yyyyMMdd flagged year-only is read as the year alone, as the partner declares."""
    record = {"hoTen": "Trần Gia Hân", "ngaySinh": "20210709", "loaiNgaySinh": "2", "gioiTinh": "2"}

    assert PERSON.apply(record)["form"]["child_date_of_birth"] == "2021"


@pytest.mark.parametrize(("gender", "code"), sorted(GENDERS_OUT.items()))
def test_every_canonical_gender_goes_out(gender: str, code: str) -> None:
    """Each canonical child gender becomes Social Security's gender code."""
    request = CARD_REQUEST.apply(_dossier(child_gender=gender), BIRTH_CERTIFICATE)

    assert request["gioiTinh"] == code


@pytest.mark.parametrize(("code", "gender"), sorted(GENDERS_IN.items()))
def test_every_partner_gender_comes_in(code: str, gender: str) -> None:
    """Each of Social Security's gender codes, 3 included, is read from a person record."""
    record = {"hoTen": "Trần Gia Hân", "ngaySinh": "20210709", "gioiTinh": code}

    assert PERSON.apply(record)["form"]["child_gender"] == gender


def test_card_request_leaves_out_the_district_where_the_reform_removed_it() -> None:
    """An address without a district code yields a request without maHuyen."""
    dossier = sample_birth_dossier_json()
    del dossier["applicant"]["address"]["district_code"]

    request = CARD_REQUEST.apply(dossier, BIRTH_CERTIFICATE)

    assert "maHuyen" not in request
    assert (request["maTinh"], request["maXa"]) == ("01", "00001")


def test_card_request_without_a_birth_certificate_number_fails() -> None:
    """Without step 1's certificate number the request is refused, naming the context value."""
    with pytest.raises(MappingError) as caught:
        CARD_REQUEST.apply(sample_birth_dossier_json(), {})

    error = caught.value
    assert error.mapping == "social_insurance/1.0/card-request.out"
    assert error.source_path == "context.birth_certificate_number"
    assert error.target_field == "soGiayKhaiSinh"


def test_an_unmapped_outbound_gender_names_the_field_and_value() -> None:
    """A canonical gender outside the code list fails with mapping, source, target and value."""
    with pytest.raises(MappingError) as caught:
        CARD_REQUEST.apply(_dossier(child_gender="other"), BIRTH_CERTIFICATE)

    error = caught.value
    assert error.mapping == "social_insurance/1.0/card-request.out"
    assert error.source_path == "form.child_gender"
    assert error.target_field == "gioiTinh"
    assert error.value == "'other'"


def test_an_unmapped_inbound_gender_names_the_field_and_value() -> None:
    """A partner gender code outside the list fails with mapping, source, target and value."""
    record = {"hoTen": "Trần Gia Hân", "ngaySinh": "20210709", "gioiTinh": "0"}

    with pytest.raises(MappingError) as caught:
        PERSON.apply(record)

    error = caught.value
    assert error.mapping == "social_insurance/1.0/person.in"
    assert error.source_path == "gioiTinh"
    assert error.target_field == "form.child_gender"
    assert error.value == "'0'"


def test_an_unmapped_precision_flag_names_the_flag_and_value() -> None:
    """An unknown loaiNgaySinh fails naming the flag as source and the date as target."""
    record = {
        "hoTen": "Trần Gia Hân",
        "ngaySinh": "20210709",
        "gioiTinh": "2",
        "nguoiGiamHo": {"hoTen": "Trần Thị Mai", "ngaySinh": "19900412", "loaiNgaySinh": "9"},
    }

    with pytest.raises(MappingError) as caught:
        PERSON.apply(record)

    error = caught.value
    assert error.mapping == "social_insurance/1.0/person.in"
    assert error.source_path == "nguoiGiamHo.loaiNgaySinh"
    assert error.target_field == "form.mother_date_of_birth"
    assert error.value == "'9'"


def _card_answer(**fields: Any) -> dict[str, Any]:
    answer = {
        "maHoSo": "000.00.10.H12-240315-0001",
        "trangThai": "03",
        "maSoBHXH": "0124123456",
        "ngayCapThe": "20240318",
        "hanTheTu": "20240310",
        "hanTheDen": "20300309",
        "ghiChu": "Đã cấp thẻ BHYT số TE1010124123456",
    }
    answer.update(fields)
    return answer


@pytest.mark.parametrize(("code", "status"), sorted(CARD_STATUSES.items()))
def test_every_card_status_maps(code: str, status: DossierStatus) -> None:
    """Each of Social Security's statuses becomes the national dossier status it stands for."""
    change = CARD_ANSWER.to_canonical(_card_answer(trangThai=code), {"agency": SOCIAL_SECURITY})

    assert isinstance(change, StatusChange)
    assert change.status is status


@settings(max_examples=100, deadline=None)
@given(
    code=st.sampled_from(sorted(CARD_STATUSES)),
    issued=st.dates(date(2018, 1, 1), date(2099, 12, 31)),
    number=st.none() | st.text("0123456789", min_size=10, max_size=10),
    remark=st.none() | texts,
)
def test_card_answer_carries_exactly_the_partner_values(
    code: str, issued: date, number: str | None, remark: str | None
) -> None:
    """The status change holds the status, the issue day at local midnight, number and remark."""
    answer = _card_answer(
        trangThai=code, ngayCapThe=issued.strftime("%Y%m%d"), maSoBHXH=number, ghiChu=remark
    )

    change = CARD_ANSWER.to_canonical(answer, {"agency": SOCIAL_SECURITY})

    assert change == StatusChange(
        dossier_code="000.00.10.H12-240315-0001",
        status=CARD_STATUSES[code],
        changed_at=datetime.combine(issued, time(0, 0), tzinfo=VN_TZ),
        agency=SOCIAL_SECURITY,
        partner_reference=number,
        note=remark,
    )


def test_an_answer_without_a_card_is_dated_by_its_processing_day() -> None:
    """A supplement request, which issues no card, takes its date from ngayXuLy."""
    answer = _card_answer(trangThai="04", maSoBHXH=None, ngayCapThe=None, ngayXuLy="20250715")

    change = CARD_ANSWER.to_canonical(answer, {"agency": SOCIAL_SECURITY})

    assert isinstance(change, StatusChange)
    assert change.changed_at == datetime(2025, 7, 15, tzinfo=VN_TZ)
    assert change.partner_reference is None


def test_an_unmapped_card_status_names_the_field_and_value() -> None:
    """A status code outside the list fails with the mapping, source, target and value set."""
    with pytest.raises(MappingError) as caught:
        CARD_ANSWER.to_canonical(_card_answer(trangThai="99"), {"agency": SOCIAL_SECURITY})

    error = caught.value
    assert error.mapping == "social_insurance/1.0/card-answer.in"
    assert error.source_path == "trangThai"
    assert error.target_field == "status"
    assert error.value == "'99'"


def test_an_answer_without_any_date_fails_on_changed_at() -> None:
    """An answer with neither ngayCapThe nor ngayXuLy is refused: a change needs a time."""
    with pytest.raises(MappingError) as caught:
        CARD_ANSWER.to_canonical(_card_answer(ngayCapThe=None), {"agency": SOCIAL_SECURITY})

    error = caught.value
    assert error.source_path == "ngayCapThe || ngayXuLy"
    assert error.target_field == "changed_at"


# --- the death bundle: the funeral allowance -------------------------------------------------

ALLOWANCE_REQUEST = catalog.get("social_insurance/1.0/funeral-allowance.out")
ALLOWANCE_ANSWER = catalog.get("social_insurance/1.0/funeral-allowance-answer.in")
DEATH_CERTIFICATE = {"death_certificate_number": "KT/2024/000001"}
#: Social Security's funeral-allowance statuses and the national status each one stands for.
ALLOWANCE_STATUSES = CARD_STATUSES


@settings(max_examples=100, deadline=None)
@given(dossier=death_dossiers(), extract=birth_certificates)
def test_allowance_request_carries_exactly_the_canonical_values(
    dossier: dict[str, Any], extract: str
) -> None:
    """Deceased, death extract, death day, area, recipient and request day reach the partner."""
    out = ALLOWANCE_REQUEST.apply(dossier, {"death_certificate_number": extract})
    form = dossier["form"]
    residence = form["last_residence"]
    received = datetime.fromisoformat(dossier["received_at"]).astimezone(VN_TZ)

    assert parse(out.pop("ngaySinh"), "yyyyMMdd") == form["deceased_date_of_birth"]
    assert parse(out.pop("ngayChet"), "yyyyMMdd") == form["date_of_death"]
    assert out == _without_none(
        {
            "maHoSo": dossier["code"],
            "hoTen": form["deceased_full_name"],
            "soDinhDanh": form["deceased_identity_number"],
            "maSoBHXH": form.get("deceased_social_insurance_number"),
            "loaiNgaySinh": "0",
            "gioiTinh": GENDERS_OUT[form["deceased_gender"]],
            "soTrichLucKhaiTu": extract,
            "maTinh": residence["province_code"],
            "maHuyen": residence.get("district_code"),
            "maXa": residence["commune_code"],
            "diaChi": residence.get("detail"),
            "nguoiHuong": _without_none(
                {
                    "hoTen": form["declarant_full_name"],
                    "soDinhDanh": form.get("declarant_identity_number"),
                    "quanHe": form["declarant_relationship"],
                }
            ),
            "ngayDeNghi": received.strftime("%Y%m%d"),
        }
    )


def test_allowance_request_without_a_death_extract_number_fails() -> None:
    """Without step 1's death extract number the request is refused, naming the context value."""
    with pytest.raises(MappingError) as caught:
        ALLOWANCE_REQUEST.apply(sample_death_dossier_json(), {})

    error = caught.value
    assert error.mapping == "social_insurance/1.0/funeral-allowance.out"
    assert error.source_path == "context.death_certificate_number"
    assert error.target_field == "soTrichLucKhaiTu"


def test_allowance_request_leaves_out_what_the_form_lacks() -> None:
    """No insurance number, district or declarant CCCD: the request leaves those fields out."""
    dossier = sample_death_dossier_json()
    for key in ("deceased_social_insurance_number", "declarant_identity_number"):
        del dossier["form"][key]
    del dossier["form"]["last_residence"]["district_code"]

    out = ALLOWANCE_REQUEST.apply(dossier, DEATH_CERTIFICATE)

    assert not {"maSoBHXH", "maHuyen"} & out.keys()
    assert out["nguoiHuong"] == {"hoTen": "Trần Văn Hùng", "quanHe": "Con"}


def _allowance_answer(**fields: Any) -> dict[str, Any]:
    answer = {
        "maHoSo": "000.00.10.H12-240315-0001",
        "trangThai": "03",
        "soQuyetDinh": "15/QĐ-BHXH",
        "ngayQuyetDinh": "20240320",
        "soTien": 18_000_000,
        "ghiChu": "Hưởng trợ cấp mai táng",
    }
    answer.update(fields)
    return answer


@pytest.mark.parametrize(("code", "status"), sorted(ALLOWANCE_STATUSES.items()))
def test_every_allowance_status_maps(code: str, status: DossierStatus) -> None:
    """Each funeral-allowance status becomes the national dossier status it stands for."""
    change = ALLOWANCE_ANSWER.to_canonical(
        _allowance_answer(trangThai=code), {"agency": SOCIAL_SECURITY}
    )
    assert isinstance(change, StatusChange)
    assert change.status is status


def test_granted_allowance_is_dated_and_referenced_by_its_decision() -> None:
    """A granted allowance: the decision number as reference, its day at local midnight."""
    change = ALLOWANCE_ANSWER.to_canonical(_allowance_answer(), {"agency": SOCIAL_SECURITY})
    assert change == StatusChange(
        dossier_code="000.00.10.H12-240315-0001",
        status=DossierStatus.PROCESSED,
        changed_at=datetime.combine(date(2024, 3, 20), time(), VN_TZ),
        agency=SOCIAL_SECURITY,
        partner_reference="15/QĐ-BHXH",
        note="Hưởng trợ cấp mai táng",
    )


def test_refused_allowance_is_dated_by_its_processing_day() -> None:
    """A refusal has no decision: dated by ngayXuLy, without a partner reference."""
    answer = _allowance_answer(
        trangThai="05", soQuyetDinh=None, ngayQuyetDinh=None, ngayXuLy="20250716"
    )
    change = ALLOWANCE_ANSWER.to_canonical(answer, {"agency": SOCIAL_SECURITY})
    assert isinstance(change, StatusChange)
    assert change.status is DossierStatus.NOT_ACCEPTED
    assert change.changed_at == datetime.combine(date(2025, 7, 16), time(), VN_TZ)
    assert change.partner_reference is None


def test_an_unmapped_allowance_status_names_the_field_and_value() -> None:
    """A status outside the list fails with the mapping, source, target and value set."""
    with pytest.raises(MappingError) as caught:
        ALLOWANCE_ANSWER.to_canonical(
            _allowance_answer(trangThai="09"), {"agency": SOCIAL_SECURITY}
        )
    error = caught.value
    assert error.mapping == "social_insurance/1.0/funeral-allowance-answer.in"
    assert (error.source_path, error.target_field, error.value) == ("trangThai", "status", "'09'")
