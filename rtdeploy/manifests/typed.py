"""Typed records read from, and written as, JSON objects.

A :class:`Record` is a frozen dataclass whose field annotations say what each JSON key must hold:
``int``, ``float``, ``str``, ``bool``, ``None``, ``Literal[...]``, another Record, a domain dataclass
(``ModelMeta``: the section *is* the domain type, read field by field), ``tuple[X, ...]``
(a JSON array), ``dict[str, X]`` (a JSON object), ``Any``, or a union of these. ``from_dict``
checks every declared key and raises one line naming the first key that is missing or ill-typed;
keys the record does not declare are kept, untouched, in ``extra`` and written back by
``to_dict``, so a reader never loses a field a newer writer added.

Fields without a default are required (a nullable one, ``X | None``, must still be present); a
field with a default may be absent, and ``to_dict`` leaves it out while it equals its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, Union

from rtdeploy.errors import ArtifactError


R = TypeVar("R", bound="Record")


class RecordError(ArtifactError):
    """A JSON object does not have the shape its record declares."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Record:
    """Base of the typed records (see the module docstring).

    Attributes:
        extra: the keys this record does not declare, as read (kept for ``to_dict``).
        given: the optional keys the JSON object held (``to_dict`` writes them even when default).
    """

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    given: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Any, *, where: str = "") -> R:
        """The record held by ``data``.

        Args:
            data: a JSON object (dict).
            where: how to name ``data`` in an error (e.g. the manifest's file name).

        Raises:
            RecordError: a declared key is missing or holds a value of another type.
        """
        return _record(cls, data, where or cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: declared keys in declaration order, then the kept extras."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _OWN:
                continue
            value = getattr(self, f.name)
            if _has_default(f) and value == _default(f) and f.name not in self.given:
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        return out


def _record(cls: type[Record], data: Any, where: str) -> Record:
    if not isinstance(data, dict):
        raise RecordError(f"{where} should be a JSON object, found {_kind(data)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in _OWN:
            continue
        if f.name not in data:
            if _has_default(f):
                continue
            raise RecordError(f"{_sub(where, f.name)} is missing")
        kwargs[f.name] = _convert(data[f.name], hints[f.name], _sub(where, f.name))
    declared = {f.name for f in dataclasses.fields(cls)}
    given = frozenset(k for k in kwargs if _has_default(_field(cls, k)))
    return cls(**kwargs, extra={k: v for k, v in data.items() if k not in declared or k in _OWN}, given=given)


def _domain(cls: type, data: Any, where: str) -> Any:
    """A domain dataclass (``ModelMeta``) a manifest section holds, field by field as a record is;
    keys it does not declare are left out (a newer writer's additions to a domain type)."""
    if not isinstance(data, dict):
        raise RecordError(f"{where} should be a JSON object, found {_kind(data)}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if _has_default(f):
                continue
            raise RecordError(f"{_sub(where, f.name)} is missing")
        kwargs[f.name] = _convert(data[f.name], hints[f.name], _sub(where, f.name))
    return cls(**kwargs)


def _convert(value: Any, hint: Any, where: str) -> Any:  # noqa: PLR0911 - one branch per kind of type
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        return _union(value, args, where)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise RecordError(f"{where} should be one of {', '.join(map(repr, args))}, found {value!r}")
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint, value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _domain(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecordError(f"{where} should be a JSON array, found {_kind(value)}")
        return tuple(_convert(v, args[0], _sub(where, f"[{i}]")) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} should be a JSON object, found {_kind(value)}")
        return {k: _convert(v, args[1], _sub(where, f"[{k!r}]")) for k, v in value.items()}
    return _scalar(value, hint, where)


def _union(value: Any, options: tuple, where: str) -> Any:
    problems = {}
    for option in options:
        try:
            return _convert(value, option, where)
        except RecordError as e:
            problems[option] = str(e)
    same_kind = [o for o in options if _json_kind(o) == _json_kind(value)]
    if len(same_kind) == 1:  # e.g. an object where "object or null" is declared: say what is wrong inside it
        raise RecordError(problems[same_kind[0]])
    raise RecordError(f"{where} should be {' or '.join(_name(o) for o in options)}, found {_kind(value)}")


def _json_kind(hint_or_value: Any) -> str:
    h = hint_or_value
    if isinstance(h, dict) or typing.get_origin(h) is dict or (isinstance(h, type) and dataclasses.is_dataclass(h)):
        return "object"
    if isinstance(h, list) or typing.get_origin(h) is tuple:
        return "array"
    return "scalar"


def _scalar(value: Any, hint: Any, where: str) -> Any:
    ok = {
        type(None): value is None,
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }
    if hint not in ok:
        raise TypeError(f"unsupported record field type {hint!r} at {where}")
    if not ok[hint]:
        raise RecordError(f"{where} should be {_name(hint)}, found {_kind(value)}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Record) or dataclasses.is_dataclass(value) and hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_OWN = ("extra", "given")


def _sub(where: str, key: str) -> str:
    """``m.json`` + ``a`` -> ``m.json: 'a'``; ``m.json: 'a'`` + ``b`` -> ``m.json: 'a.b'`` (``[i]`` joins without a dot)."""
    if not where.endswith("'"):
        return f"{where}: '{key}'"
    return where[:-1] + ("" if key.startswith("[") else ".") + key + "'"


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "a JSON object"
    if typing.get_origin(hint) is tuple:
        return "a JSON array"
    if typing.get_origin(hint) is dict:
        return "a JSON object"
    if typing.get_origin(hint) is Literal:
        return " or ".join(map(repr, typing.get_args(hint)))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {list: "a JSON array", dict: "a JSON object"}.get(type(value), type(value).__name__)
