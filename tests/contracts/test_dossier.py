"""Tests of the canonical dossier, its parts, and the sample builder."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import (
    FORM_MAX_KEYS,
    VN_TZ,
    Applicant,
    ApplicantKind,
    BirthRegistrationForm,
    Channel,
    DeathRegistrationForm,
    Dossier,
    DossierStatus,
    StatusChange,
    SupplementRequest,
    sample_birth_dossier,
    sample_birth_dossier_json,
    sample_death_dossier,
    sample_death_dossier_json,
)

CCCD = "001090012345"


def _birth_dossier_payload() -> dict[str, Any]:
    """The full sample of the brief, written out by hand as a peer would send it."""
    return {
        "code": "000.00.10.H12-240315-0001",
        "procedure_code": "1.001193",
        "procedure_name": "Đăng ký khai sinh",
        "field_name": "Hộ tịch",
        "receiving_agency": "000.00.10.H12",
        "handling_agency": "000.00.10.H12",
        "receipt_number": "BN-240315-0001",
        "channel": 2,
        "applicant": {
            "kind": 1,
            "full_name": "Nguyễn Văn An",
            "identity_number": CCCD,
            "phone": "+84 912 345 678",
            "email": "an@example.vn",
            "address": {"province_code": "01", "commune_code": "00001", "detail": "Phúc Xá"},
        },
        "received_at": "2024-03-15T09:00:00+07:00",
        "due_at": "2024-03-20T17:00:00+07:00",
        "status": 2,
        "documents": [
            {
                "document_id": "TL-1",
                "name": "Giấy chứng sinh",
                "sha256": hashlib.sha256(b"giay chung sinh").hexdigest(),
            },
            {
                "document_id": "TL-2",
                "name": "CCCD của mẹ",
                "sha256": hashlib.sha256(b"cccd cua me").hexdigest(),
            },
        ],
        "fees": [{"name": "Lệ phí đăng ký khai sinh", "amount_vnd": 0}],
        "form": {"child_full_name": "Nguyễn Thị Bình", "child_gender": "female"},
    }


def _errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        Dossier.model_validate(payload)
    return [dict(error) for error in caught.value.errors()]


def test_full_birth_dossier_validates() -> None:
    """A complete birth-registration dossier validates, with enums and local datetimes."""
    dossier = Dossier.model_validate(_birth_dossier_payload())
    assert dossier.code == "000.00.10.H12-240315-0001"
    assert dossier.channel is Channel.ONLINE
    assert dossier.status is DossierStatus.ACCEPTED
    assert dossier.applicant.kind is ApplicantKind.CITIZEN
    assert len(dossier.documents) == 2
    assert dossier.received_at == datetime(2024, 3, 15, 9, tzinfo=VN_TZ)
    assert dossier.schema_version == "1.0"


def test_dossier_round_trips_through_json() -> None:
    """A dossier dumped to JSON validates back to an equal dossier."""
    dossier = Dossier.model_validate(_birth_dossier_payload())
    assert Dossier.model_validate_json(dossier.model_dump_json()) == dossier


def test_naive_datetime_is_rejected_naming_the_field() -> None:
    """A datetime without UTC offset fails on that field, with an example of the right form."""
    payload = _birth_dossier_payload()
    payload["received_at"] = "2024-03-15T09:00:00"
    (error,) = _errors(payload)
    assert error["loc"] == ("received_at",)
    assert "must include a UTC offset, e.g. 2024-03-15T09:00:00+07:00" in error["msg"]


def test_naive_datetime_object_is_rejected() -> None:
    """A naive datetime object is refused, not assumed to be local time."""
    payload = _birth_dossier_payload()
    payload["due_at"] = datetime(2024, 3, 20, 17)
    (error,) = _errors(payload)
    assert error["loc"] == ("due_at",)
    assert error["type"] == "timezone_aware"


@pytest.mark.parametrize("value", [20240315090000, "20240315090000", 1710468000])
def test_numeric_datetimes_are_rejected(value: object) -> None:
    """Partner yyyyMMddHHmmss values and Unix timestamps are refused, not misread."""
    payload = _birth_dossier_payload()
    payload["due_at"] = value
    (error,) = _errors(payload)
    assert error["loc"] == ("due_at",)
    assert "yyyyMMddHHmmss" in error["msg"]


def test_utc_input_is_converted_to_vietnam_time() -> None:
    """An instant given in UTC is stored as the same instant at +07:00."""
    payload = _birth_dossier_payload()
    payload["received_at"] = "2024-03-15T02:00:00Z"
    dossier = Dossier.model_validate(payload)
    assert dossier.received_at.utcoffset() == timedelta(hours=7)
    assert dossier.received_at.hour == 9
    assert dossier.model_dump(mode="json")["received_at"] == "2024-03-15T09:00:00+07:00"


def test_code_date_must_match_local_receipt_date() -> None:
    """A code dated 15 March with a receipt on 16 March (local time) is rejected with both dates."""
    payload = _birth_dossier_payload()
    payload["received_at"] = "2024-03-16T08:00:00+07:00"
    payload["due_at"] = None
    (error,) = _errors(payload)
    assert error["type"] == "dossier_code_date"
    assert "2024-03-15" in error["msg"]
    assert "2024-03-16" in error["msg"]


def test_code_date_is_compared_in_local_time() -> None:
    """A receipt at 23:30 UTC on 14 March is 15 March in Hanoi, matching a 240315 code."""
    payload = _birth_dossier_payload()
    payload["received_at"] = "2024-03-14T23:30:00+00:00"
    assert Dossier.model_validate(payload).received_at.date() == date(2024, 3, 15)


@pytest.mark.parametrize("field", ["due_at", "finished_at", "returned_at"])
def test_dates_before_receipt_are_rejected(field: str) -> None:
    """due_at, finished_at and returned_at may not precede received_at."""
    payload = _birth_dossier_payload()
    payload[field] = "2024-03-15T08:59:00+07:00"
    (error,) = _errors(payload)
    assert error["type"] == "date_order"
    assert field in error["msg"]


def test_finished_status_does_not_require_finished_at() -> None:
    """A processed dossier without finished_at is accepted: peers often omit it."""
    payload = _birth_dossier_payload()
    payload["status"] = DossierStatus.PROCESSED
    assert Dossier.model_validate(payload).finished_at is None


def test_citizen_without_identity_number_is_rejected() -> None:
    """A citizen applicant must carry a CCCD."""
    payload = _birth_dossier_payload()
    del payload["applicant"]["identity_number"]
    (error,) = _errors(payload)
    assert error["loc"] == ("applicant",)
    assert "identity_number" in error["msg"]


def test_organisation_needs_organisation_id() -> None:
    """An organisation applicant must carry a tax or business code, and needs no CCCD."""
    with pytest.raises(ValidationError, match="organisation_id"):
        Applicant(kind=ApplicantKind.ORGANISATION, full_name="Công ty TNHH Bình An")
    company = Applicant(
        kind=ApplicantKind.ORGANISATION,
        full_name="Công ty TNHH Bình An",
        organisation_id="0101234567",
    )
    assert company.identity_number is None


def test_extra_field_is_rejected() -> None:
    """An unknown field is an error, so a misspelt field name is never silently dropped."""
    payload = _birth_dossier_payload()
    payload["MaHoSo"] = payload["code"]
    (error,) = _errors(payload)
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("MaHoSo",)


def test_nested_extra_field_is_rejected() -> None:
    """Unknown fields are refused inside nested models too."""
    payload = _birth_dossier_payload()
    payload["documents"][0]["checksum"] = "x"
    (error,) = _errors(payload)
    assert error["loc"] == ("documents", 0, "checksum")


def test_strings_are_stripped() -> None:
    """Leading and trailing spaces typed at the desk are removed, codes included."""
    payload = _birth_dossier_payload()
    payload["receiving_agency"] = " 000.00.10.H12 "
    payload["applicant"]["full_name"] = "  Nguyễn Văn An "
    dossier = Dossier.model_validate(payload)
    assert dossier.receiving_agency == "000.00.10.H12"
    assert dossier.applicant.full_name == "Nguyễn Văn An"


def test_repr_and_str_do_not_contain_the_cccd() -> None:
    """Neither repr nor str of a dossier shows a CCCD in clear, in the applicant or the form."""
    payload = _birth_dossier_payload()
    payload["form"]["mother_identity_number"] = "001192054321"
    dossier = Dossier.model_validate(payload)
    for text in (repr(dossier), str(dossier), repr(dossier.applicant), str(dossier.applicant)):
        assert CCCD not in text
        assert "001192054321" not in text
    assert "*********345" in repr(dossier.applicant)


def test_validation_error_text_does_not_contain_the_input() -> None:
    """The text of a validation error does not quote the rejected personal data."""
    payload = _birth_dossier_payload()
    payload["applicant"]["identity_number"] = "0010900123456"
    with pytest.raises(ValidationError) as caught:
        Dossier.model_validate(payload)
    assert "0010900123456" not in str(caught.value)


@pytest.mark.parametrize("sha256", ["ABC", "A" * 64, "g" * 64, ""])
def test_document_checksum_must_be_lowercase_sha256(sha256: str) -> None:
    """A submitted document's sha256 must be 64 lowercase hex characters."""
    payload = _birth_dossier_payload()
    payload["documents"][0]["sha256"] = sha256
    (error,) = _errors(payload)
    assert error["loc"] == ("documents", 0, "sha256")
    assert "64 lowercase hexadecimal" in error["msg"]


def test_document_without_checksum_is_rejected() -> None:
    """A submitted document without a checksum is refused."""
    payload = _birth_dossier_payload()
    del payload["documents"][1]["sha256"]
    (error,) = _errors(payload)
    assert error["type"] == "missing"


def test_document_list_is_bounded() -> None:
    """More than 100 submitted documents are refused, bounding hostile input."""
    payload = _birth_dossier_payload()
    payload["documents"] = payload["documents"][:1] * 101
    (error,) = _errors(payload)
    assert error["type"] == "too_long"


def test_form_key_count_is_bounded() -> None:
    """A form with more keys than FORM_MAX_KEYS is refused."""
    payload = _birth_dossier_payload()
    payload["form"] = {f"k{i}": i for i in range(FORM_MAX_KEYS + 1)}
    (error,) = _errors(payload)
    assert error["loc"] == ("form",)


def test_form_size_is_bounded() -> None:
    """A form larger than 64 KiB as JSON is refused: attachments travel as documents."""
    payload = _birth_dossier_payload()
    payload["form"] = {"scan": "A" * 70_000}
    (error,) = _errors(payload)
    assert error["type"] == "form_too_large"


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "0912-345-678"), ("phone", "1234567"), ("email", "an.example.vn")],
)
def test_applicant_contact_details_are_checked(field: str, value: str) -> None:
    """Phones must be 8-15 digits with + and spaces only; emails need an @ and a domain."""
    with pytest.raises(ValidationError) as caught:
        Applicant(full_name="Nguyễn Văn An", identity_number=CCCD, **{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_supplement_dates_are_ordered() -> None:
    """A supplement cannot be supplied before it was requested."""
    with pytest.raises(ValidationError, match="supplied_at"):
        SupplementRequest(
            requested_at=datetime(2024, 3, 16, 9, tzinfo=VN_TZ),
            reason="Thiếu giấy chứng sinh bản chính",
            supplied_at=datetime(2024, 3, 15, 9, tzinfo=VN_TZ),
        )


def test_status_change_record_validates() -> None:
    """A progress update from a partner validates, with its datetimes moved to +07:00."""
    change = StatusChange(
        dossier_code="000.00.10.H12-240315-0001",
        status=DossierStatus.PROCESSED,
        previous_status=DossierStatus.PROCESSING,
        changed_at=datetime(2024, 3, 15, 3, 30, tzinfo=UTC),
        agency="000.00.10.H12",
        officer="Lê Thị Hoa",
        officer_title="Công chức tư pháp - hộ tịch",
        partner_reference="123/2024",
    )
    assert change.changed_at.utcoffset() == timedelta(hours=7)
    assert StatusChange.model_validate_json(change.model_dump_json()) == change


def test_birth_registration_form_validates_the_sample_form() -> None:
    """The form of the sample birth dossier validates against BirthRegistrationForm."""
    form = BirthRegistrationForm.model_validate(sample_birth_dossier().form)
    assert form.child_full_name == "Nguyễn Thị Bình"
    assert form.nationality == "VN"
    assert "001192054321" not in repr(form)


def test_birth_registration_form_rejects_unknown_gender() -> None:
    """child_gender accepts only male or female."""
    form = dict(sample_birth_dossier().form)
    form["child_gender"] = "nam"
    with pytest.raises(ValidationError) as caught:
        BirthRegistrationForm.model_validate(form)
    assert caught.value.errors()[0]["loc"] == ("child_gender",)


def test_sample_dossier_code_follows_agency_date_and_sequence() -> None:
    """The sample builder derives the code from agency, local receipt date and sequence."""
    received = datetime(2024, 4, 1, 20, 0, tzinfo=UTC)  # 2 April 03:00 in Hanoi
    dossier = sample_birth_dossier(sequence=12, received_at=received, agency="000.00.00.H30")
    assert dossier.code == "000.00.00.H30-240402-0012"
    assert dossier.receiving_agency == "000.00.00.H30"
    assert dossier.procedure_code == "1.001193"


def test_sample_dossier_json_validates_back() -> None:
    """The JSON form of the sample validates back to the same dossier."""
    assert Dossier.model_validate(sample_birth_dossier_json(3)) == sample_birth_dossier(3)


def test_sample_dossier_rejects_naive_receipt_time() -> None:
    """The sample builder refuses a naive received_at instead of guessing its zone."""
    with pytest.raises(ValueError, match="UTC offset"):
        sample_birth_dossier(received_at=datetime(2024, 3, 15, 9))


def test_death_registration_form_validates_the_sample_form() -> None:
    """The sample death dossier's form validates, and its repr hides every personal number."""
    form = DeathRegistrationForm.model_validate(sample_death_dossier().form)
    assert form.deceased_full_name == "Trần Văn Đức"
    assert form.deceased_nationality == "VN"
    assert form.last_residence.commune_code == "00001"
    shown = repr(form)
    for number in ("001048009876", "001075004321", "0148003456"):
        assert number not in shown
    assert "*******456" in shown


def test_death_cannot_come_before_birth() -> None:
    """A date of death before the date of birth is refused."""
    form = {**sample_death_dossier().form, "date_of_death": "1940-01-01"}
    with pytest.raises(ValidationError, match="date_of_death"):
        DeathRegistrationForm.model_validate(form)


def test_the_deceased_does_not_declare_the_death() -> None:
    """A declarant carrying the deceased's identity number is refused."""
    form = dict(sample_death_dossier().form)
    form["declarant_identity_number"] = form["deceased_identity_number"]
    with pytest.raises(ValidationError, match="declarant_identity_number"):
        DeathRegistrationForm.model_validate(form)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deceased_identity_number", "00104800987"),
        ("deceased_social_insurance_number", "01480034"),
        ("deceased_gender", "nam"),
        ("deceased_nationality", "vn"),
        ("declarant_relationship", ""),
        ("last_residence", {"province_code": "01"}),
    ],
)
def test_death_registration_form_checks_its_fields(field: str, value: Any) -> None:
    """Identity and insurance numbers, gender, nationality, relationship and residence are
    checked, the error naming the field."""
    form = {**sample_death_dossier().form, field: value}
    with pytest.raises(ValidationError) as caught:
        DeathRegistrationForm.model_validate(form)
    assert caught.value.errors()[0]["loc"][0] == field


def test_death_registration_form_needs_the_deceased_identity() -> None:
    """The deceased's identity number is required: later steps find the person by it."""
    form = {k: v for k, v in sample_death_dossier().form.items() if k != "deceased_identity_number"}
    with pytest.raises(ValidationError) as caught:
        DeathRegistrationForm.model_validate(form)
    assert caught.value.errors()[0]["loc"] == ("deceased_identity_number",)


def test_sample_death_dossier_is_procedure_1_007073() -> None:
    """The death sample: procedure 1.007073, code from agency, local day and sequence, the death
    three days before receipt, and no death extract number yet."""
    received = datetime(2024, 4, 1, 20, 0, tzinfo=UTC)  # 2 April 03:00 in Hanoi
    dossier = sample_death_dossier(sequence=7, received_at=received, agency="000.00.00.H30")
    assert dossier.code == "000.00.00.H30-240402-0007"
    assert dossier.procedure_code == "1.007073"
    assert dossier.form["date_of_death"] == "2024-03-30"
    assert "death_certificate_number" not in dossier.form
    assert (
        Dossier.model_validate(sample_death_dossier_json(7, received, "000.00.00.H30")) == dossier
    )


def test_sample_death_dossier_rejects_naive_receipt_time() -> None:
    """The death sample, too, refuses a naive received_at."""
    with pytest.raises(ValueError, match="UTC offset"):
        sample_death_dossier(received_at=datetime(2024, 3, 15, 9))
