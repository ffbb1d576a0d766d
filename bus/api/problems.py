"""Error answers of the HTTP API: RFC 9457 problem details with field-level errors.

Every refusal says which field was wrong, what was wrong and what is allowed, and never echoes
the submitted value back (it may be personal data).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contracts import is_dossier_code

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answer: raise it from a route to refuse a request with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors or []
        self.headers = headers

    def response(self) -> JSONResponse:
        """The problem document as a response."""
        body: dict[str, Any] = {
            "type": f"urn:lienthong:problem:{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers
        )


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("applicant", "identity_number")`` → ``applicant.identity_number``; indexes in [ ]."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _allowed(error: ErrorDetails) -> str | None:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    if "pattern" in ctx:
        return f"text matching {ctx['pattern']}"
    if kind.startswith("string_too") or kind.startswith("too_"):
        bounds = {k: v for k, v in ctx.items() if k in {"min_length", "max_length"}}
        return ", ".join(f"{k} {v}" for k, v in bounds.items()) or None
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return ", ".join(f"{k} {v}" for k, v in ctx.items())
    if kind == "missing":
        return "a value (the field is required)"
    if kind == "extra_forbidden":
        return "only the fields of the contract (see /docs)"
    return None


def validation_problem(
    errors: list[ErrorDetails], *, prefix: tuple[str, ...] = (), title: str = "Invalid dossier"
) -> Problem:
    """A 422 listing every invalid field."""
    items: list[dict[str, Any]] = []
    for error in errors[:50]:
        loc = tuple(error["loc"])
        if prefix and loc[: len(prefix)] == prefix:
            loc = loc[len(prefix) :]
        item: dict[str, Any] = {"field": field_path(loc), "problem": error["msg"]}
        allowed = _allowed(error)
        if allowed:
            item["allowed"] = allowed
        items.append(item)
    fields = ", ".join(i["field"] for i in items[:5])
    return Problem(
        422,
        title,
        f"{len(errors)} field(s) are invalid: {fields}",
        kind="validation",
        errors=items,
    )


async def problem_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Render a raised :class:`Problem`."""
    assert isinstance(exc, Problem)
    return exc.response()


async def request_validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own parameter validation, in the same problem format."""
    assert isinstance(exc, RequestValidationError | ValidationError)
    return validation_problem(list(exc.errors()), title="Invalid request").response()


def require_dossier_code(code: str) -> None:
    """422 unless ``code`` has the shape of a dossier code (checked before any lookup)."""
    if not is_dossier_code(code):
        raise Problem(
            422,
            "Invalid dossier code",
            "a dossier code looks like 000.00.10.H12-240315-0001 (agency-YYMMDD-sequence)",
            kind="validation",
            errors=[{"field": "code", "problem": "not a dossier code"}],
        )
