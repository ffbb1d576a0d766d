"""What ``bus connector new`` is asked for, checked before anything is written, and its files."""

from __future__ import annotations

import json
import keyword
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from contracts import is_agency_code, sample_birth_dossier

__all__ = [
    "DEFAULT_AGENCY",
    "FIRST_PORT",
    "MAPPING_VERSION",
    "MAX_NAME_LENGTH",
    "ConnectorPlan",
    "Kind",
    "ScaffoldError",
    "plan_connector",
]

MAX_NAME_LENGTH: Final = 30
"""Longest connector name. ``ConnectorConfig`` allows 41 characters; 30 keeps every line of the
generated code within the project's 100 columns, so that it passes ``ruff format --check``."""

DEFAULT_AGENCY: Final = "000.00.00.G99"
"""A well-formed placeholder; ``connector.toml`` says to replace it from the agency catalogue."""

FIRST_PORT: Final = 8110
"""The simulator port when no other connector has one (the built-in ones use 8101 and up)."""

MAPPING_VERSION: Final = "1.0"

_NAME: Final = re.compile(rf"[a-z][a-z0-9_]{{1,{MAX_NAME_LENGTH - 1}}}", re.ASCII)
# Quotes and backslashes would end or escape the docstrings and TOML strings the title goes in.
_TITLE: Final = re.compile(r"[^\"\\\x00-\x1f\x7f]{1,100}")


class Kind(StrEnum):
    """Which generic connector the new one builds on (``kind`` in ``connector.toml``)."""

    REST = "rest"
    SOAP = "soap"
    POLLER = "poller"


class ScaffoldError(ValueError):
    """Raised when the request cannot be carried out; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class ConnectorPlan:
    """A checked request: the connector to write and where."""

    name: str
    kind: Kind
    agency: str
    title: str
    port: int
    dest: Path

    @property
    def class_name(self) -> str:
        """``land_registry`` → ``LandRegistry`` (the class is ``LandRegistryConnector``)."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def mapping_folder(self) -> Path:
        """Where its mappings go, relative to the repository root."""
        return Path("mappings") / self.name / MAPPING_VERSION

    @property
    def wsdl(self) -> Path:
        """Where a SOAP connector's WSDL goes, relative to the repository root."""
        return Path("contracts") / "partners" / self.name / f"{self.name}.wsdl"

    def files(self) -> list[tuple[str, Path]]:
        """(template under ``templates/``, file relative to the repository root) to write."""
        package = Path("connectors") / self.name
        kind = self.kind.value
        files = [
            ("common/__init__.py.tmpl", package / "__init__.py"),
            (f"{kind}/connector.py.tmpl", package / "connector.py"),
            (f"{kind}/connector.toml.tmpl", package / "connector.toml"),
            (f"{kind}/simulator.py.tmpl", package / "simulator.py"),
            ("common/README.md.tmpl", package / "README.md"),
            (f"{kind}/test.py.tmpl", Path("tests") / "connectors" / f"test_{self.name}.py"),
        ]
        mappings = self.mapping_folder
        if self.kind is Kind.POLLER:
            files += [
                ("mappings/record.in.yaml.tmpl", mappings / "record.in.yaml"),
                ("mappings/acknowledge.out.yaml.tmpl", mappings / "acknowledge.out.yaml"),
                ("mappings/poll-status.yaml.tmpl", mappings / "codes" / "status.yaml"),
            ]
        else:
            files += [
                ("mappings/submission.out.yaml.tmpl", mappings / "submission.out.yaml"),
                ("mappings/answer.in.yaml.tmpl", mappings / "answer.in.yaml"),
                ("mappings/status.yaml.tmpl", mappings / "codes" / "status.yaml"),
            ]
        if self.kind is Kind.SOAP:
            files.append(("soap/service.wsdl.tmpl", self.wsdl))
        return files

    def existing(self) -> list[Path]:
        """The places of this connector that already exist under ``dest``."""
        places = [
            Path("connectors") / self.name,
            Path("connectors") / f"{self.name}.py",
            Path("mappings") / self.name,
            Path("tests") / "connectors" / f"test_{self.name}.py",
            self.wsdl.parent,
        ]
        return [place for place in places if (self.dest / place).exists()]

    def variables(self) -> dict[str, str]:
        """What the templates' ``${...}`` stand for."""
        kind = self.kind
        wire = {
            Kind.REST: "It delivers each dossier with one JSON call through the REST kit "
            "(`bus/rest.py`).",
            Kind.SOAP: "It delivers each dossier with one SOAP call through the SOAP kit "
            "(`bus/soap.py`), to the service its WSDL describes.",
            Kind.POLLER: "The partner cannot push: the bus polls its list of new statuses and "
            "acknowledges each one once applied (`bus/poller.py`).",
        }[kind]
        contract_row = (
            f"| `../../{self.wsdl.as_posix()}` | the partner's own WSDL, in place of the "
            "placeholder |\n"
            if kind is Kind.SOAP
            else ""
        )
        return {
            "name": self.name,
            "class_name": self.class_name,
            "kind": kind.value,
            "title": self.title,
            "title_toml": json.dumps(self.title, ensure_ascii=False),
            "agency": self.agency,
            "port": str(self.port),
            "namespace": f"urn:vn:lienthong:{self.name}:1.0",
            "operation": "guiHoSo",
            "soap_path": f"/ws/{self.name}",
            "submit_path": "/api/hoso/nopHoSo",
            "list_path": "/api/hoso/dsTrangThai",
            "acknowledge_path": "/api/hoso/xacNhanDaNhan",
            "sample_code": sample_birth_dossier().code,
            "init_all": _python_list(
                [
                    "DEFAULT_MAPPING",
                    f"{self.class_name}Connector",
                    "SimulatorState",
                    "create_simulator_app",
                ]
            ),
            "wire": wire,
            "contract_row": contract_row,
        }


def plan_connector(
    name: str,
    kind: Kind,
    *,
    agency: str = DEFAULT_AGENCY,
    title: str | None = None,
    port: int | None = None,
    dest: Path = Path(),
) -> ConnectorPlan:
    """Check the request; raise :class:`ScaffoldError` saying what to do when it cannot be met."""
    if _NAME.fullmatch(name) is None or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"{name!r} is not a valid connector name: use 2 to {MAX_NAME_LENGTH} lower-case "
            "letters, digits and single underscores, starting with a letter (e.g. land_registry)"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is a Python keyword: choose another connector name")
    if not is_agency_code(agency):
        raise ScaffoldError(
            f"{agency!r} is not an agency code: it must look like 000.00.10.H12 "
            "(V1V2V3.Z1Z2.Y1Y2.MX1X2); take the partner's from your province's agency catalogue"
        )
    title = title if title is not None else f"{name.replace('_', ' ').capitalize()} system"
    if _TITLE.fullmatch(title) is None:
        raise ScaffoldError(
            "the title must be 1 to 100 characters, without quotes, backslashes or line breaks"
        )
    if not (dest / "pyproject.toml").is_file():
        raise ScaffoldError(
            f"{dest} has no pyproject.toml: run this at the repository root, or pass --dest "
            "with the repository root"
        )
    if port is not None and not 1024 <= port <= 65535:
        raise ScaffoldError(f"port {port} is out of range: choose one from 1024 to 65535")
    return ConnectorPlan(name, kind, agency, title, port or next_port(dest), dest)


def next_port(dest: Path) -> int:
    """One above the highest port the connectors' endpoints use, and at least :data:`FIRST_PORT`."""
    ports = [FIRST_PORT - 1]
    for config in sorted(dest.glob("connectors/*/connector.toml")):
        try:
            endpoint = tomllib.loads(config.read_text(encoding="utf-8")).get("endpoint")
            port = urlsplit(str(endpoint)).port
        except (tomllib.TOMLDecodeError, ValueError, OSError):
            continue  # a connector being written by hand must not stop this one
        if port is not None:
            ports.append(port)
    return max(ports) + 1


def _python_list(names: list[str]) -> str:
    """A list literal, one name a line, sorted as ruff sorts ``__all__``.

    CONSTANTS first, then Classes, then the rest (RUF022), whatever the connector is called.
    """

    def kind(name: str) -> int:
        if name.isupper():
            return 0
        return 1 if name[:1].isupper() else 2

    ordered = sorted(names, key=lambda name: (kind(name), name))
    return "[\n" + "".join(f'    "{name}",\n' for name in ordered) + "]"
