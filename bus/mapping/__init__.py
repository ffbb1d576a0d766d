"""Declarative schema mappings between partner dialects and the canonical contracts.

Specs are data under ``mappings/<partner>/<version>/``; see :mod:`bus.mapping.spec` for the
language. Load them with :meth:`MappingCatalog.load` and apply one with
``catalog.get("partner/version/message").apply(source, context)``.
"""

from __future__ import annotations

from bus.mapping.catalog import (
    CONTRACTS,
    ConnectorMappings,
    MappingCatalog,
    MessageMapping,
    default_root,
)
from bus.mapping.spec import SpecError

__all__ = [
    "CONTRACTS",
    "ConnectorMappings",
    "MappingCatalog",
    "MessageMapping",
    "SpecError",
    "default_root",
]
