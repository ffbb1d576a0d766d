"""Civil-status mappings: the birth declaration survives a round trip; answers map precisely."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from bus.errors import MappingError
from bus.mapping import MappingCatalog, xmldoc
from bus.mapping.dates import parse as parse_date
from bus.mapping.spec import load_code_list
from contracts import (
    BirthRegistrationForm,
    Dossier,
    DossierStatus,
    StatusChange,
    sample_birth_dossier_json,
    sample_death_dossier_json,
)
from tests.mappings.death_forms import death_dossiers

catalog = MappingCatalog.load()
REQUEST = catalog.get("civil_status/1.0/birth-registration.out")
ANSWER = catalog.get("civil_status/1.0/registration-answer.in")
FEED = catalog.get("civil_status/1.0/change-feed.in")
GENDER = load_code_list(REQUEST.folder / "codes" / "gender.yaml")
XSD = "civil_status/ho-so-khai-sinh.xsd"
ROOT = "hoSoKhaiSinh"
CONTEXT = {"agency": "000.00.00.G12", "answered_at": "2024-03-15T09:00:02+07:00"}
DOSSIER_CODE = "000.00.10.H12-240315-0001"

# Words of letters, marks, digits, punctuation and symbols joined by single spaces: what a name
# or a place can hold, without the white space that XML and xs:token would normalise.
_word = st.text(st.characters(categories=("L", "M", "N", "P", "S")), min_size=1, max_size=12)
names = st.lists(_word, min_size=1, max_size=5).map(" ".join)
identity_numbers = st.from_regex(r"[0-9]{12}", fullmatch=True)


def mapped_document(dossier: dict[str, Any]) -> dict[str, Any]:
    """The <hoSoKhaiSinh> document that birth-registration.out builds, read back as a dict."""
    return xmldoc.to_dict(REQUEST.apply(dossier)["data"], root=ROOT, xsd=XSD)


def sample_xml() -> etree._Element:
    """The sample dossier's <hoSoKhaiSinh> document, as an element tree to break."""
    return etree.fromstring(REQUEST.apply(sample_birth_dossier_json())["data"])


@st.composite
def birth_dossiers(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid canonical birth dossier (as JSON) and the applicant it names."""
    form: dict[str, Any] = {
        "child_full_name": draw(names),
        "child_date_of_birth": draw(
            st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
        ).isoformat(),
        "child_gender": draw(st.sampled_from(["male", "female"])),
        "place_of_birth": draw(names),
        "mother_full_name": draw(names),
        "ethnicity": draw(st.none() | names),
        "nationality": draw(st.none() | st.from_regex(r"[A-Z]{2}", fullmatch=True)),
        "mother_identity_number": draw(st.none() | identity_numbers),
    }
    if draw(st.booleans()):
        form["father_full_name"] = draw(names)
        form["father_identity_number"] = draw(st.none() | identity_numbers)
    form = {key: value for key, value in form.items() if value is not None}
    applicant = draw(
        st.fixed_dictionaries(
            {"kind": st.just(1), "full_name": names, "identity_number": identity_numbers}
        )
        | st.fixed_dictionaries(
            {"kind": st.just(2), "full_name": names, "organisation_id": st.just("0101234567")}
        )
    )
    dossier = {**sample_birth_dossier_json(), "form": form, "applicant": applicant}
    BirthRegistrationForm.model_validate(form)
    Dossier.model_validate(dossier)
    return dossier, applicant


@settings(max_examples=100, deadline=None)
@given(birth_dossiers())
def test_birth_form_round_trips_through_the_xml(
    generated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Every value of a valid birth form and its applicant reads back unchanged from the XML."""
    dossier, applicant = generated
    form = dossier["form"]
    document = mapped_document(dossier)

    child = document["treEm"]
    assert child["hoTen"] == form["child_full_name"]
    assert parse_date(child["ngaySinh"], "dd/MM/yyyy") == form["child_date_of_birth"]
    assert GENDER.codes[child["gioiTinh"]] == form["child_gender"]
    assert child["noiSinh"] == form["place_of_birth"]
    assert child.get("danToc") == form.get("ethnicity")
    assert child["quocTich"] == form.get("nationality", "VN")
    assert document["me"] == {
        "hoTen": form["mother_full_name"],
        **(
            {"soDinhDanh": form["mother_identity_number"]}
            if "mother_identity_number" in form
            else {}
        ),
    }
    if "father_full_name" in form:
        assert document["cha"]["hoTen"] == form["father_full_name"]
        assert document["cha"].get("soDinhDanh") == form.get("father_identity_number")
    else:
        assert "cha" not in document
    assert document["nguoiYeuCau"]["hoTen"] == applicant["full_name"]
    assert document["nguoiYeuCau"].get("soDinhDanh") == applicant.get("identity_number")


def test_request_carries_the_dossier_identity() -> None:
    """maDonVi, module KS, maHoSo and ngayTiepNhan (local yyyyMMddHHmmss) frame the XML."""
    dossier = {**sample_birth_dossier_json(), "received_at": "2024-03-15T09:30:05+00:00"}
    body = REQUEST.apply(dossier)
    assert {key: value for key, value in body.items() if key != "data"} == {
        "maDonVi": "000.00.10.H12",
        "module": "KS",
        "maHoSo": DOSSIER_CODE,
        "ngayTiepNhan": "20240315163005",
    }


def test_sample_document_is_valid() -> None:
    """The sample dossier's document passes the XSD, so the breakages below are what fails."""
    document = etree.tostring(sample_xml())
    assert xmldoc.to_dict(document, root=ROOT, xsd=XSD)["treEm"]["hoTen"] == "Nguyễn Thị Bình"


@pytest.mark.parametrize(
    "path",
    [
        "treEm",
        "treEm/hoTen",
        "treEm/ngaySinh",
        "treEm/gioiTinh",
        "treEm/noiSinh",
        "treEm/quocTich",
        "me",
        "me/hoTen",
        "cha/hoTen",
        "nguoiYeuCau",
        "nguoiYeuCau/hoTen",
    ],
)
def test_xsd_rejects_a_missing_required_element(path: str) -> None:
    """A document without a required element is refused by the XSD."""
    root = sample_xml()
    element = root.find(path)
    assert element is not None
    element.getparent().remove(element)
    with pytest.raises(xmldoc.XmlMappingError, match=r"Missing child element|not expected"):
        xmldoc.to_dict(etree.tostring(root), root=ROOT, xsd=XSD)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("me/soDinhDanh", "00119205432"),
        ("me/soDinhDanh", "00119205432a"),
        ("treEm/ngaySinh", "2024-03-10"),
        ("treEm/ngaySinh", "32/01/2024"),
        ("treEm/gioiTinh", "3"),
        ("treEm/hoTen", "   "),
        ("treEm/quocTich", "vn"),
        ("treEm/danToc", "x" * 101),
    ],
)
def test_xsd_rejects_a_malformed_value(path: str, value: str) -> None:
    """An identity number, date, gender, name, nationality or length out of its type is refused."""
    root = sample_xml()
    element = root.find(path)
    assert element is not None
    element.text = value
    with pytest.raises(xmldoc.XmlMappingError, match="not valid against"):
        xmldoc.to_dict(etree.tostring(root), root=ROOT, xsd=XSD)


def test_missing_child_name_names_the_field() -> None:
    """A form without child_full_name fails with the mapping, source and target named."""
    dossier = sample_birth_dossier_json()
    del dossier["form"]["child_full_name"]
    with pytest.raises(MappingError, match=r"form\.child_full_name") as caught:
        REQUEST.apply(dossier)
    assert caught.value.mapping == "civil_status/1.0/birth-registration.out"
    assert caught.value.source_path == "form.child_full_name"
    assert caught.value.target_field == "data/treEm.hoTen"


def test_father_number_without_name_is_refused_by_the_xsd() -> None:
    """A father's CCCD without his name yields a <cha> the XSD refuses, as a MappingError."""
    dossier = sample_birth_dossier_json()
    del dossier["form"]["father_full_name"]
    with pytest.raises(MappingError, match=f"not valid against {XSD}") as caught:
        REQUEST.apply(dossier)
    assert caught.value.target_field == "data"


@pytest.mark.parametrize(
    ("partner_status", "status"),
    [
        (1, DossierStatus.ACCEPTED),
        (2, DossierStatus.SUPPLEMENT_REQUESTED),
        (3, DossierStatus.PROCESSING),
        (4, DossierStatus.PROCESSED),
    ],
)
def test_answer_maps_each_status(partner_status: int, status: DossierStatus) -> None:
    """trangThai 1-4 map to ACCEPTED, SUPPLEMENT_REQUESTED, PROCESSING and PROCESSED."""
    answer = {
        "trangThai": partner_status,
        "maHoSo": DOSSIER_CODE,
        "soDangKy": "KS/2024/000001",
        "moTa": "Đã xử lý",
        "daTonTai": True,
    }
    change = ANSWER.to_canonical(answer, CONTEXT)
    assert change == StatusChange(
        dossier_code=DOSSIER_CODE,
        status=status,
        changed_at=CONTEXT["answered_at"],
        agency="000.00.00.G12",
        partner_reference="KS/2024/000001",
        note="Đã xử lý",
    )


@pytest.mark.parametrize("partner_status", [0, 7])
def test_answer_outside_the_code_list_is_a_precise_error(partner_status: int) -> None:
    """trangThai 0 (an error answer) and 7 (unknown) fail naming mapping, path, field and value."""
    with pytest.raises(MappingError) as caught:
        ANSWER.to_canonical({"trangThai": partner_status, "maHoSo": DOSSIER_CODE}, CONTEXT)
    error = caught.value
    assert error.mapping == "civil_status/1.0/registration-answer.in"
    assert error.source_path == "trangThai"
    assert error.target_field == "status"
    assert error.value == str(partner_status)


def test_answer_needs_the_time_it_arrived() -> None:
    """Without the answered_at context value the answer cannot become a status change."""
    with pytest.raises(MappingError, match="answered_at"):
        ANSWER.to_canonical({"trangThai": 4, "maHoSo": DOSSIER_CODE}, {"agency": "000.00.00.G12"})


def test_feed_item_maps_to_a_status_change() -> None:
    """A dsHoSoDangKy item gives the status, its local time, the signer and the number."""
    item = {
        "maHoSo": DOSSIER_CODE,
        "maDonVi": "000.00.10.H12",
        "module": "KS",
        "trangThai": 4,
        "ngayCapNhat": "20240315143012",
        "soDangKy": "KS/2024/000001",
        "ngayDangKy": "15/03/2024",
        "nguoiKy": "Phạm Thị Hạnh",
    }
    change = FEED.to_canonical(item, {"agency": "000.00.00.G12"})
    assert change == StatusChange(
        dossier_code=DOSSIER_CODE,
        status=DossierStatus.PROCESSED,
        changed_at="2024-03-15T14:30:12+07:00",
        agency="000.00.00.G12",
        officer="Phạm Thị Hạnh",
        partner_reference="KS/2024/000001",
    )


def test_feed_item_with_unknown_status_is_a_precise_error() -> None:
    """A feed item with trangThai 0 fails naming the change-feed mapping and the value."""
    item = {"maHoSo": DOSSIER_CODE, "trangThai": 0, "ngayCapNhat": "20240315143012"}
    with pytest.raises(MappingError) as caught:
        FEED.to_canonical(item, {"agency": "000.00.00.G12"})
    assert caught.value.mapping == "civil_status/1.0/change-feed.in"
    assert (caught.value.source_path, caught.value.target_field) == ("trangThai", "status")
    assert caught.value.value == "0"


# --- death registration (khai tử, module KT) ------------------------------------------------

DEATH = catalog.get("civil_status/1.0/death-registration.out")
DEATH_XSD = "civil_status/ho-so-khai-tu.xsd"
DEATH_ROOT = "hoSoKhaiTu"


def death_document(dossier: dict[str, Any]) -> dict[str, Any]:
    """The <hoSoKhaiTu> document that death-registration.out builds, read back as a dict."""
    return xmldoc.to_dict(DEATH.apply(dossier)["data"], root=DEATH_ROOT, xsd=DEATH_XSD)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@settings(max_examples=100, deadline=None)
@given(death_dossiers())
def test_death_form_round_trips_through_the_xml(dossier: dict[str, Any]) -> None:
    """Every value of a valid death form reads back unchanged from the <hoSoKhaiTu> document."""
    form = dossier["form"]
    document = death_document(dossier)

    deceased = document["nguoiChet"]
    assert parse_date(deceased.pop("ngaySinh"), "dd/MM/yyyy") == form["deceased_date_of_birth"]
    assert GENDER.codes[deceased.pop("gioiTinh")] == form["deceased_gender"]
    residence = form["last_residence"]
    assert deceased == _present(
        {
            "hoTen": form["deceased_full_name"],
            "danToc": form.get("deceased_ethnicity"),
            "quocTich": form.get("deceased_nationality", "VN"),
            "soDinhDanh": form["deceased_identity_number"],
            "noiCuTru": _present(
                {
                    "maTinh": residence["province_code"],
                    "maHuyen": residence.get("district_code"),
                    "maXa": residence["commune_code"],
                    "diaChiChiTiet": residence.get("detail"),
                }
            ),
        }
    )
    death = document["khaiTu"]
    assert parse_date(death.pop("ngayChet"), "dd/MM/yyyy") == form["date_of_death"]
    assert death == _present(
        {
            "noiChet": form["place_of_death"],
            "nguyenNhan": form.get("cause_of_death"),
            "soGiayBaoTu": form.get("death_notice_number"),
            "noiCapGiayBaoTu": form.get("death_notice_issuer"),
        }
    )
    assert document["nguoiYeuCau"] == _present(
        {
            "hoTen": form["declarant_full_name"],
            "soDinhDanh": form.get("declarant_identity_number"),
            "quanHe": form["declarant_relationship"],
        }
    )


def test_death_request_carries_module_kt() -> None:
    """maDonVi, module KT, maHoSo and ngayTiepNhan frame the death document."""
    body = DEATH.apply(sample_death_dossier_json())
    assert {key: value for key, value in body.items() if key != "data"} == {
        "maDonVi": "000.00.10.H12",
        "module": "KT",
        "maHoSo": DOSSIER_CODE,
        "ngayTiepNhan": "20240315090000",
    }


@pytest.mark.parametrize(
    ("field", "target"),
    [
        ("deceased_identity_number", "data/nguoiChet.soDinhDanh"),
        ("date_of_death", "data/khaiTu.ngayChet"),
        ("place_of_death", "data/khaiTu.noiChet"),
        ("declarant_relationship", "data/nguoiYeuCau.quanHe"),
        ("last_residence", "data/nguoiChet.noiCuTru.maTinh"),
    ],
)
def test_death_form_without_a_required_value_names_it(field: str, target: str) -> None:
    """A death form without a value the register needs fails naming the mapping and the field."""
    dossier = sample_death_dossier_json()
    del dossier["form"][field]
    with pytest.raises(MappingError) as caught:
        DEATH.apply(dossier)
    assert caught.value.mapping == "civil_status/1.0/death-registration.out"
    assert caught.value.source_path is not None
    assert caught.value.source_path.startswith(f"form.{field}")
    assert caught.value.target_field == target


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("nguoiChet/soDinhDanh", "00104800987"),
        ("nguoiChet/noiCuTru/maXa", "0001"),
        ("khaiTu/ngayChet", "2024-03-12"),
        ("nguoiYeuCau/quanHe", "   "),
    ],
)
def test_death_xsd_rejects_a_malformed_value(path: str, value: str) -> None:
    """An identity number, commune code, date or relationship out of its type is refused."""
    root = etree.fromstring(DEATH.apply(sample_death_dossier_json())["data"])
    element = root.find(path)
    assert element is not None
    element.text = value
    with pytest.raises(xmldoc.XmlMappingError, match="not valid against"):
        xmldoc.to_dict(etree.tostring(root), root=DEATH_ROOT, xsd=DEATH_XSD)


def test_answer_to_a_death_carries_the_extract_number() -> None:
    """A death registered (trangThai 4) gives the extract number as the partner reference."""
    answer = {"trangThai": 4, "maHoSo": DOSSIER_CODE, "soDangKy": "KT/2024/000001"}
    change = ANSWER.to_canonical(answer, CONTEXT)
    assert isinstance(change, StatusChange)
    assert (change.status, change.partner_reference) == (DossierStatus.PROCESSED, "KT/2024/000001")
