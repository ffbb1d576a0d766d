"""Turning a message spec into a function: each field rule becomes a small, named, pure step.

Compiled once when the catalogue loads; applying a mapping then costs a few dictionary lookups
per field. JMESPath expressions that are plain field paths (``a.b.c``, the vast majority) are
read with direct lookups on the tree the ``jmespath`` parser produced; anything richer runs
through ``jmespath`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import jmespath
from jmespath.exceptions import JMESPathError

from bus.errors import MappingError
from bus.mapping import dates, xmldoc
from bus.mapping.spec import CodeList, Direction, FieldRule, SpecError
from contracts import mask_citizen_id

Source = Mapping[str, Any]
Context = Mapping[str, Any]
Getter = Callable[[Any], Any]
Step = Callable[[Any, Context, dict[str, Any]], None]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Where:
    """Names used in error messages: which mapping, which rule."""

    mapping: str
    target: str
    source: str


def compile_expression(expression: str, *, where: str) -> Getter:
    """A getter for a JMESPath expression; plain field paths get a direct-lookup fast path."""
    try:
        parsed = jmespath.compile(expression)
    except JMESPathError as exc:
        raise SpecError(
            f"{where}: {expression!r} is not a valid JMESPath expression: {exc}"
        ) from exc
    keys = _field_path(cast(dict[str, Any], parsed.parsed))
    if keys is None:
        search = parsed.search
        return lambda source: search(source)
    if len(keys) == 1:
        (key,) = keys
        return lambda source: source.get(key) if isinstance(source, dict) else None

    def lookup(source: Any) -> Any:
        for key in keys:
            if not isinstance(source, dict):
                return None
            source = source.get(key)
        return source

    return lookup


def _field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression":
        keys: list[str] = []
        for child in node["children"]:
            part = _field_path(child)
            if part is None:
                return None
            keys.extend(part)
        return tuple(keys)
    return None


def masked(value: Any) -> str:
    """A value for an error message, with 12-digit identity numbers masked, and cut short."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    out, run = [], ""
    for char in text + "\0":
        if char.isdigit():
            run += char
            continue
        out.append(mask_citizen_id(run) if len(run) == 12 else run)
        run = ""
        out.append(char)
    return "".join(out[:-1])


def fail(where: Where, reason: str, value: Any = MISSING) -> MappingError:
    """The error for one rule: mapping, source path, target field and offending value."""
    shown = "" if value is MISSING else f", value {masked(value)}"
    return MappingError(
        f"{where.mapping}: cannot map {where.source} → {where.target}: {reason}{shown}",
        mapping=where.mapping,
        source_path=where.source,
        target_field=where.target,
        value=None if value is MISSING else masked(value),
    )


class Compiler:
    """Compiles the field rules of one message with its partner's code lists."""

    def __init__(
        self, *, mapping: str, direction: Direction, code_lists: Mapping[str, CodeList]
    ) -> None:
        self.mapping = mapping
        self.direction = direction
        self._code_lists = code_lists
        self._codes_cache: dict[str, dict[str, Any]] = {}

    def fields(
        self, rules: Mapping[str, FieldRule], *, prefix: str = ""
    ) -> Callable[[Any, Context], dict[str, Any]]:
        """A function building the target object from a source, one step per field."""
        steps = [self._field(name, rule, prefix=prefix) for name, rule in rules.items()]

        def build(source: Any, context: Context) -> dict[str, Any]:
            target: dict[str, Any] = {}
            for step in steps:
                step(source, context, target)
            return target

        return build

    def _field(self, name: str, rule: FieldRule, *, prefix: str) -> Step:
        target = f"{prefix}{name}"
        setter = _setter(tuple(name.split(".")))
        if rule.each is not None:
            return self._each(target, rule, setter)
        if rule.fields is not None:
            return self._object(target, rule, setter)
        where = Where(self.mapping, target, _describe_source(rule))
        value_of = self._value(rule, where)
        convert = self._conversions(rule, where)
        default, required = rule.default, rule.required

        def step(source: Any, context: Context, out: dict[str, Any]) -> None:
            value = value_of(source, context)
            if value is None or value == "":
                if default is not None:
                    value = default
                elif required:
                    raise fail(where, "the source has no value and the field is required")
                else:
                    return
            setter(out, convert(value, source, context))

        return step

    def _value(self, rule: FieldRule, where: Where) -> Callable[[Any, Context], Any]:
        if rule.value is not None:
            constant = rule.value
            return lambda _source, _context: constant
        if rule.context is not None:
            key = rule.context

            def from_context(_source: Any, context: Context) -> Any:
                if key not in context:
                    raise fail(where, f"the caller did not supply context value {key!r}")
                return context[key]

            return from_context
        assert rule.from_ is not None
        getter = compile_expression(rule.from_, where=f"{self.mapping}: {where.target}")
        return lambda source, _context: getter(source)

    def _conversions(self, rule: FieldRule, where: Where) -> Callable[[Any, Any, Context], Any]:
        steps: list[Callable[[Any, Any, Context], Any]] = []
        if self.direction == "inbound":
            if rule.codes is not None:
                steps.append(self._code_step(rule.codes, where, inbound=True))
            if rule.date is not None:
                steps.append(self._parse_date_step(rule, where))
        else:
            if rule.date_precision:
                steps.append(_guard(where, lambda v, s, c: dates.precision_of(v)))
            if rule.date is not None:
                fmt = rule.date
                _check_format(fmt, where)
                steps.append(_guard(where, lambda v, s, c: dates.format_(v, fmt)))
            if rule.codes is not None:
                steps.append(self._code_step(rule.codes, where, inbound=False))
        if rule.type is not None:
            steps.append(_type_step(rule.type, where))
        if not steps:
            return lambda value, _source, _context: value
        if len(steps) == 1:
            return steps[0]

        def convert(value: Any, source: Any, context: Context) -> Any:
            for step in steps:
                value = step(value, source, context)
            return value

        return convert

    def _code_step(
        self, name: str, where: Where, *, inbound: bool
    ) -> Callable[[Any, Any, Context], Any]:
        table = self._code_table(name, inbound=inbound, where=where)
        direction = "partner" if inbound else "canonical"
        absent = None if inbound else self._code_lists[name].no_partner_code
        allowed = ", ".join(sorted(table, key=_natural)[:20])

        def translate(value: Any, _source: Any, _context: Context) -> Any:
            key = _code_key(value)
            try:
                return table[key]
            except KeyError:
                if absent is not None and absent.covers(key):
                    reason = f"the partner has no code for this value: {absent.reason}"
                else:
                    reason = f"{direction} value not in code list {name!r} (allowed: {allowed})"
                raise fail(where, reason, value) from None

        return translate

    def _code_table(self, name: str, *, inbound: bool, where: Where) -> dict[str, Any]:
        code_list = self._code_lists.get(name)
        if code_list is None:
            known = ", ".join(sorted(self._code_lists)) or "none"
            raise SpecError(
                f"{where.mapping}: {where.target}: no code list {name!r} (known: {known})"
            )
        cache_key = f"{name}:{inbound}"
        if cache_key not in self._codes_cache:
            self._codes_cache[cache_key] = (
                {str(k): v for k, v in code_list.codes.items()} if inbound else code_list.reverse()
            )
        return self._codes_cache[cache_key]

    def _parse_date_step(self, rule: FieldRule, where: Where) -> Callable[[Any, Any, Context], Any]:
        fmt, as_ = rule.date, rule.as_
        assert fmt is not None
        _check_format(fmt, where)
        if rule.precision is None:
            return _guard(where, lambda v, s, c: dates.parse(v, fmt, as_=as_))
        flag_of = compile_expression(rule.precision.from_, where=f"{where.mapping}: {where.target}")
        flag_where = Where(where.mapping, where.target, rule.precision.from_)
        to_precision = self._code_step(rule.precision.codes, flag_where, inbound=True)

        def parse_partial(value: Any, source: Any, context: Context) -> Any:
            flag = flag_of(source)
            precision = None if flag in (None, "") else to_precision(flag, source, context)
            try:
                return dates.parse(value, fmt, as_=as_, precision=precision)
            except dates.DateError as exc:
                raise fail(where, str(exc), value) from exc

        return parse_partial

    def _each(
        self, target: str, rule: FieldRule, setter: Callable[[dict[str, Any], Any], None]
    ) -> Step:
        assert rule.each is not None
        assert rule.fields is not None
        where = Where(self.mapping, target, rule.each)
        items_of = compile_expression(rule.each, where=f"{self.mapping}: {target}")
        build = self.fields(rule.fields, prefix=f"{target}[].")
        required = rule.required

        def step(source: Any, context: Context, out: dict[str, Any]) -> None:
            items = items_of(source)
            if items is None:
                if required:
                    raise fail(where, "the source has no list and the field is required")
                return
            if isinstance(items, dict):
                items = [items]  # XML: a single repeated element reads as one object
            if not isinstance(items, list):
                raise fail(where, "expected a list", items)
            setter(out, [build(item, context) for item in items])

        return step

    def _object(
        self, target: str, rule: FieldRule, setter: Callable[[dict[str, Any], Any], None]
    ) -> Step:
        assert rule.fields is not None
        where = Where(self.mapping, target, rule.from_ or "(the fields below)")
        source_of = (
            compile_expression(rule.from_, where=f"{self.mapping}: {target}")
            if rule.from_ is not None
            else None
        )
        xml = rule.xml
        if xml is not None and self.direction == "outbound":
            build = self.fields(rule.fields, prefix=f"{target}/")
            root, xsd = xml.root, xml.schema_

            def build_xml(source: Any, context: Context, out: dict[str, Any]) -> None:
                content = build(source if source_of is None else source_of(source), context)
                try:
                    setter(out, xmldoc.from_dict(content, root=root, xsd=xsd))
                except xmldoc.XmlMappingError as exc:
                    raise fail(where, str(exc)) from exc

            return build_xml
        if xml is not None:
            build = self.fields(rule.fields, prefix=f"{target}/")
            root, xsd = xml.root, xml.schema_

            def read_xml(source: Any, context: Context, out: dict[str, Any]) -> None:
                text = source if source_of is None else source_of(source)
                if text is None:
                    if rule.required:
                        raise fail(where, "the source has no XML document")
                    return
                try:
                    document = xmldoc.to_dict(text, root=root, xsd=xsd)
                except xmldoc.XmlMappingError as exc:
                    raise fail(where, str(exc)) from exc
                # Fields of an embedded document land beside the others, not below its name.
                out.update(build(document, context))

            return read_xml
        build = self.fields(rule.fields, prefix=f"{target}.")

        def nested(source: Any, context: Context, out: dict[str, Any]) -> None:
            inner = source if source_of is None else source_of(source)
            if inner is None:
                if rule.required:
                    raise fail(where, "the source has no object and the field is required")
                return
            built = build(inner, context)
            if built or rule.required:
                setter(out, built)

        return nested


def _setter(path: tuple[str, ...]) -> Callable[[dict[str, Any], Any], None]:
    if len(path) == 1:
        (key,) = path

        def set_one(target: dict[str, Any], value: Any) -> None:
            target[key] = value

        return set_one
    head, last = path[:-1], path[-1]

    def set_nested(target: dict[str, Any], value: Any) -> None:
        for key in head:
            target = target.setdefault(key, {})
        target[last] = value

    return set_nested


def _guard(
    where: Where, convert: Callable[[Any, Any, Context], Any]
) -> Callable[[Any, Any, Context], Any]:
    def guarded(value: Any, source: Any, context: Context) -> Any:
        try:
            return convert(value, source, context)
        except dates.DateError as exc:
            raise fail(where, str(exc), value) from exc

    return guarded


def _type_step(kind: str, where: Where) -> Callable[[Any, Any, Context], Any]:
    def coerce(value: Any, _source: Any, _context: Context) -> Any:
        try:
            if kind == "string":
                return value if isinstance(value, str) else _code_key(value)
            if kind == "integer":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError("not a whole number")
                return int(value)
            if kind == "number":
                return (
                    float(value) if not isinstance(value, int) or isinstance(value, bool) else value
                )
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"1", "true"}:
                return True
            if str(value).lower() in {"0", "false"}:
                return False
            raise ValueError("not a boolean (true/false/1/0)")
        except (TypeError, ValueError) as exc:
            raise fail(where, f"cannot be read as {kind}: {exc}", value) from exc

    return coerce


def _natural(code: str) -> tuple[int, int, str]:
    """Sort key: numeric codes by number (1, 2, 10), then the others as text."""
    return (0, int(code), "") if code.isdigit() else (1, 0, code)


def _code_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_format(fmt: str, where: Where) -> None:
    if fmt not in dates.FORMATS:
        raise SpecError(
            f"{where.mapping}: {where.target}: unknown date format {fmt!r} "
            f"(known: {', '.join(dates.FORMATS)})"
        )


def _describe_source(rule: FieldRule) -> str:
    if rule.from_ is not None:
        return rule.from_
    if rule.context is not None:
        return f"context.{rule.context}"
    return "(constant)"
