"""The secrets a simulator checks: where ``main()`` reads them, and how a call's are compared.

A partner with a fixed API token keeps it in a :class:`TokenState` and lets a call in with
:meth:`TokenState.authorized`; a gateway with a session login is :mod:`bus.testing.sessions`.

A secret is never a command-line argument (those show in process listings): it comes from the
environment variable the connector reads too, with a demo value when it is unset, the one
``bus run`` hands the workers (a connector's ``demo_environment``).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from bus.testing.state import PartnerState
from bus.testing.switches import FaultSwitches

__all__ = ["TokenState", "bearer_ok", "demo_secret", "same_secret"]

F = TypeVar("F", bound=FaultSwitches)

_log = logging.getLogger(__name__)


def demo_secret(env: str, demo: str, *, what: str = "password") -> str:
    """The secret in ``env``; else ``demo``, saying loudly that only the demo value is accepted."""
    secret = os.environ.get(env) or demo
    if secret == demo:
        logging.basicConfig(level=logging.INFO)
        _log.warning("%s is not set: accepting the demo %s only", env, what)
    return secret


def same_secret(given: Any, expected: str) -> bool:
    """Whether ``given`` is the text ``expected``, compared in constant time (no timing leak)."""
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


def bearer_ok(request: Request, token: str) -> bool:
    """Whether the call's ``Authorization`` header is ``Bearer <token>``."""
    return same_secret(request.headers.get("authorization", ""), f"Bearer {token}")


@dataclass(kw_only=True)
class TokenState(PartnerState[F]):
    """The memory of a partner that lets in calls bearing its API token; counts the others.

    ``stats()`` adds ``unauthorized``, the calls refused for their token. A partner redeclares
    ``token`` with its demo value as default.
    """

    # repr=False: the token stays out of reprs, tracebacks and logs.
    token: str = field(repr=False)
    unauthorized: int = 0

    def authorized(self, request: Request) -> bool:
        """Whether the call bears ``Bearer <token>``; a call that does not is counted."""
        if bearer_ok(request, self.token):
            return True
        with self.lock:
            self.unauthorized += 1
        return False

    def counters(self) -> dict[str, Any]:
        """The other counters, plus the calls refused for their token."""
        return {**super().counters(), "unauthorized": self.unauthorized}

    def forget(self) -> None:
        """Forget the other records and the refusals."""
        super().forget()
        self.unauthorized = 0
