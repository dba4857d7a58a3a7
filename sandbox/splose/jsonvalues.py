"""What the sandbox accepts as a JSON value, so no client input can make it answer 500.

Python's ``json`` module is kinder than Splose's storage: it accepts ``NaN``, integers of any size,
lone surrogates (``"\\ud800"``) and nesting until the interpreter's recursion limit. The sandbox parses
strictly (``NaN``/``Infinity`` are not JSON; nesting deeper than :data:`MAX_DEPTH` is refused) and
checks every value it would store or echo: strings must be encodable as UTF-8 (no lone surrogate),
integers must fit a signed 64-bit column, numbers must be finite. A literal too long to be one
(``1e400`` is not a float either) is parsed as an :class:`OutOfRange` marker, so it fails validation
where it stands (one record of a batch) instead of failing the whole body.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 32
MAX_INT_CHARS = 20  # "-9223372036854775808"; anything longer cannot be a 64-bit integer
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")  # a JSON number's digits (leading zeros allowed)


class OutOfRange:
    """A number literal no 64-bit column holds (kept only as its length)."""

    def __init__(self, literal: str) -> None:
        self.length = len(literal)

    def __repr__(self) -> str:
        return f"<a number of {self.length} characters>"


class JsonBodyError(ValueError):
    """The body as a whole is not acceptable JSON; the message says why."""


def _parse_int(text: str) -> int | OutOfRange:
    return int(text) if len(text) <= MAX_INT_CHARS else OutOfRange(text)


def _parse_float(text: str) -> float | OutOfRange:
    number = float(text)
    return number if math.isfinite(number) else OutOfRange(text)


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON value")


def parse_json(raw: bytes, what: str = "the body") -> Any:
    """Parse JSON a client sent strictly: a request body, or ``what`` names another carrier (a form field);
    :class:`JsonBodyError` names what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonBodyError(f"{what} is not UTF-8 (invalid byte at offset {error.start})") from error
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise JsonBodyError(f"{what} is nested more than {MAX_DEPTH} levels deep") from error
    except JsonBodyError:
        raise
    except ValueError as error:
        raise JsonBodyError(f"{what} is not valid JSON ({error})") from error
    if nesting_depth(value) > MAX_DEPTH:
        raise JsonBodyError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    return value


def nesting_depth(value: Any) -> int:
    """How many arrays/objects deep ``value`` goes (stops counting once past :data:`MAX_DEPTH`)."""
    deepest = 0
    stack = [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (a lone surrogate) spelled as ``\\udXXX``."""
    return text if encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(value: Any, limit: int = 80) -> str:
    """A short, always-encodable rendering of a client's value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def echo(value: Any) -> Any:
    """A client's value fit to send back (the ``externalId`` of a refused record)."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and INT64_MIN <= value <= INT64_MAX):
        return value
    if isinstance(value, str):
        return printable(value)
    return shown(value)


def value_problem(value: Any) -> str | None:
    """Why a scalar cannot be stored, or None."""
    if isinstance(value, OutOfRange):
        return f"{value!r} is out of range (64-bit integers, finite numbers only)"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return f"{shown(value)} is out of range (64-bit integers only)"
    if isinstance(value, str) and not encodable(value):
        return f"{shown(value)} is not valid Unicode (it holds a lone surrogate)"
    return None


def plain_problem(value: Any, path: str = "") -> str | None:
    """The first value (or object key) anywhere in ``value`` that cannot be stored, as ``path: why``."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if not encodable(key):
                    return f"{where or 'body'}: key {shown(key)} is not valid Unicode (it holds a lone surrogate)"
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))
        else:
            problem = value_problem(node)
            if problem:
                return f"{where or 'body'}: {problem}"
    return None


def strict_int(text: str) -> int:
    """An ASCII decimal integer that fits 64 bits (``ValueError`` otherwise: ``int()`` also takes ``' 1_0 '``)."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{shown(text)} is not an integer")
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{shown(text)} is out of range (64-bit integers only)")
    return number


def strict_number(text: str) -> int | float:
    """An ASCII decimal number (``ValueError`` otherwise: ``float()`` also takes ``'nan'`` and ``'1_0'``), as an
    ``int`` when it is integral (``6.0`` and ``6e0`` are 6; it must then fit 64 bits), else a finite float."""
    if _INTEGER.fullmatch(text):
        return strict_int(text)
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{shown(text)} is not a number")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{shown(text)} is out of range (finite numbers only)")
    if not number.is_integer():
        return number
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{shown(text)} is out of range (64-bit integers only)")
    return int(number)
