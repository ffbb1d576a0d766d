"""Reading a request body defensively: size cap, then for JSON a UTF-8 check, parse, depth cap.

orjson parses in C and refuses nesting past 1024 levels by itself; the bus's own (configurable,
much lower) depth cap is checked on the parsed value without recursion.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from bus.api.problems import Problem, field_path, validation_problem

JSON_TYPES = ("application/json", "application/cloudevents+json")


async def read_json_body(request: Request, *, max_bytes: int, max_depth: int) -> tuple[Any, int]:
    """The parsed JSON body and its size in bytes, or a :class:`Problem` saying what is wrong."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise Problem(
            415,
            "Unsupported media type",
            f"send the dossier as application/json (got {content_type or 'no Content-Type'})",
            kind="media-type",
        )
    body = await read_body(request, max_bytes=max_bytes)
    if not body.strip():
        raise Problem(
            400, "Empty body", "the request body is empty: send a JSON dossier", kind="json"
        )
    return parse_json(body, max_depth=max_depth), len(body)


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The raw body, read under the size cap: a larger one (declared or sent) is a 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body (UTF-8, then syntax, then the depth cap), or a :class:`Problem`."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            400,
            "Invalid UTF-8",
            f"the body is not valid UTF-8 (byte {exc.start}): encode the dossier as UTF-8",
            kind="encoding",
        ) from exc
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson's own 1024-level cap: older releases say "Recursion limit reached", 3.13 says
        # "depth limit exceeded"; either way the body is deeper than the bus's (lower) cap.
        reason = str(exc).lower()
        if "recursion" in reason or "depth limit" in reason:
            raise _too_deep(max_depth) from exc
        raise Problem(
            400,
            "Invalid JSON",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            kind="json",
        ) from exc
    # Nesting can only exceed the cap if there are more brackets than levels: a C-speed count
    # spares the walk for ordinary dossiers.
    if body.count(b"{") + body.count(b"[") > max_depth and _depth_exceeds(value, max_depth):
        raise _too_deep(max_depth)
    # PostgreSQL stores no NUL character in text or JSONB: refused here as the client's error,
    # not left to fail the commit as if the store were down. JSON carries one only as the
    # escape \u0000, so the walk runs only for a body holding that text.
    if b"\\u0000" in body:
        where = _nul_at(value)
        if where is not None:
            raise Problem(
                400,
                "NUL character",
                f"the text at {where} holds a NUL character (\\u0000), which no field may hold",
                kind="encoding",
            )
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: list[Any]
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _nul_at(value: Any) -> str | None:
    """The path of the first key or string holding a NUL character, if one does."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return field_path(path)
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return f"a key of {field_path(path)}"
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
    return None


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Body too large",
        f"the body is larger than {limit} bytes (BUS_MAX_BODY_BYTES); send documents by URL",
        kind="too-large",
    )


def _too_deep(limit: int) -> Problem:
    return Problem(
        400,
        "JSON nested too deeply",
        f"the body nests objects or arrays deeper than {limit} levels (BUS_MAX_JSON_DEPTH)",
        kind="json-depth",
    )


Model = TypeVar("Model", bound=BaseModel)


async def read_json_model(request: Request, model: type[Model], *, title: str) -> Model:
    """The request's JSON body as ``model``, read within the app's body limits; a problem
    document titled ``title`` listing every invalid field otherwise. Routes read their body
    this way, after authentication, so that an anonymous caller gets 401 whatever it sent."""
    settings = request.app.state.settings
    raw, _ = await read_json_body(
        request, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors(), title=title) from exc
