"""bus.xmlsafe: the one XML parser refuses every hostile construct and reads ordinary documents."""

from __future__ import annotations

import pytest

from bus.testing import HOSTILE_XML
from bus.xmlsafe import UnsafeXml, parse_xml

BILLION_LAUGHS = HOSTILE_XML["billion_laughs"]
EXTERNAL_ENTITY = HOSTILE_XML["external_entity"]
EXTERNAL_DTD = HOSTILE_XML["external_dtd"]
PARAMETER_ENTITY = HOSTILE_XML["parameter_entity"]
XINCLUDE = HOSTILE_XML["xinclude"]


def _nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_valid_document_is_parsed() -> None:
    """A plain UTF-8 document with Vietnamese text and escapes parses to its root element."""
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<hoSoKhaiSinh><treEm><hoTen>Nguyễn Thị Ánh &amp; Bé</hoTen></treEm></hoSoKhaiSinh>"
    )
    root = parse_xml(document.encode("utf-8"))
    assert root.tag == "hoSoKhaiSinh"
    assert root.findtext("treEm/hoTen") == "Nguyễn Thị Ánh & Bé"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"<r><?evil run?><a>1</a></r>", id="inside"),
        pytest.param(b'<?xml version="1.0"?><?xml-stylesheet href="x.xsl"?><r/>', id="before"),
        pytest.param(b"<r/><?after x?>", id="after"),
    ],
)
def test_processing_instructions_are_refused(document: bytes) -> None:
    """A processing instruction anywhere is refused, naming its target (SOAP forbids them)."""
    with pytest.raises(UnsafeXml, match="processing instruction"):
        parse_xml(document)


def test_the_xml_declaration_is_no_processing_instruction() -> None:
    """``<?xml version … encoding …?>`` is the declaration, read as such, not refused."""
    assert parse_xml(b'<?xml version="1.0" encoding="UTF-8"?><r/>').tag == "r"


def test_billion_laughs_is_refused() -> None:
    """Nested entity declarations (billion laughs) are refused before any expansion."""
    with pytest.raises(UnsafeXml, match="DTD"):
        parse_xml(BILLION_LAUGHS)


def test_external_entity_is_refused() -> None:
    """An external entity pointing at file:///etc/passwd is refused and the file never read."""
    with pytest.raises(UnsafeXml, match="DOCTYPE") as caught:
        parse_xml(EXTERNAL_ENTITY)
    assert "root:" not in str(caught.value)


def test_external_dtd_is_refused() -> None:
    """A DOCTYPE naming an external DTD is refused without fetching it."""
    with pytest.raises(UnsafeXml, match="DTD"):
        parse_xml(EXTERNAL_DTD)


def test_external_parameter_entity_is_refused() -> None:
    """An external parameter entity in the internal subset is refused."""
    with pytest.raises(UnsafeXml, match="DTD"):
        parse_xml(PARAMETER_ENTITY)


def test_lowercase_doctype_is_refused() -> None:
    """The DOCTYPE check does not depend on the keyword's letter case."""
    with pytest.raises(UnsafeXml):
        parse_xml(b"<!doctype r><r/>")


def test_undeclared_entity_reference_is_refused() -> None:
    """A reference to an entity that was never declared is an error, not an empty string."""
    with pytest.raises(UnsafeXml, match="not well-formed"):
        parse_xml(b"<r>&xxe;</r>")


def test_xinclude_is_refused() -> None:
    """An XInclude element is refused even though the parser would never process it."""
    with pytest.raises(UnsafeXml, match="XInclude"):
        parse_xml(XINCLUDE)


def test_depth_at_limit_is_accepted() -> None:
    """Nesting exactly max_depth elements deep (the root counts as 1) is accepted."""
    root = parse_xml(_nested(8), max_depth=8)
    assert root.tag == "a"


def test_depth_beyond_limit_is_refused() -> None:
    """Nesting one level beyond max_depth is refused."""
    with pytest.raises(UnsafeXml, match="deeper than the 8 levels"):
        parse_xml(_nested(9), max_depth=8)


def test_depth_beyond_libxml2_limit_is_reported_as_depth() -> None:
    """Nesting past libxml2's own hard limit is reported as a depth refusal too."""
    with pytest.raises(UnsafeXml, match="deeper than"):
        parse_xml(_nested(5000))


def test_oversized_input_is_refused() -> None:
    """A document larger than max_bytes is refused before it is parsed."""
    with pytest.raises(UnsafeXml, match="more than the 100 allowed"):
        parse_xml(b"<r>" + b"x" * 200 + b"</r>", max_bytes=100)


def test_invalid_utf8_is_refused() -> None:
    """Bytes that are not valid UTF-8 are refused with the offending offset."""
    with pytest.raises(UnsafeXml, match="not valid UTF-8"):
        parse_xml(b"<r>\xc3\x28</r>")


def test_other_declared_encoding_is_refused() -> None:
    """A document declaring a non-UTF-8 encoding is refused rather than decoded differently."""
    with pytest.raises(UnsafeXml, match="ISO-8859-1"):
        parse_xml(b'<?xml version="1.0" encoding="ISO-8859-1"?><r>x</r>')


def test_malformed_document_is_refused() -> None:
    """A document that is not well-formed raises UnsafeXml, which is a ValueError."""
    with pytest.raises(ValueError, match="not well-formed"):
        parse_xml(b"<r><a></r>")


def test_text_is_refused() -> None:
    """A str is refused: the caller must hand over the bytes as received."""
    with pytest.raises(UnsafeXml, match="bytes"):
        parse_xml("<r/>")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
def test_every_hostile_sample_is_refused(name: str) -> None:
    """Every document in the public test kit's HOSTILE_XML is refused."""
    with pytest.raises(UnsafeXml):
        parse_xml(HOSTILE_XML[name])
