"""JSON values a caller hands the engine (metadata, provider items, tool
arguments given as objects): checked to come back exactly as given once
written as JSON text and read again, or refused naming the value."""

from __future__ import annotations

import math

from engine.errors import InvalidArgument
from engine.state.content import got, unicode_error

__all__ = ["JSON_DEPTH", "check_json_value", "same_json"]

#: How deep a value may nest: deeper ones are refused, not met by a RecursionError later.
JSON_DEPTH = 64

_HINTS = {
    "bytes": "encode it as text yourself (for example base64)",
    "bytearray": "encode it as text yourself (for example base64)",
    "tuple": "pass a list",
    "set": "pass a sorted list",
    "frozenset": "pass a sorted list",
    "datetime": "pass an ISO 8601 string",
    "date": "pass an ISO 8601 string",
}
_JSON_TYPES = frozenset((type(None), bool, int, float, str, list, dict))
# Python turns no int of more digits into text (sys.get_int_max_str_digits),
# and the JSON decoder reads none back.
_INT_DIGITS = 4000
_INT_LIMIT = 10**_INT_DIGITS


def check_json_value(value: object, where: str, max_depth: int = JSON_DEPTH) -> None:
    """``InvalidArgument`` naming the part of ``value`` (called ``where``)
    that JSON text would not give back as itself: a type that is not exactly
    str, int, float, bool, None, list or dict (a tuple comes back a list, an
    enum its base), a key that is not a str (``1`` comes back ``"1"``, and
    may collide with it), NaN or infinity, an int too long for text, text
    that is not valid Unicode, or nesting deeper than ``max_depth``."""
    _check(value, where, 0, max_depth)


def _check(value: object, where: str, depth: int, max_depth: int) -> None:
    kind = type(value)
    if kind not in _JSON_TYPES:  # exact types: a subclass (an enum, an OrderedDict) comes back as its base
        hint = _HINTS.get(kind.__name__, "use str, int, float, bool, None, list or dict")
        raise InvalidArgument(
            f"{where} is a {kind.__name__}, which would not come back as itself from the store; {hint}"
        )
    if isinstance(value, str):
        if not value.isascii():
            unicode_error(value, where, InvalidArgument)
    elif kind is int:
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise InvalidArgument(
                f"{where} is an int of over {_INT_DIGITS:,} digits, which JSON text cannot give back; store it as a str"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{where} is {value!r}: JSON has no NaN or infinity, so it would come back as null")
    elif isinstance(value, (list, dict)):
        if depth >= max_depth:
            raise InvalidArgument(f"{where} nests deeper than {max_depth} levels")
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check(item, f"{where}[{index}]", depth + 1, max_depth)
            return
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidArgument(f"{where} keys must be str, got {got(key)}")
            _check(key, f"{where} key {key!r}", depth + 1, max_depth)
            _check(item, f"{where}[{key!r}]", depth + 1, max_depth)


def same_json(first: object, second: object) -> bool:
    """Whether two JSON values read back the same: type for type (``1``,
    ``1.0`` and ``True`` are equal to Python, not to a reader of the stored
    JSON), keys in the same order, ``-0.0`` apart from ``0.0``."""
    if type(first) is not type(second):
        return False
    if isinstance(first, dict):
        assert isinstance(second, dict)
        return list(first) == list(second) and all(same_json(first[key], second[key]) for key in first)
    if isinstance(first, list):
        assert isinstance(second, list)
        return len(first) == len(second) and all(map(same_json, first, second))
    if isinstance(first, float):
        assert isinstance(second, float)
        return first == second and math.copysign(1.0, first) == math.copysign(1.0, second)
    return first == second
