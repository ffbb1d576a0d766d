"""The catalogue of administrative procedures (TTHC) the bus knows, loaded from procedures.json.

Adding a procedure is a data change: append it to the JSON file, no code needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from pydantic import ConfigDict, Field

from contracts._model import ContractModel
from contracts.codes import ProcedureCode, is_procedure_code, procedure_base

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "Procedure",
    "ProcedureCatalogue",
    "load_procedure_catalogue",
]

DEFAULT_CATALOGUE_PATH: Final = Path(__file__).with_name("procedures.json")


class Procedure(ContractModel):
    """One administrative procedure, as published on the national portal."""

    model_config = ConfigDict(frozen=True)

    code: ProcedureCode = Field(description="Mã TTHC — procedure code")
    name_vi: str = Field(min_length=1, max_length=500, description="Tên thủ tục — Vietnamese name")
    name_en: str = Field(min_length=1, max_length=500, description="English name")
    field_code: str | None = Field(
        default=None, max_length=50, description="Mã lĩnh vực — field code, when known"
    )
    field_name: str = Field(min_length=1, max_length=300, description="Tên lĩnh vực — field name")
    working_days: int | None = Field(
        default=None,
        ge=0,
        le=365,
        description="Thời hạn giải quyết — processing time in working days after the day of "
        "receipt (0: the same working day); null when not known, and the bus then keeps the "
        "due date the sender gives",
    )
    cutoff_hour: int | None = Field(
        default=None,
        ge=0,
        le=23,
        description="A dossier received at or after this local hour counts as received on the "
        "next working day; null: the whole working day counts",
    )


class _CatalogueFile(ContractModel):
    description: str = ""
    procedures: list[Procedure] = Field(max_length=10_000)


class ProcedureCatalogue:
    """Procedures by code; a lookup falls back from a full code to its national base code."""

    def __init__(self, procedures: Iterable[Procedure]) -> None:
        self._by_code: dict[str, Procedure] = {}
        for procedure in procedures:
            if procedure.code in self._by_code:
                raise ValueError(f"procedure {procedure.code} is listed twice in the catalogue")
            self._by_code[procedure.code] = procedure

    def get(self, code: str) -> Procedure | None:
        """The procedure for ``code``: an exact entry first, else the entry of its base code.

        ``1.011442.000.00.00.H38.02`` finds ``1.011442`` when only the base is catalogued.
        """
        exact = self._by_code.get(code)
        if exact is not None or not is_procedure_code(code):
            return exact
        return self._by_code.get(procedure_base(code))

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self.get(code) is not None

    def __iter__(self) -> Iterator[Procedure]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def __repr__(self) -> str:
        return f"ProcedureCatalogue({len(self)} procedures)"


def load_procedure_catalogue(path: Path | None = None) -> ProcedureCatalogue:
    """Load the catalogue from ``path``, or from the procedures.json shipped with the contracts.

    Raises pydantic.ValidationError for a malformed file, ValueError for a duplicated code.
    """
    text = (path or DEFAULT_CATALOGUE_PATH).read_bytes()
    return ProcedureCatalogue(_CatalogueFile.model_validate_json(text).procedures)
