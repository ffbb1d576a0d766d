"""Random valid death dossiers, for the property tests of the death bundle's mappings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from contracts import VN_TZ, DeathRegistrationForm, Dossier, sample_death_dossier_json
from contracts.codes import make_dossier_code

AGENCY = "000.00.10.H12"

_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
# Words joined by single spaces: what a name or a place holds, without the white space that
# XML's xs:token would normalise.
names = st.lists(
    st.text(_LETTERS + _LETTERS.upper(), min_size=1, max_size=8), min_size=1, max_size=5
).map(" ".join)
places = st.lists(
    st.text(_LETTERS + _LETTERS.upper() + "0123456789,./-", min_size=1, max_size=10),
    min_size=1,
    max_size=8,
).map(" ".join)
citizen_ids = st.from_regex(r"[0-9]{12}", fullmatch=True)
social_insurance_numbers = st.from_regex(r"[0-9]{10}", fullmatch=True)
relationships = st.sampled_from(["Con", "Vợ", "Chồng", "Cháu", "Anh", "Chị", "Em", "Bố", "Mẹ"])
moments = st.datetimes(
    min_value=datetime(2018, 1, 1),
    max_value=datetime(2099, 12, 30),
    timezones=st.sampled_from([VN_TZ, UTC, timezone(timedelta(hours=-5))]),
).map(lambda moment: moment.replace(microsecond=0))


@st.composite
def residences(draw: st.DrawFn) -> dict[str, Any]:
    """A last place of residence, with or without a district (the 2025 reform)."""
    residence = {
        "province_code": draw(st.from_regex(r"[0-9]{2}", fullmatch=True)),
        "district_code": draw(st.none() | st.from_regex(r"[0-9]{3}", fullmatch=True)),
        "commune_code": draw(st.from_regex(r"[0-9]{5}", fullmatch=True)),
        "detail": draw(st.none() | places),
    }
    return {key: value for key, value in residence.items() if value is not None}


@st.composite
def death_forms(draw: st.DrawFn, received_on: date) -> dict[str, Any]:
    """A valid death declaration for a dossier received on ``received_on``."""
    died = received_on - timedelta(days=draw(st.integers(0, 15)))
    deceased = draw(citizen_ids)
    form = {
        "deceased_full_name": draw(names),
        "deceased_date_of_birth": draw(st.dates(date(1900, 1, 1), died)).isoformat(),
        "deceased_gender": draw(st.sampled_from(["male", "female"])),
        "deceased_identity_number": deceased,
        "deceased_ethnicity": draw(st.none() | st.sampled_from(["Kinh", "Tày", "Thái", "Hoa"])),
        "deceased_nationality": draw(st.none() | st.sampled_from(["VN", "LA", "KH"])),
        "deceased_social_insurance_number": draw(st.none() | social_insurance_numbers),
        "last_residence": draw(residences()),
        "date_of_death": died.isoformat(),
        "place_of_death": draw(places),
        "cause_of_death": draw(st.none() | places),
        "death_notice_number": draw(st.none() | st.from_regex(r"[0-9]{1,5}/GBT", fullmatch=True)),
        "death_notice_issuer": draw(st.none() | places),
        "declarant_full_name": draw(names),
        "declarant_identity_number": draw(st.none() | citizen_ids.filter(lambda n: n != deceased)),
        "declarant_relationship": draw(relationships),
    }
    form = {key: value for key, value in form.items() if value is not None}
    DeathRegistrationForm.model_validate(form)
    return form


@st.composite
def death_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid canonical death dossier (as JSON) with its form drawn at random."""
    received = draw(moments)
    dossier = sample_death_dossier_json(received_at=received, agency=AGENCY)
    dossier["code"] = make_dossier_code(
        AGENCY, received.astimezone(VN_TZ).date(), draw(st.integers(1, 9999))
    )
    dossier["form"] = draw(death_forms(received.astimezone(VN_TZ).date()))
    return Dossier.model_validate(dossier).model_dump(mode="json")
