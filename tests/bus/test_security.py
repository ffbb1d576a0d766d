"""The client directory, tokens, forwarded certificates, subscription rights and `bus clients`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from bus.cli import app
from bus.security.certificates import (
    CertificateError,
    ProxyList,
    certificate_fingerprint,
    fingerprint_of_header,
)
from bus.security.clients import (
    AgencyClient,
    ClientDirectory,
    ClientFileError,
    ReadScope,
    hash_secret,
    load_clients,
    new_secret,
    save_clients,
)
from bus.security.tokens import TokenError, TokenIssuer, load_or_create_key
from bus.testing.certificates import self_signed_certificate
from bus.topics import pattern_within

DESK = "000.00.10.H12"


def client(client_id: str = "one-stop", **rights: object) -> AgencyClient:
    return AgencyClient.model_validate(
        {"id": client_id, "agency": DESK, "secret_sha256": (hash_secret(client_id),)} | rights
    )


# --- the directory ------------------------------------------------------------------------------


def test_a_secret_finds_its_client_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    secret = new_secret()
    assert len(secret) == 43 and new_secret() != secret
    path = tmp_path / "clients.yaml"
    save_clients(path, ClientDirectory((client(secret_sha256=(hash_secret(secret),)),)))
    assert secret not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    directory = load_clients(path)
    found = directory.by_secret(secret)
    assert found is not None and found.id == "one-stop"
    assert directory.by_secret(secret + "x") is None


def test_without_a_file_no_one_is_a_client(tmp_path: Path) -> None:
    assert load_clients(tmp_path / "absent.yaml").clients == ()


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"id": "Bad Id", "agency": DESK}, "client id"),
        ({"id": "x", "agency": "H12"}, "not an agency code"),
        ({"id": "x", "agency": DESK, "procedures": ["birth"]}, "not procedure codes"),
        ({"id": "x", "agency": DESK, "subscribe": ["dossier.status.+"]}, "topic patterns"),
        ({"id": "x", "agency": DESK, "secret_sha256": ["abc"]}, "64 lowercase hex"),
        ({"id": "x", "agency": DESK, "password": "guest"}, "Extra inputs"),
    ],
)
def test_a_broken_directory_names_the_file_and_the_problem(
    tmp_path: Path, entry: dict[str, object], says: str
) -> None:
    import yaml

    path = tmp_path / "clients.yaml"
    path.write_text(yaml.safe_dump({"clients": [entry]}))
    with pytest.raises(ClientFileError, match=says) as caught:
        load_clients(path)
    assert str(path) in str(caught.value)


def test_one_secret_cannot_belong_to_two_clients() -> None:
    with pytest.raises(ClientFileError, match="twice"):
        ClientDirectory((client("a", secret_sha256=(hash_secret("s"),)),
                         client("b", secret_sha256=(hash_secret("s"),))))  # fmt: skip


def test_rights_of_a_client() -> None:
    desk = client(procedures=("1.001193",), desks=("000.00.11.H12",), connectors=("residence",))
    assert desk.may_submit("1.001193") and not desk.may_submit("1.000656")
    assert desk.may_submit_for(DESK) and desk.may_submit_for("000.00.11.H12")
    assert not desk.may_submit_for("000.00.12.H12")
    assert desk.may_push_as("residence") and not desk.may_push_as("civil_status")
    anything = client(procedures=("*",), connectors=("*",), read=ReadScope.ALL)
    assert anything.may_submit("2.000001") and anything.may_push_as("dvcqg")


# --- subscription rights: one topic pattern within another ---------------------------------------


@pytest.mark.parametrize(
    ("requested", "allowed", "within"),
    [
        ("dossier.status.9.#", "dossier.status.#", True),
        ("dossier.#", "dossier.status.#", False),
        ("#", "#", True),
        ("*", "#", True),
        ("#", "*", False),
        (f"dossier.status.4.{DESK}", f"dossier.status.*.{DESK}", True),
        (f"dossier.status.*.{DESK}", "dossier.status.#", True),
        ("dossier.status.#", f"dossier.status.*.{DESK}", False),
        ("a.b.c", "a.*.c", True),
        ("a.*.c", "a.b.c", False),
        ("a", "a.#", True),
        ("a.#.b", "a.#", True),
        ("a.#", "a.#.b", False),
        ("a.#.b", "#.b", True),
        ("a.b", "a.b.c", False),
    ],
)
def test_pattern_within(requested: str, allowed: str, within: bool) -> None:
    assert pattern_within(requested, allowed) is within


# --- tokens -------------------------------------------------------------------------------------


def test_a_token_names_its_client_until_it_expires(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "token.pem"
    issuer = TokenIssuer(load_or_create_key(key_file), 600)
    assert key_file.stat().st_mode & 0o777 == 0o600
    claims = issuer.verify(issuer.issue("one-stop", DESK))
    assert (claims.client_id, claims.agency) == ("one-stop", DESK)
    # Another process with the same file verifies it too.
    again = TokenIssuer(load_or_create_key(key_file), 600)
    assert again.verify(issuer.issue("one-stop", DESK)).client_id == "one-stop"
    stale = issuer.issue("one-stop", DESK, now=datetime.now(UTC) - timedelta(minutes=11))
    with pytest.raises(TokenError, match="expired"):
        issuer.verify(stale)


def test_a_token_signed_otherwise_is_refused(tmp_path: Path) -> None:
    import jwt

    issuer = TokenIssuer(load_or_create_key(tmp_path / "k.pem"), 600)
    stranger = TokenIssuer(Ed25519PrivateKey.generate(), 600).issue("one-stop", DESK)
    unsigned = jwt.encode(
        {"sub": "one-stop", "agency": DESK, "iss": "lienthong-bus", "aud": "lienthong-bus"},
        None,
        algorithm="none",
    )
    hmac = jwt.encode({"sub": "one-stop"}, "s" * 32, algorithm="HS256")
    for token in (stranger, unsigned, hmac, "not.a.token"):
        with pytest.raises(TokenError):
            issuer.verify(token)


# --- forwarded certificates ---------------------------------------------------------------------


def test_a_forwarded_certificate_is_known_by_its_fingerprint() -> None:
    now = datetime.now(UTC)
    certificate = self_signed_certificate(not_before=now - timedelta(days=1), days=30)
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert fingerprint_of_header(quote(pem)) == certificate_fingerprint(certificate)
    assert fingerprint_of_header(pem) == certificate_fingerprint(certificate)
    with pytest.raises(CertificateError, match="validity"):
        fingerprint_of_header(pem, now=now + timedelta(days=40))
    with pytest.raises(CertificateError, match="not a PEM"):
        fingerprint_of_header("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
    with pytest.raises(CertificateError, match="too large"):
        fingerprint_of_header("A" * 20_000)


def test_only_listed_proxies_are_trusted() -> None:
    proxies = ProxyList(["127.0.0.1", "10.0.0.0/8"])
    assert "127.0.0.1" in proxies and "10.1.2.3" in proxies
    assert "192.168.1.1" not in proxies and "not-an-ip" not in proxies and None not in proxies
    assert "127.0.0.1" not in ProxyList([])


# --- bus clients --------------------------------------------------------------------------------


def test_bus_clients_add_rotate_list_remove(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["clients", "add", "one-stop", "--agency", DESK, "--procedure", "*",
         "--subscribe", f"dossier.status.*.{DESK}", "--file", str(path)],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    found = load_clients(path).by_secret(secret)
    assert found is not None and found.procedures == ("*",)
    assert not found.metrics and not found.operator
    monitoring = runner.invoke(
        app, ["clients", "add", "prometheus", "--agency", DESK, "--metrics", "--file", str(path)]
    )
    assert monitoring.exit_code == 0, monitoring.output
    watcher = load_clients(path).get("prometheus")
    assert watcher is not None and watcher.metrics and not watcher.operator
    runner.invoke(app, ["clients", "remove", "prometheus", "--file", str(path)])

    rotated = runner.invoke(app, ["clients", "rotate", "one-stop", "--file", str(path)])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    directory = load_clients(path)
    assert directory.by_secret(new) is not None and directory.by_secret(secret) is not None
    ended = runner.invoke(
        app, ["clients", "rotate", "one-stop", "--no-keep-old", "--file", str(path)]
    )
    latest = ended.output.strip().splitlines()[-1]
    directory = load_clients(path)
    assert directory.by_secret(latest) is not None and directory.by_secret(new) is None

    listed = runner.invoke(app, ["clients", "list", "--file", str(path)])
    assert "one-stop" in listed.output and latest not in listed.output
    refused = runner.invoke(app, ["clients", "add", "x", "--agency", "H12", "--file", str(path)])
    assert refused.exit_code == 2 and "agency code" in refused.output
    removed = runner.invoke(app, ["clients", "remove", "one-stop", "--file", str(path)])
    assert removed.exit_code == 0 and load_clients(path).clients == ()
    missing = runner.invoke(app, ["clients", "remove", "one-stop", "--file", str(path)])
    assert missing.exit_code == 1 and "No client" in missing.output


# --- the demo profile ---------------------------------------------------------------------------


def test_the_demo_makes_fresh_clients_for_every_role(tmp_path: Path) -> None:
    """One-stop, portal, operator, and a partner client per connector that takes pushes; fresh
    secrets each time, only their hashes on disk."""
    from bus.registry import ConnectorRegistry
    from bus.security.demo import make_demo_clients

    registry = ConnectorRegistry.discover()
    first = make_demo_clients(registry, tmp_path / "clients.yaml")
    second = make_demo_clients(registry, tmp_path / "clients.yaml")
    pushing = sorted(c for c in registry.ids if registry.get(c).config.inbound)
    ids = {client.id for client in first.directory.clients}
    assert {"demo-one-stop", "demo-portal", "demo-operator"} <= ids
    assert {f"demo-partner-{c.replace('_', '-')}" for c in pushing} <= ids
    assert set(first.secrets) == ids and not set(first.secrets.values()) & set(
        second.secrets.values()
    )
    on_disk = load_clients(tmp_path / "clients.yaml")
    assert on_disk.by_secret(second.one_stop_secret) is not None
    assert on_disk.by_secret(first.one_stop_secret) is None
    assert not any(
        secret in (tmp_path / "clients.yaml").read_text() for secret in second.secrets.values()
    )


# --- signed requests ----------------------------------------------------------------------------


def test_a_signed_request_verifies_and_says_who_when_and_which_nonce() -> None:
    from bus.security.signing import (
        SignatureRefused,
        public_key_from_text,
        public_key_text,
        sign_request,
        verify_request,
    )

    key = Ed25519PrivateKey.generate()
    url, body = "https://lgsp.test/v1/inbound/residence", b'{"maHoSo": "x"}'
    signed = sign_request("POST", url, body, key_id="residence", key=key, nonce="n-0123456789")
    assert set(signed) == {"Content-Digest", "Signature-Input", "Signature"}
    keys = [public_key_from_text(public_key_text(key.public_key()))]
    window = timedelta(minutes=5)
    said = verify_request(
        "POST", url, list(signed.items()), body, key_id="residence", keys=keys, max_age=window
    )
    assert (said.key_id, said.nonce) == ("residence", "n-0123456789")
    # Another client's id, another target, another body: each breaks the signature.
    for key_id, target, content in (
        ("judicial", url, body),
        ("residence", url + "x", body),
        ("residence", url, b"{}"),
    ):
        with pytest.raises(SignatureRefused):
            verify_request(
                "POST", target, list(signed.items()), content,
                key_id=key_id, keys=keys, max_age=window,
            )  # fmt: skip
    with pytest.raises(SignatureRefused, match="Signature-Input"):
        verify_request("POST", url, [], body, key_id="residence", keys=keys, max_age=window)
    future = sign_request(
        "GET", url, b"", key_id="residence", key=key,
        created=datetime.now(UTC) + timedelta(minutes=5),
    )  # fmt: skip
    with pytest.raises(SignatureRefused, match="future"):
        verify_request(
            "GET", url, list(future.items()), b"", key_id="residence", keys=keys, max_age=window
        )
    with pytest.raises(ValueError, match="Ed25519"):
        public_key_from_text("not-a-key")
