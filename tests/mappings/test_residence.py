"""Residence (Public Security) mappings: a newborn's residence, a deceased's removal, answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import MappingError
from bus.mapping import MappingCatalog
from bus.mapping.dates import parse
from contracts import VN_TZ, Dossier, DossierStatus, StatusChange
from contracts.codes import make_dossier_code
from contracts.samples import sample_birth_dossier_json, sample_death_dossier_json
from tests.mappings.death_forms import death_dossiers

catalog = MappingCatalog.load()
REGISTRATION = catalog.get("residence/1.0/registration.out")
ANSWER = catalog.get("residence/1.0/answer.in")

AGENCY = "000.00.10.H12"
POLICE = "000.23.10.H12"
BIRTH_CERTIFICATE = {"birth_certificate_number": "125/2024"}
#: The residence software's gender codes: 1 nam, 2 nữ.
GENDERS = {"male": 1, "female": 2}
#: The residence software's outcomes and the national status each one stands for.
RESULTS = {
    "DA_TIEP_NHAN": DossierStatus.ACCEPTED,
    "DA_DANG_KY": DossierStatus.PROCESSED,
    "TU_CHOI": DossierStatus.NOT_ACCEPTED,
    "BO_SUNG": DossierStatus.SUPPLEMENT_REQUESTED,
    "DA_XOA": DossierStatus.PROCESSED,
}

_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
names = st.lists(
    st.text(_LETTERS + _LETTERS.upper(), min_size=1, max_size=8), min_size=1, max_size=5
).map(" ".join)
texts = st.text(_LETTERS + " ,.-/0123456789", min_size=1, max_size=120).filter(str.strip)
citizen_ids = st.text("0123456789", min_size=12, max_size=12)
moments = st.datetimes(
    min_value=datetime(2018, 1, 1),
    max_value=datetime(2099, 12, 30),
    timezones=st.sampled_from([VN_TZ, UTC, timezone(timedelta(hours=-5))]),
).map(lambda moment: moment.replace(microsecond=0))
birth_certificates = st.from_regex(r"[0-9]{1,6}/20[0-9]{2}", fullmatch=True)


@st.composite
def birth_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid canonical birth dossier with the fields residence reads drawn at random."""
    received = draw(moments)
    dossier = sample_birth_dossier_json(received_at=received, agency=AGENCY)
    dossier["code"] = make_dossier_code(
        AGENCY, received.astimezone(VN_TZ).date(), draw(st.integers(1, 9999))
    )
    dossier["applicant"]["full_name"] = draw(names)
    dossier["applicant"]["identity_number"] = draw(citizen_ids)
    dossier["applicant"]["address"] = {
        "province_code": draw(st.text("0123456789", min_size=2, max_size=2)),
        "district_code": draw(st.none() | st.text("0123456789", min_size=3, max_size=3)),
        "commune_code": draw(st.text("0123456789", min_size=5, max_size=5)),
        "detail": draw(st.none() | texts),
    }
    dossier["form"].update(
        child_full_name=draw(names),
        child_date_of_birth=draw(st.dates(date(1900, 1, 1), date(2099, 12, 31))).isoformat(),
        child_gender=draw(st.sampled_from(sorted(GENDERS))),
        place_of_birth=draw(texts),
        mother_full_name=draw(names),
        mother_identity_number=draw(st.none() | citizen_ids),
        ethnicity=draw(st.none() | st.sampled_from(["Kinh", "Tày", "Thái", "Mường", "Hoa"])),
        nationality=draw(st.sampled_from(["VN", "LA", "KH"])),
    )
    return Dossier.model_validate(dossier).model_dump(mode="json")


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@settings(max_examples=100, deadline=None)
@given(dossier=birth_dossiers(), certificate=birth_certificates)
def test_registration_carries_exactly_the_canonical_values(
    dossier: dict[str, Any], certificate: str
) -> None:
    """Every field of the registration request holds the dossier's value, dates read back equal."""
    out = REGISTRATION.apply(dossier, {"birth_certificate_number": certificate})
    form, applicant = dossier["form"], dossier["applicant"]
    address = applicant["address"]

    assert out["maHoSo"] == dossier["code"]
    assert out["maDonViTiepNhan"] == dossier["receiving_agency"]
    assert out["loaiThuTuc"] == "DKTT"
    assert out["nguoiDangKy"] == {
        "hoTen": applicant["full_name"],
        "soDinhDanh": applicant["identity_number"],
    }
    child = out["congDan"]
    assert parse(child.pop("ngaySinh"), "dd/MM/yyyy") == form["child_date_of_birth"]
    assert child == _without_none(
        {
            "hoTen": form["child_full_name"],
            "gioiTinh": GENDERS[form["child_gender"]],
            "soGiayKhaiSinh": certificate,
            "noiSinh": form["place_of_birth"],
            "danToc": form["ethnicity"],
            "quocTich": form["nationality"],
        }
    )
    assert out["noiThuongTru"] == _without_none(
        {
            "maTinh": address["province_code"],
            "maHuyen": address["district_code"],
            "maXa": address["commune_code"],
            "diaChiChiTiet": address["detail"],
        }
    )
    assert out["chuHo"] == _without_none(
        {"hoTen": form["mother_full_name"], "soDinhDanh": form["mother_identity_number"]}
    )
    assert out["quanHeVoiChuHo"] == "Con"
    received = datetime.fromisoformat(parse(out["ngayTiepNhan"], "yyyyMMddHHmmss"))
    assert received == datetime.fromisoformat(dossier["received_at"])


def test_registration_leaves_out_the_district_where_the_reform_removed_it() -> None:
    """An address without a district code yields noiThuongTru without maHuyen."""
    dossier = sample_birth_dossier_json()
    del dossier["applicant"]["address"]["district_code"]

    out = REGISTRATION.apply(dossier, BIRTH_CERTIFICATE)

    assert out["noiThuongTru"] == {
        "maTinh": "01",
        "maXa": "00001",
        "diaChiChiTiet": "Số 12, ngõ 34 phố Phúc Xá",
    }


def test_registration_sends_vn_when_the_form_omits_nationality() -> None:
    """A form without nationality is sent as Vietnamese, the birth form's own default."""
    dossier = sample_birth_dossier_json()
    del dossier["form"]["nationality"]

    assert REGISTRATION.apply(dossier, BIRTH_CERTIFICATE)["congDan"]["quocTich"] == "VN"


@pytest.mark.parametrize(("gender", "code"), sorted(GENDERS.items()))
def test_every_gender_maps(gender: str, code: int) -> None:
    """Each canonical child gender becomes the residence software's numeric code."""
    dossier = sample_birth_dossier_json()
    dossier["form"]["child_gender"] = gender

    assert REGISTRATION.apply(dossier, BIRTH_CERTIFICATE)["congDan"]["gioiTinh"] == code


def test_an_unmapped_gender_names_the_field_and_value() -> None:
    """A gender outside the code list fails with the mapping, source, target and value set."""
    dossier = sample_birth_dossier_json()
    dossier["form"]["child_gender"] = "other"

    with pytest.raises(MappingError) as caught:
        REGISTRATION.apply(dossier, BIRTH_CERTIFICATE)

    error = caught.value
    assert error.mapping == "residence/1.0/registration.out"
    assert error.source_path == "form.child_gender"
    assert error.target_field == "congDan.gioiTinh"
    assert error.value == "'other'"


def test_registration_without_a_birth_certificate_number_fails() -> None:
    """Without step 1's certificate number the request is refused, naming the context value."""
    with pytest.raises(MappingError) as caught:
        REGISTRATION.apply(sample_birth_dossier_json(), {})

    error = caught.value
    assert error.mapping == "residence/1.0/registration.out"
    assert error.source_path == "context.birth_certificate_number"
    assert error.target_field == "congDan.soGiayKhaiSinh"
    assert "birth_certificate_number" in str(error)


def _answer(**fields: Any) -> dict[str, Any]:
    answer = {
        "maHoSo": "000.00.10.H12-240315-0001",
        "ketQua": "DA_DANG_KY",
        "soHoKhau": "01000124000153",
        "thoiGian": "20240318103512",
        "lyDo": "Đã đăng ký thường trú",
    }
    answer.update(fields)
    return answer


@pytest.mark.parametrize(("result", "status"), sorted(RESULTS.items()))
def test_every_result_maps_to_its_status(result: str, status: DossierStatus) -> None:
    """Each residence outcome becomes the national dossier status it stands for."""
    change = ANSWER.to_canonical(_answer(ketQua=result), {"agency": POLICE})

    assert isinstance(change, StatusChange)
    assert change.status is status


@settings(max_examples=100, deadline=None)
@given(
    result=st.sampled_from(sorted(RESULTS)),
    moment=moments,
    household=st.none() | st.from_regex(r"[0-9]{8,14}", fullmatch=True),
    reason=st.none() | texts,
    sequence=st.integers(1, 9999),
)
def test_answer_carries_exactly_the_partner_values(
    result: str, moment: datetime, household: str | None, reason: str | None, sequence: int
) -> None:
    """The status change holds the answer's code, local time, household number and reason."""
    local = moment.astimezone(VN_TZ)
    code = make_dossier_code(AGENCY, local.date(), sequence)
    answer = {
        "maHoSo": code,
        "ketQua": result,
        "soHoKhau": household,
        "thoiGian": local.strftime("%Y%m%d%H%M%S"),
        "lyDo": reason,
    }

    change = ANSWER.to_canonical(answer, {"agency": POLICE})

    assert change == StatusChange(
        dossier_code=code,
        status=RESULTS[result],
        changed_at=moment,
        agency=POLICE,
        partner_reference=household,
        note=reason,
    )


def test_an_unmapped_result_names_the_field_and_value() -> None:
    """A result code outside the list fails with the mapping, source, target and value set."""
    with pytest.raises(MappingError) as caught:
        ANSWER.to_canonical(_answer(ketQua="DANG_XU_LY"), {"agency": POLICE})

    error = caught.value
    assert error.mapping == "residence/1.0/answer.in"
    assert error.source_path == "ketQua"
    assert error.target_field == "status"
    assert error.value == "'DANG_XU_LY'"


def test_an_answer_with_a_malformed_time_names_the_field_and_value() -> None:
    """A thoiGian that is not yyyyMMddHHmmss fails on changed_at with the offending text."""
    with pytest.raises(MappingError) as caught:
        ANSWER.to_canonical(_answer(thoiGian="18/03/2024 10:35"), {"agency": POLICE})

    error = caught.value
    assert error.source_path == "thoiGian"
    assert error.target_field == "changed_at"
    assert error.value == "'18/03/2024 10:35'"


# --- the death bundle: removal of the deceased's permanent residence ------------------------

REMOVAL = catalog.get("residence/1.0/removal.out")
DEATH_CERTIFICATE = {"death_certificate_number": "KT/2024/000001"}


@settings(max_examples=100, deadline=None)
@given(dossier=death_dossiers(), extract=birth_certificates)
def test_removal_carries_exactly_the_canonical_values(
    dossier: dict[str, Any], extract: str
) -> None:
    """Every field of the removal request holds the dossier's value, dates read back equal."""
    out = REMOVAL.apply(dossier, {"death_certificate_number": extract})
    form = dossier["form"]
    residence = form["last_residence"]

    assert (out["maHoSo"], out["maDonViTiepNhan"]) == (dossier["code"], dossier["receiving_agency"])
    assert (out["loaiThuTuc"], out["lyDoXoa"]) == ("XDKTT", "CHET")
    assert out["nguoiDeNghi"] == _without_none(
        {
            "hoTen": form["declarant_full_name"],
            "soDinhDanh": form.get("declarant_identity_number"),
            "quanHe": form["declarant_relationship"],
        }
    )
    deceased = out["congDan"]
    assert parse(deceased.pop("ngaySinh"), "dd/MM/yyyy") == form["deceased_date_of_birth"]
    assert deceased == {
        "hoTen": form["deceased_full_name"],
        "soDinhDanh": form["deceased_identity_number"],
        "gioiTinh": GENDERS[form["deceased_gender"]],
    }
    assert out["khaiTu"]["soTrichLuc"] == extract
    assert parse(out["khaiTu"]["ngayChet"], "dd/MM/yyyy") == form["date_of_death"]
    assert out["noiThuongTru"] == _without_none(
        {
            "maTinh": residence["province_code"],
            "maHuyen": residence.get("district_code"),
            "maXa": residence["commune_code"],
            "diaChiChiTiet": residence.get("detail"),
        }
    )
    received = datetime.fromisoformat(parse(out["ngayTiepNhan"], "yyyyMMddHHmmss"))
    assert received == datetime.fromisoformat(dossier["received_at"])


def test_removal_without_a_death_extract_number_fails() -> None:
    """Without step 1's death extract number the removal is refused, naming the context value."""
    with pytest.raises(MappingError) as caught:
        REMOVAL.apply(sample_death_dossier_json(), {})

    error = caught.value
    assert error.mapping == "residence/1.0/removal.out"
    assert error.source_path == "context.death_certificate_number"
    assert error.target_field == "khaiTu.soTrichLuc"


def test_removal_leaves_out_the_district_where_the_reform_removed_it() -> None:
    """A last residence without a district code yields noiThuongTru without maHuyen."""
    dossier = sample_death_dossier_json()
    del dossier["form"]["last_residence"]["district_code"]

    out = REMOVAL.apply(dossier, DEATH_CERTIFICATE)

    assert out["noiThuongTru"] == {
        "maTinh": "01",
        "maXa": "00001",
        "diaChiChiTiet": "Số 5, ngõ 20 phố Phúc Xá",
    }


def test_answer_of_a_removal_is_processed() -> None:
    """ketQua DA_XOA (removed) becomes PROCESSED, with the household the person left."""
    change = ANSWER.to_canonical(
        _answer(ketQua="DA_XOA", lyDo="Đã xóa đăng ký thường trú"), {"agency": POLICE}
    )
    assert isinstance(change, StatusChange)
    assert (change.status, change.partner_reference) == (DossierStatus.PROCESSED, "01000124000153")
