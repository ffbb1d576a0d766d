"""The mapping engine: rules, code lists, dates, errors, static checks and golden examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.errors import MappingError
from bus.mapping import MappingCatalog, SpecError, dates
from bus.mapping.check import check_catalog
from bus.mapping.compiler import compile_expression
from bus.mapping.golden import run_all


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


HEADER = "description: d\ndirection: outbound\ncontract: dossier\n"

GENDER = """
description: gender
codes: {"1": male, "2": female}
"""

OUTBOUND = """
description: test outbound
direction: outbound
contract: dossier
fields:
  Code: {from: code, required: true}
  Received: {from: received_at, date: yyyyMMddHHmmss}
  Gender: {from: form.child_gender, codes: gender}
  Kind: {value: KS}
  Agency: {context: agency}
  Count: {from: "length(documents)", type: string}
  Docs:
    each: documents
    fields:
      Id: document_id
  Applicant:
    fields:
      Name: applicant.full_name
      Id: applicant.identity_number
"""


@pytest.fixture
def catalog(tmp_path: Path) -> MappingCatalog:
    """A one-partner catalogue written for the test."""
    _tree(
        tmp_path,
        {"p/1.0/out.yaml": OUTBOUND, "p/1.0/codes/gender.yaml": GENDER},
    )
    return MappingCatalog.load(tmp_path)


def _dossier() -> dict[str, Any]:
    from contracts import sample_birth_dossier

    return sample_birth_dossier().model_dump(mode="json", exclude_none=True)


def test_every_kind_of_rule_produces_its_field(catalog: MappingCatalog) -> None:
    """Copy, date, code list, constant, context, function, list and nested object all apply."""
    out = catalog.get("p/1.0/out").apply(_dossier(), {"agency": "000.00.00.G12"})
    assert out["Code"] == "000.00.10.H12-240315-0001"
    assert out["Received"] == "20240315090000"
    assert out["Gender"] == "2"
    assert out["Kind"] == "KS"
    assert out["Agency"] == "000.00.00.G12"
    assert out["Count"] == "2"
    assert out["Docs"] == [{"Id": "TL-0001-1"}, {"Id": "TL-0001-2"}]
    assert out["Applicant"] == {"Name": "Nguyễn Văn An", "Id": "001090012345"}


def test_a_value_outside_the_code_list_is_a_precise_error(catalog: MappingCatalog) -> None:
    """An unmapped code names the mapping, the source path, the target field and the value."""
    source = _dossier()
    source["form"]["child_gender"] = "unknown"
    with pytest.raises(MappingError) as caught:
        catalog.get("p/1.0/out").apply(source, {"agency": "000.00.00.G12"})
    error = caught.value
    assert error.mapping == "p/1.0/out"
    assert error.source_path == "form.child_gender"
    assert error.target_field == "Gender"
    assert error.value == "'unknown'"
    assert "code list 'gender'" in str(error)
    assert error.error_class == "permanent"


def test_a_missing_required_value_is_an_error(catalog: MappingCatalog) -> None:
    """A required rule whose source is empty fails instead of leaving the field out."""
    source = _dossier()
    del source["code"]
    with pytest.raises(MappingError, match="required"):
        catalog.get("p/1.0/out").apply(source, {"agency": "000.00.00.G12"})


def test_a_missing_context_value_is_an_error(catalog: MappingCatalog) -> None:
    """A rule reading a context value the caller did not supply says which one."""
    with pytest.raises(MappingError, match="'agency'"):
        catalog.get("p/1.0/out").apply(_dossier(), {})


def test_identity_numbers_are_masked_in_errors(tmp_path: Path) -> None:
    """The offending value in an error keeps only the last digits of a CCCD."""
    _tree(
        tmp_path,
        {
            "p/1.0/out.yaml": """
description: d
direction: outbound
contract: dossier
fields:
  Id: {from: applicant.identity_number, type: integer, codes: none}
""",
            "p/1.0/codes/none.yaml": 'description: d\ncodes: {"x": "y"}\n',
        },
    )
    with pytest.raises(MappingError) as caught:
        MappingCatalog.load(tmp_path).get("p/1.0/out").apply(_dossier())
    assert "001090012345" not in str(caught.value)
    assert "345" in str(caught.value)


def test_plain_paths_read_the_same_as_jmespath() -> None:
    """The direct-lookup fast path gives what jmespath gives, including for missing keys."""
    import jmespath

    data = {"a": {"b": {"c": 1}}, "x": None, "l": [1]}
    for expression in ("a.b.c", "a.b", "a.z.c", "x.y", "l.k", "a"):
        assert compile_expression(expression, where="t")(data) == jmespath.search(expression, data)


def test_a_bad_expression_is_a_spec_error(tmp_path: Path) -> None:
    """A JMESPath syntax error is reported when the catalogue loads, with the file's field."""
    _tree(
        tmp_path,
        {"p/1.0/out.yaml": f"{HEADER}fields:\n  A: 'a.['\n"},
    )
    with pytest.raises(SpecError, match="not a valid JMESPath expression"):
        MappingCatalog.load(tmp_path)


def test_a_code_list_with_two_codes_for_one_value_needs_an_outbound_choice(tmp_path: Path) -> None:
    """Two partner codes for one canonical value cannot be reversed without an 'outbound' pick."""
    _tree(
        tmp_path,
        {
            "p/1.0/codes/g.yaml": 'description: d\ncodes: {"1": male, "3": male}\n',
            "p/1.0/out.yaml": f"{HEADER}fields:\n  A: code\n",
        },
    )
    with pytest.raises(SpecError, match="outbound"):
        MappingCatalog.load(tmp_path)


@pytest.mark.parametrize(
    ("text", "fmt", "options", "iso"),
    [
        ("20240315090000", "yyyyMMddHHmmss", {}, "2024-03-15T09:00:00+07:00"),
        ("20240315090000", "yyyyMMddHHmmss", {"as_": "date"}, "2024-03-15"),
        ("20240315", "yyyyMMdd", {}, "2024-03-15"),
        ("19900500", "yyyyMMdd", {}, "1990-05"),
        ("19900000", "yyyyMMdd", {}, "1990"),
        ("19900512", "yyyyMMdd", {"precision": "year"}, "1990"),
        ("15/03/2024", "dd/MM/yyyy", {}, "2024-03-15"),
        ("15/03/2024", "dd/MM/yyyy", {"as_": "datetime"}, "2024-03-15T00:00:00+07:00"),
        ("2024-03-15T02:00:00Z", "iso8601", {}, "2024-03-15T09:00:00+07:00"),
    ],
)
def test_partner_dates_become_canonical_iso(
    text: str, fmt: str, options: dict[str, Any], iso: str
) -> None:
    """Each partner date format parses to the canonical ISO form, partial dates included."""
    assert dates.parse(text, fmt, **options) == iso


@pytest.mark.parametrize(
    ("iso", "fmt", "text"),
    [
        ("2024-03-15T09:00:00+07:00", "yyyyMMddHHmmss", "20240315090000"),
        ("2024-03-15T02:00:00+00:00", "yyyyMMddHHmmss", "20240315090000"),
        ("2024-03-15", "dd/MM/yyyy", "15/03/2024"),
        ("1990-05", "yyyyMMdd", "19900500"),
        ("1990", "yyyyMMdd", "19900000"),
        ("2024-03-14T23:30:00+00:00", "yyyyMMdd", "20240315"),
    ],
)
def test_canonical_dates_become_partner_text(iso: str, fmt: str, text: str) -> None:
    """Canonical ISO dates format to each partner format in Asia/Ho_Chi_Minh."""
    assert dates.format_(iso, fmt) == text


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("2024031509", "yyyyMMddHHmmss"),
        ("20241332", "yyyyMMdd"),
        ("31/02/2024", "dd/MM/yyyy"),
        ("2024-03-15T09:00:00", "iso8601"),
    ],
)
def test_malformed_partner_dates_are_refused(text: str, fmt: str) -> None:
    """A partner date that does not fit its format, or is not a real date, is an error."""
    with pytest.raises(dates.DateError):
        dates.parse(text, fmt)


@pytest.mark.parametrize("iso", ["1992-13", "1992-00", "0000", "1992-1", "92-01"])
def test_impossible_partial_dates_are_not_sent(iso: str) -> None:
    """Outbound refuses a partial date that inbound would refuse, so what is sent reads back."""
    with pytest.raises(dates.DateError):
        dates.format_(iso, "yyyyMMdd")


def test_the_precision_of_partial_dates() -> None:
    """An ISO date's precision is read from its length: year, month or day."""
    assert [dates.precision_of(v) for v in ("1990", "1990-05", "1990-05-12")] == [
        "year",
        "month",
        "day",
    ]


def test_the_checker_names_unknown_fields_missing_fields_and_code_gaps(tmp_path: Path) -> None:
    """Static checks find an unknown target, an unset required field and a code-list gap."""
    _tree(
        tmp_path,
        {
            "p/1.0/in.yaml": """
description: d
direction: inbound
contract: status-change
fields:
  dossier_code: MaHoSo
  statuss: {from: TrangThai}
  changed_at: {from: ThoiDiem, date: yyyyMMddHHmmss}
""",
            "p/1.0/out.yaml": """
description: d
direction: outbound
contract: status-change
fields:
  TrangThai: {from: status, codes: status}
  Nope: not_a_field
""",
            "p/1.0/codes/status.yaml": 'description: d\ncodes: {"1": 1, "2": 2}\n',
        },
    )
    findings = [str(f) for f in check_catalog(MappingCatalog.load(tmp_path))]
    assert any(
        "p/1.0/in: fields.statuss: the status-change contract has no field" in f for f in findings
    )
    assert any("required contract field 'status' is never set" in f for f in findings)
    assert any("required contract field 'agency' is never set" in f for f in findings)
    assert any(
        "p/1.0/out: fields.TrangThai: code list 'status' has no partner code" in f for f in findings
    )
    assert any("fields.Nope: reads 'not_a_field'" in f for f in findings)


def test_the_shipped_mappings_pass_their_checks() -> None:
    """Every spec under mappings/ passes the static checks."""
    assert [str(f) for f in check_catalog(MappingCatalog.load())] == []


def test_golden_runner_reports_a_difference(tmp_path: Path, catalog: MappingCatalog) -> None:
    """A golden example whose expected output differs is reported with the first difference."""
    folder = tmp_path / "p/1.0/examples/out"
    folder.mkdir(parents=True)
    source = _dossier()
    (folder / "a.input.json").write_bytes(orjson.dumps(source))
    (folder / "a.context.json").write_bytes(orjson.dumps({"agency": "000.00.00.G12"}))
    produced = (
        MappingCatalog.load(tmp_path).get("p/1.0/out").apply(source, {"agency": "000.00.00.G12"})
    )
    (folder / "a.expected.json").write_bytes(orjson.dumps({**produced, "Kind": "KT"}))
    (folder / "b.input.json").write_bytes(orjson.dumps({**source, "code": None}))
    (folder / "b.error.txt").write_text("required")
    results = {r.case.name: r for r in run_all(MappingCatalog.load(tmp_path))}
    assert not results["a"].ok
    assert "Kind: expected 'KT', got 'KS'" in results["a"].detail
    assert results["b"].ok


def test_values_a_partner_cannot_express_are_declared_not_flagged(tmp_path: Path) -> None:
    """A code list may declare canonical values with no partner code: checked, and explained."""
    _tree(
        tmp_path,
        {
            "p/1.0/codes/status.yaml": (
                'description: d\ncodes: {"3": 4, "4": 9}\n'
                "no_partner_code: {reason: the partner only reports the end, values: [1, 2, 3]}\n"
            ),
            "p/1.0/out.yaml": (
                "description: d\ndirection: outbound\ncontract: status-change\n"
                "fields:\n  TrangThai: {from: status, codes: status}\n"
            ),
        },
    )
    catalog = MappingCatalog.load(tmp_path)
    findings = [str(f) for f in check_catalog(catalog)]
    assert len(findings) == 1
    assert "[5, 6, 7, 8, 10]" in findings[0]
    with pytest.raises(MappingError, match="the partner only reports the end"):
        catalog.get("p/1.0/out").apply({"status": 2})


def test_numeric_codes_are_listed_in_number_order(catalog: MappingCatalog, tmp_path: Path) -> None:
    """The allowed codes in an error read 1, 2, 10 rather than 1, 10, 2."""
    _tree(
        tmp_path / "q",
        {
            "p/1.0/codes/s.yaml": 'description: d\ncodes: {"10": 10, "2": 2, "1": 1}\n',
            "p/1.0/in.yaml": (
                "description: d\ndirection: inbound\ncontract: status-change\ncomplete: false\n"
                "fields:\n  status: {from: s, codes: s}\n"
            ),
        },
    )
    with pytest.raises(MappingError, match=r"allowed: 1, 2, 10\)"):
        MappingCatalog.load(tmp_path / "q").get("p/1.0/in").apply({"s": "7"})


def test_an_example_without_expected_output_fails_alone(tmp_path: Path) -> None:
    """A golden input with no expected file is one failed case, not a crash of the whole run."""
    _tree(tmp_path, {"p/1.0/out.yaml": f"{HEADER}fields:\n  A: code\n"})
    folder = tmp_path / "p/1.0/examples/out"
    folder.mkdir(parents=True)
    (folder / "lonely.input.json").write_text("{}")
    [result] = run_all(MappingCatalog.load(tmp_path))
    assert not result.ok
    assert "needs exactly one lonely.expected" in result.detail
