"""How fast mappings run: records per second on one core, next to a plain ``json.loads``.

The mapping stage must never be what limits the bus; the baseline in the same run shows what the
mapping costs beyond reading the input at all.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bus.mapping.catalog import MappingCatalog
from contracts import Dossier, SubmittedDocument, sample_birth_dossier


@dataclass(frozen=True)
class Measurement:
    """One timed loop."""

    name: str
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Records per second."""
        return self.records / self.seconds

    @property
    def microseconds(self) -> float:
        """Cost of one record in microseconds."""
        return self.seconds / self.records * 1e6


def benchmark_dossier(documents: int = 5) -> Dossier:
    """The sample birth dossier with ``documents`` documents, a fee and every optional field."""
    dossier = sample_birth_dossier()
    template = dossier.documents[0]
    extra = [
        SubmittedDocument(
            document_id=f"TL-0001-{n}",
            name=f"Giấy tờ {n}",
            component_code=f"TP{n}",
            url=f"https://files.example.vn/hoso/0001/tl-{n}.pdf",
            sha256=template.sha256,
            size_bytes=1024 * n,
            media_type="application/pdf",
        )
        for n in range(len(dossier.documents) + 1, documents + 1)
    ]
    return dossier.model_copy(
        update={
            "documents": [*dossier.documents, *extra][:documents],
            "field_code": "G09-TP01",
            "due_at": dossier.received_at,
        }
    )


def pin_to_one_core() -> str:
    """Run this process on a single CPU, so the figure is per core; says which."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned: this platform cannot pin a process"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def _time(name: str, work: Callable[[], Any], *, seconds: float) -> Measurement:
    work()  # warm up caches
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(200):
            work()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return Measurement(name, count, now - started)


def run(
    catalog: MappingCatalog, *, outbound: str, inbound: str, seconds: float = 2.0
) -> list[Measurement]:
    """Time json.loads alone, the outbound mapping, the inbound mapping, and a round trip."""
    canonical = benchmark_dossier().model_dump(mode="json", exclude_none=True)
    canonical_bytes = orjson.dumps(canonical)
    to_partner = catalog.get(outbound)
    to_canonical = catalog.get(inbound)
    context = {
        "receiving_agency": canonical["receiving_agency"],
        "agency": canonical["handling_agency"],
    }
    partner = to_partner.apply(canonical, context)
    partner_bytes = orjson.dumps(partner)
    return [
        _time("json.loads (baseline)", lambda: json.loads(canonical_bytes), seconds=seconds),
        _time(f"{outbound} (parse + map)",
              lambda: to_partner.apply(json.loads(canonical_bytes), context), seconds=seconds),
        _time(f"{inbound} (parse + map)",
              lambda: to_canonical.apply(json.loads(partner_bytes), context), seconds=seconds),
        _time("round trip (both ways)",
              lambda: to_canonical.apply(to_partner.apply(canonical, context), context),
              seconds=seconds),
    ]  # fmt: skip


def peak_memory(catalog: MappingCatalog, *, outbound: str, records: int = 20_000) -> int:
    """Peak bytes allocated while mapping ``records`` dossiers (flat when nothing leaks)."""
    canonical = benchmark_dossier().model_dump(mode="json", exclude_none=True)
    mapping = catalog.get(outbound)
    context = {"receiving_agency": canonical["receiving_agency"]}
    tracemalloc.start()
    try:
        for _ in range(records):
            mapping.apply(canonical, context)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
