"""The connector scaffold behind ``bus connector new``: a new partner in one command.

It writes, under a repository root, a connector that works on the day it is written:

- ``connectors/<name>/``: ``connector.py`` on the generic kit of its kind (REST, SOAP or
  poller), ``connector.toml``, ``simulator.py`` on the simulator kit (:mod:`bus.testing`),
  ``__init__.py`` and a ``README.md`` saying what to change;
- ``mappings/<name>/1.0/``: one outbound and one inbound message with a code list and one
  golden example each (``bus mappings check`` and ``bus mappings test`` pass);
- ``tests/connectors/test_<name>.py``: the connector against its simulator over real HTTP,
  a sample dossier delivered and one failure switch classified;
- for SOAP, a minimal document/literal WSDL under ``contracts/partners/<name>/`` that the
  simulator serves and :class:`bus.soap.SoapClient` reads;
- the entry point in ``pyproject.toml``, so that the bus finds it once reinstalled.

The templates are package data under ``templates/``, rendered with :class:`string.Template`.
"""

from __future__ import annotations

from bus.scaffold.plan import (
    DEFAULT_AGENCY,
    MAX_NAME_LENGTH,
    ConnectorPlan,
    Kind,
    ScaffoldError,
    plan_connector,
)
from bus.scaffold.write import add_entry_point, write_connector

__all__ = [
    "DEFAULT_AGENCY",
    "MAX_NAME_LENGTH",
    "ConnectorPlan",
    "Kind",
    "ScaffoldError",
    "add_entry_point",
    "plan_connector",
    "write_connector",
]
