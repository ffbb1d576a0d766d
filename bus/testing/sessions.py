"""A gateway's session login, for simulators of partners that hand out sessions the DVCQG way.

The client posts ``{username, password}`` with the province's ``dstcode`` header to the login
route and gets ``{error_code: 0, session}``; every later call carries ``session`` in its JSON
body. A real gateway ends sessions after some calls, after some seconds, or all at once when it
restarts: :class:`SessionFaultSwitches` and ``POST /_sim/expire-sessions`` make the simulator
do the same, so a test can prove the connector logs in again, once, and only when it must.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

from fastapi import FastAPI
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bus.testing.app import run_simulator
from bus.testing.credentials import demo_secret, same_secret
from bus.testing.gateway import GatewayCode, PayloadReader, gateway_error
from bus.testing.state import PartnerState
from bus.testing.switches import FaultSwitches

__all__ = [
    "SessionAccount",
    "SessionFaultSwitches",
    "SessionState",
    "add_session_login",
    "run_session_simulator",
    "session_checked",
]

S = TypeVar("S", bound="SessionFaultSwitches")


class SessionFaultSwitches(FaultSwitches):
    """The switches of a gateway with sessions: when it ends them. Mix in with other switches."""

    session_max_calls: int | None = Field(
        default=None, ge=1, description="A session expires after this many calls"
    )
    session_ttl_seconds: float | None = Field(
        default=None, gt=0, description="A session expires this long after its login"
    )
    expired_as_401: bool = Field(
        default=False,
        description="Refuse an expired session with HTTP 401 instead of error_code 100",
    )


@dataclass(slots=True)
class _Session:
    started: float
    calls: int = 0


@dataclass(kw_only=True)
class SessionState(PartnerState[S]):
    """A partner's account and the sessions it handed out; ``stats()`` adds logins and expired.

    Combine it with another memory by inheriting both, this one first (e.g.
    ``class State(SessionState[F], RegisterState[F, Card])``): its :meth:`counters` and
    :meth:`forget` extend theirs. :meth:`reset` keeps the account.
    """

    # repr=False: the password stays out of reprs, tracebacks and logs.
    password: str = field(repr=False)
    username: str = "lgsp.h12"
    #: The ``dstcode`` login header the gateway expects (the province); None accepts any.
    dstcode: str | None = "H12"
    #: The clock of ``session_ttl_seconds``: monotonic, so a wall-clock jump expires nothing.
    monotonic: Callable[[], float] = time.monotonic
    logins: int = 0
    #: Calls refused because their session was unknown or had expired.
    expired: int = 0
    #: The dstcode header of every login, in order.
    login_dstcodes: list[str | None] = field(default_factory=list)
    _sessions: dict[str, _Session] = field(default_factory=dict, repr=False)

    def login(self, username: Any, password: Any, dstcode: str | None) -> str | GatewayCode:
        """A new session for a good account, else the gateway's error code."""
        with self.lock:
            self.login_dstcodes.append(dstcode)
            if self.dstcode is not None and dstcode != self.dstcode:
                return GatewayCode.PROVINCE_ID_INCORRECT
            good = same_secret(username, self.username) and same_secret(password, self.password)
            if not good:
                return GatewayCode.AUTHEN_ERROR
            token = secrets.token_urlsafe(24)
            self._sessions[token] = _Session(started=self.monotonic())
            self.logins += 1
            return token

    def use_session(self, token: Any) -> bool:
        """Count one call on a session; False (and counted as expired) when it is not valid."""
        with self.lock:
            session = self._sessions.get(token) if isinstance(token, str) else None
            if session is not None and self._worn_out(session):
                del self._sessions[token]
                session = None
            if session is None:
                self.expired += 1
                return False
            session.calls += 1
            return True

    def _worn_out(self, session: _Session) -> bool:
        faults = self.faults
        too_old = (
            faults.session_ttl_seconds is not None
            and self.monotonic() - session.started > faults.session_ttl_seconds
        )
        too_used = (
            faults.session_max_calls is not None and session.calls >= faults.session_max_calls
        )
        return too_old or too_used

    def expire_sessions(self) -> int:
        """End every session now (as a gateway restart would); return how many there were."""
        with self.lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def counters(self) -> dict[str, Any]:
        """The other counters, plus logins and calls refused for their session."""
        return {**super().counters(), "logins": self.logins, "expired": self.expired}

    def forget(self) -> None:
        """Forget the other records, every session and login (the account stays)."""
        super().forget()
        self._sessions.clear()
        self.login_dstcodes.clear()
        self.logins = self.expired = 0


def session_checked(read_payload: PayloadReader, state: SessionState[Any]) -> PayloadReader:
    """``read_payload`` for calls that need a session: the body, once its ``session`` is good.

    The call is counted on its session. A bad or expired one is refused AUTHEN_ERROR with
    HTTP 200, as gateways answer it; with HTTP 401 when ``expired_as_401`` is on, so that both
    ways of saying it are tested.
    """

    async def read(request: Request) -> dict[str, Any] | Response:
        payload = await read_payload(request)
        if isinstance(payload, Response) or state.use_session(payload.get("session")):
            return payload
        if state.current_faults().expired_as_401:
            return gateway_error(GatewayCode.AUTHEN_ERROR, "Session expired", 401)
        message = "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"
        return gateway_error(GatewayCode.AUTHEN_ERROR, message)

    return read


def add_session_login(
    app: FastAPI, state: SessionState[Any], *, path: str, read_payload: PayloadReader
) -> None:
    """Add the login route at ``path`` and ``POST /_sim/expire-sessions`` to a simulator's app.

    ``read_payload`` reads the login's body as the partner's other routes do, so that the sick
    switches apply to the login as well (a sick gateway is sick for both).
    """

    @app.post(path, tags=["xác thực"])
    async def login(request: Request) -> Response:
        """Log in with {username, password} and the dstcode header; answer a session."""
        payload = await read_payload(request)
        if isinstance(payload, Response):
            return payload
        outcome = state.login(
            payload.get("username"), payload.get("password"), request.headers.get("dstcode")
        )
        if outcome == GatewayCode.PROVINCE_ID_INCORRECT:
            return gateway_error(outcome, "Mã tỉnh (dstcode) không hợp lệ")
        if isinstance(outcome, GatewayCode):
            return gateway_error(outcome, "Sai tên đăng nhập hoặc mật khẩu")
        return JSONResponse(
            {"error_code": 0, "message": "Đăng nhập thành công", "session": outcome}
        )

    @app.post("/_sim/expire-sessions", tags=["simulator"])
    async def expire_sessions() -> dict[str, int]:
        """End every session now, as a gateway restart would."""
        return {"expired_sessions": state.expire_sessions()}


class SessionAccount(TypedDict):
    """The account and seed ``main()`` read, as keywords of a :class:`SessionState`."""

    password: str
    username: str
    dstcode: str | None
    seed: int | None


def run_session_simulator(
    build: Callable[[SessionAccount], Any],
    *,
    port: int,
    doc: str | None,
    password_env: str,
    demo_password: str,
    argv: Sequence[str] | None = None,
) -> None:
    """:func:`~bus.testing.run_simulator`, with ``--username`` and ``--dstcode`` and the password.

    The password comes from ``password_env`` (the variable the connector reads), else
    ``demo_password``; ``build`` makes the app from the account, e.g.
    ``lambda account: create_simulator_app(SimulatorState(**account))``.
    """

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--username", default="lgsp.h12", help="the account it accepts")
        parser.add_argument("--dstcode", default="H12", help="the dstcode login header it expects")

    def from_args(args: argparse.Namespace) -> Any:
        password = demo_secret(password_env, demo_password)
        return build(
            SessionAccount(
                password=password, username=args.username, dstcode=args.dstcode, seed=args.seed
            )
        )

    run_simulator(from_args, port=port, doc=doc, argv=argv, options=options)
