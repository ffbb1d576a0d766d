"""bus.testing's credentials for simulators: session logins, API tokens, demo secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pytest
from starlette.requests import Request

from bus.connector import ConnectorConfig
from bus.testing import (
    DossierFaultSwitches,
    FaultSwitches,
    GatewayCode,
    RegisterState,
    SessionFaultSwitches,
    SessionState,
    TokenState,
    demo_secret,
)

SECRET = "kit-Secret-42"


class CardSwitches(SessionFaultSwitches, DossierFaultSwitches):
    """A session gateway's switches mixed with a dossier partner's."""


@dataclass(kw_only=True)
class CardState(SessionState[CardSwitches], RegisterState[CardSwitches, str]):
    """A session gateway that registers dossiers, as social insurance's simulator is."""

    faults: CardSwitches = field(default_factory=CardSwitches)


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bearing(token: str) -> Request:
    """A request with ``Authorization: Bearer <token>``."""
    header = (b"authorization", f"Bearer {token}".encode())
    return Request({"type": "http", "method": "POST", "headers": [header]})


def test_a_session_memory_combines_with_a_register() -> None:
    """stats() has the register's counters and the sessions'; reset keeps only the account."""
    state = CardState(password=SECRET)
    token = state.login("lgsp.h12", SECRET, "H12")
    assert isinstance(token, str) and state.use_session(token)
    state.apply_once("HS-1", lambda: "card")
    assert state.stats() == {
        "applied": 1,
        "duplicates": 0,
        "requests": 0,
        "applied_codes": ["HS-1"],
        "logins": 1,
        "expired": 0,
    }
    state.reset()
    assert state.stats()["logins"] == state.stats()["applied"] == 0
    assert not state.use_session(token)  # its sessions are gone with the rest
    assert isinstance(state.login("lgsp.h12", SECRET, "H12"), str)  # the account is not


def test_a_login_is_refused_for_another_province_or_a_wrong_account() -> None:
    """Another dstcode is PROVINCE_ID_INCORRECT, a wrong name or password AUTHEN_ERROR."""
    state = CardState(password=SECRET)
    assert state.login("lgsp.h12", SECRET, "H29") == GatewayCode.PROVINCE_ID_INCORRECT
    assert state.login("lgsp.h12", "wrong", "H12") == GatewayCode.AUTHEN_ERROR
    assert state.login("someone", SECRET, "H12") == GatewayCode.AUTHEN_ERROR
    assert state.login(None, 42, "H12") == GatewayCode.AUTHEN_ERROR
    assert state.login_dstcodes == ["H29", "H12", "H12", "H12"]
    assert state.stats()["logins"] == 0


def test_sessions_end_after_their_calls_or_their_seconds() -> None:
    """session_max_calls and session_ttl_seconds end a session; each refusal counts as expired."""
    clock = Clock()
    state = CardState(password=SECRET, monotonic=clock)
    state.set_faults(CardSwitches(session_max_calls=2))
    token = state.login("lgsp.h12", SECRET, "H12")
    assert [state.use_session(token) for _ in range(3)] == [True, True, False]

    state.set_faults(CardSwitches(session_ttl_seconds=5))
    token = state.login("lgsp.h12", SECRET, "H12")
    clock.now += 5
    assert state.use_session(token)
    clock.now += 0.1
    assert not state.use_session(token)
    assert state.stats()["expired"] == 2


def test_a_token_partner_counts_the_calls_it_refuses() -> None:
    """authorized() lets in Bearer <token> only, and counts the others as unauthorized."""
    state = TokenState[FaultSwitches](faults=FaultSwitches(), token=SECRET)
    assert state.authorized(bearing(SECRET))
    assert not state.authorized(bearing("forged"))
    assert state.stats() == {"requests": 0, "unauthorized": 1}
    state.reset()
    assert state.stats()["unauthorized"] == 0


def test_secrets_stay_out_of_reprs() -> None:
    """Neither a session gateway's password nor a partner's token shows in its repr."""
    sessions = CardState(password=SECRET)
    sessions.login("lgsp.h12", SECRET, "H12")
    tokens = TokenState[FaultSwitches](faults=FaultSwitches(), token=SECRET)
    assert SECRET not in repr(sessions) and SECRET not in repr(tokens)


def test_demo_secret_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The variable's value when set; else the demo value, with a warning naming the variable."""
    monkeypatch.setenv("BUS_KIT_PASSWORD", SECRET)
    assert demo_secret("BUS_KIT_PASSWORD", "demo") == SECRET
    assert "BUS_KIT_PASSWORD" not in caplog.text
    monkeypatch.delenv("BUS_KIT_PASSWORD")
    assert demo_secret("BUS_KIT_PASSWORD", "demo", what="token") == "demo"
    assert "BUS_KIT_PASSWORD is not set: accepting the demo token only" in caplog.text


def test_every_secret_a_simulator_checks_has_a_demo_value() -> None:
    """`bus run` can start each shipped simulator: its connector offers the secret's demo value."""
    for entry in entry_points(group="lienthong_bus.connectors"):
        factory = entry.load()
        if getattr(factory, "simulator_module", None) is None:
            continue
        auth = ConnectorConfig.from_file(factory.default_config).auth
        for name in ("password_env", "token_env"):
            if (variable := getattr(auth, name, None)) is not None:
                assert variable in getattr(factory, "demo_environment", {}), entry.name
