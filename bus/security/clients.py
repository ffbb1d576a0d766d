"""The agency clients allowed to call the bus, and what each may do: the client directory.

Every caller is an agency's system (the one-stop system, a ministry's software, a portal, an
operator's console), identified by its agency code. The directory is a YAML file
(``BUS_CLIENTS_FILE``) reviewed like any configuration; it holds no secret, only SHA-256 hashes of
each client's secret and of its certificate:

.. code-block:: yaml

    clients:
      - id: one-stop-h12
        name: Hệ thống thông tin giải quyết TTHC tỉnh
        agency: 000.00.10.H12
        secret_sha256: [3f1c…]           # two during a rotation, then one
        certificate_sha256: []           # client certificates (mutual TLS), DER SHA-256
        procedures: ["*"]                # procedures it may submit dossiers of
        connectors: []                   # connectors it may push answers as (/v1/inbound/…)
        read: own                        # own | all: the dossiers it may read
        subscribe: ["dossier.status.*.000.00.10.H12"]   # event routing keys it may receive
        operator: false                  # dead letters, other clients' subscriptions
        metrics: false                   # GET /metrics (operators may too)

A secret is 32 random bytes (:func:`new_secret`): with that much entropy one SHA-256 is enough to
store it safely (a slow password hash protects low-entropy human passwords; it would only slow
every request here), and looking a secret up by its hash needs no constant-time compare.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus.security.signing import public_key_from_text
from bus.security.throttle import parse_limits
from bus.topics import is_topic_pattern
from contracts import is_agency_code, is_procedure_code

__all__ = [
    "ANY",
    "AgencyClient",
    "ClientDirectory",
    "ClientFileError",
    "ReadScope",
    "hash_secret",
    "load_clients",
    "new_secret",
    "save_clients",
]

ANY: Final = "*"
"""In ``procedures`` or ``connectors``: every one."""

_ID: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}", re.ASCII)
_SHA256: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SECRET_BYTES: Final = 32


class ReadScope(StrEnum):
    """Which dossiers a client may read."""

    OWN = "own"  # those its agency received or handles, or acts in as a linkage step
    ALL = "all"  # every dossier (the national portal, the province's operators)


class AgencyClient(BaseModel):
    """One client of the bus and its rights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Client id, e.g. one-stop-h12: lowercase, digits, . _ -")
    name: str = Field(default="", max_length=200, description="Whose system this is")
    agency: str = Field(description="The agency code it speaks for (mã định danh cơ quan)")
    secret_sha256: tuple[str, ...] = Field(
        default=(), description="SHA-256 (hex) of each valid secret; two during a rotation"
    )
    certificate_sha256: tuple[str, ...] = Field(
        default=(), description="SHA-256 (hex) of each client certificate (DER) it may present"
    )
    procedures: tuple[str, ...] = Field(
        default=(), description="Procedure codes it may submit dossiers of; * for every one"
    )
    desks: tuple[str, ...] = Field(
        default=(),
        description="Other agencies whose one-stop desks it submits for (a provincial one-stop "
        "system serves every commune's desk); its own agency always",
    )
    connectors: tuple[str, ...] = Field(
        default=(), description="Connectors whose partner it is: it may push their answers"
    )
    read: ReadScope = Field(default=ReadScope.OWN, description="own or all dossiers")
    subscribe: tuple[str, ...] = Field(
        default=(), description="AMQP topic patterns of the events it may receive"
    )
    operator: bool = Field(
        default=False, description="May replay dead letters and manage every subscription"
    )
    metrics: bool = Field(
        default=False,
        description="May read /metrics: a monitoring system (counts only, no dossier in them)",
    )
    signing_keys: tuple[str, ...] = Field(
        default=(),
        description="Ed25519 public keys (32 bytes, base64) it signs requests with; when given, "
        "every request of it must be signed (RFC 9421)",
    )
    rate_limit: str | None = Field(
        default=None,
        description="Its own request limit, e.g. 500/second; default BUS_CLIENT_RATE_LIMIT",
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if _ID.fullmatch(value) is None:
            raise ValueError("a client id is 1-63 of a-z 0-9 . _ - starting with a letter or digit")
        return value

    @field_validator("agency")
    @classmethod
    def _check_agency(cls, value: str) -> str:
        if not is_agency_code(value):
            raise ValueError(f"{value!r} is not an agency code (e.g. 000.00.10.H12)")
        return value

    @field_validator("desks")
    @classmethod
    def _check_desks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if not is_agency_code(v)]
        if bad:
            raise ValueError(f"not agency codes: {', '.join(bad)} (e.g. 000.00.10.H12)")
        return values

    @field_validator("secret_sha256", "certificate_sha256")
    @classmethod
    def _check_hashes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if _SHA256.fullmatch(v) is None]
        if bad:
            raise ValueError("hashes are 64 lowercase hex digits (SHA-256)")
        return values

    @field_validator("procedures")
    @classmethod
    def _check_procedures(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if v != ANY and not is_procedure_code(v)]
        if bad:
            raise ValueError(f"not procedure codes: {', '.join(bad)} (e.g. 1.001193, or *)")
        return values

    @field_validator("signing_keys")
    @classmethod
    def _check_signing_keys(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            public_key_from_text(value)
        return values

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_limits(value)
        return value

    @field_validator("subscribe")
    @classmethod
    def _check_patterns(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if not is_topic_pattern(v)]
        if bad:
            raise ValueError(f"not AMQP topic patterns: {', '.join(bad)}")
        return values

    def may_submit(self, procedure_code: str) -> bool:
        """Whether it may submit dossiers of ``procedure_code``."""
        return ANY in self.procedures or procedure_code in self.procedures

    def may_submit_for(self, receiving_agency: str) -> bool:
        """Whether it may submit a dossier received at ``receiving_agency``'s desk."""
        return receiving_agency == self.agency or receiving_agency in self.desks

    def may_push_as(self, connector_id: str) -> bool:
        """Whether it may push answers as the partner behind ``connector_id``."""
        return ANY in self.connectors or connector_id in self.connectors


class ClientFileError(ValueError):
    """Raised when the client directory cannot be read: says which file and what is wrong."""


class _ClientFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[AgencyClient] = Field(default_factory=list)


@dataclass(frozen=True)
class ClientDirectory:
    """The clients, looked up by id, by secret and by certificate."""

    clients: tuple[AgencyClient, ...] = ()
    _by_id: Mapping[str, AgencyClient] = field(init=False, repr=False)
    _by_secret: Mapping[str, AgencyClient] = field(init=False, repr=False)
    _by_certificate: Mapping[str, AgencyClient] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _refuse_duplicates(c.id for c in self.clients)
        _refuse_duplicates(h for c in self.clients for h in c.secret_sha256)
        _refuse_duplicates(h for c in self.clients for h in c.certificate_sha256)
        object.__setattr__(self, "_by_id", {c.id: c for c in self.clients})
        object.__setattr__(
            self, "_by_secret", {h: c for c in self.clients for h in c.secret_sha256}
        )
        object.__setattr__(
            self, "_by_certificate", {h: c for c in self.clients for h in c.certificate_sha256}
        )

    def get(self, client_id: str) -> AgencyClient | None:
        """The client with this id."""
        return self._by_id.get(client_id)

    def by_secret(self, secret: str) -> AgencyClient | None:
        """The client holding ``secret`` (an API key, or an OAuth2 client secret)."""
        return self._by_secret.get(hash_secret(secret))

    def by_certificate(self, fingerprint: str) -> AgencyClient | None:
        """The client whose certificate has this SHA-256 fingerprint (hex)."""
        return self._by_certificate.get(fingerprint.lower())

    def with_client(self, client: AgencyClient) -> ClientDirectory:
        """This directory with ``client`` added, or replacing the one with its id."""
        others = tuple(c for c in self.clients if c.id != client.id)
        return ClientDirectory((*others, client))

    def without(self, client_id: str) -> ClientDirectory:
        """This directory without the client ``client_id``."""
        return ClientDirectory(tuple(c for c in self.clients if c.id != client_id))


def _refuse_duplicates(values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ClientFileError(
                f"{value[:16]}… appears twice: ids, secrets and certificates "
                "must each belong to one client"
            )
        seen.add(value)


def new_secret() -> str:
    """A fresh client secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) the directory stores for ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def load_clients(path: Path | None) -> ClientDirectory:
    """The directory in ``path``; empty when there is no such file (every call is refused)."""
    if path is None or not path.exists():
        return ClientDirectory()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ClientDirectory(tuple(_ClientFile.model_validate(raw).clients))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ClientFileError(f"{path}: not readable YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ClientFileError(f"{path}: {problems}") from exc


def save_clients(path: Path, directory: ClientDirectory) -> None:
    """Write the directory to ``path`` (readable only by its owner), replacing it atomically."""
    document = {"clients": [c.model_dump(mode="json") for c in directory.clients]}
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(path.suffix + ".new")
    staged.write_text(
        yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    staged.chmod(0o600)
    staged.replace(path)
