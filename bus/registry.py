"""Finding connectors: an entry-point group, so connectors can live in separate packages.

The core never imports a concrete connector. A package registers one in its ``pyproject.toml``::

    [project.entry-points."lienthong_bus.connectors"]
    my_partner = "my_package.connector:MyPartnerConnector"

The entry point's name is the connector id; the class carries ``default_config``, the path of its
``connector.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points

from bus.connector import Connector, ConnectorConfig, ConnectorFactory
from bus.errors import UnknownConnector
from bus.topology import ConnectorRoute
from contracts import procedure_base

ENTRY_POINT_GROUP = "lienthong_bus.connectors"


@dataclass(frozen=True, slots=True)
class RegisteredConnector:
    """A connector class with the configuration it will be built with."""

    factory: ConnectorFactory
    config: ConnectorConfig

    @property
    def id(self) -> str:
        """The connector id."""
        return self.config.id

    def build(self) -> Connector:
        """A new connector instance (opens its network clients)."""
        return self.factory(self.config)


class ConnectorRegistry:
    """The connectors this bus knows, and which procedure goes to which connector."""

    def __init__(self, connectors: Iterable[RegisteredConnector] = ()) -> None:
        self._by_id: dict[str, RegisteredConnector] = {}
        self._by_procedure: dict[str, RegisteredConnector] = {}
        for connector in connectors:
            self.register(connector)

    @classmethod
    def discover(cls, endpoints: Mapping[str, str] | None = None) -> ConnectorRegistry:
        """Load every connector of the entry-point group, with optional endpoint overrides."""
        endpoints = endpoints or {}
        registry = cls()
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            factory: ConnectorFactory = entry.load()
            config = ConnectorConfig.from_file(
                factory.default_config, endpoint=endpoints.get(entry.name)
            )
            if config.id != entry.name:
                raise ValueError(
                    f"entry point {entry.name!r} loads a connector whose config id is "
                    f"{config.id!r}; they must match"
                )
            registry.register(RegisteredConnector(factory, config))
        return registry

    def register(self, connector: RegisteredConnector) -> None:
        """Add a connector; a procedure may be served by one connector only."""
        if connector.id in self._by_id:
            raise ValueError(f"connector {connector.id!r} is registered twice")
        for procedure in connector.config.procedures:
            other = self._by_procedure.get(procedure)
            if other is not None:
                raise ValueError(
                    f"procedure {procedure} is served by both {other.id!r} and {connector.id!r}"
                )
            self._by_procedure[procedure] = connector
        self._by_id[connector.id] = connector

    def get(self, connector_id: str) -> RegisteredConnector:
        """The connector registered under ``connector_id``."""
        try:
            return self._by_id[connector_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise UnknownConnector(
                f"no connector {connector_id!r} is registered (known: {known})"
            ) from None

    def for_procedure(self, procedure_code: str) -> RegisteredConnector | None:
        """The connector that receives dossiers of a procedure (full code, then its base)."""
        return self._by_procedure.get(procedure_code) or self._by_procedure.get(
            procedure_base(procedure_code)
        )

    @property
    def ids(self) -> list[str]:
        """Registered connector ids, sorted."""
        return sorted(self._by_id)

    def routes(
        self, only: Iterable[str] | None = None, *, linked: Iterable[str] = ()
    ) -> list[ConnectorRoute]:
        """Queue bindings to declare, for all connectors or the ``only`` ones.

        ``linked`` procedures start a linkage bundle: the engine orders their steps, so no
        connector queue binds their submitted dossiers directly (that would act twice).
        """
        wanted = set(only) if only else set(self._by_id)
        skipped = set(linked)
        return [
            ConnectorRoute(
                c.id,
                tuple(p for p in c.config.procedures if p not in skipped),
                tuple(c.config.subscribes),
            )
            for c in self._by_id.values()
            if c.id in wanted
        ]
