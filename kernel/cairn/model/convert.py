"""The one cattrs converter, strict about types, and its error translation.

cattrs' default converter quietly turns ``1`` into ``"1"``; cairn refuses
instead, so a wrong value is reported where it was written, not discovered
later. Unknown keys are refused everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

from cairn.errors import ValidationError

__all__ = ["converter", "structure", "unstructure", "describe_errors"]

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type, label: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _type: Any) -> Any:
        # bool is an int subclass; a flag given where a number belongs is a mistake.
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {label}, got a boolean")
        if not isinstance(value, kind):
            raise TypeError(f"expected {label}, got {_type_name(value)} {value!r:.60}")
        return value

    return hook


def _structure_float(value: Any, _type: Any) -> float:
    # TOML writes 5 for 5.0: an integer is a fine number, but the field holds a float.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_type_name(value)} {value!r:.60}")
    return float(value)


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(dict, _strict(dict, "a table (JSON object)"))


def _is_list_type(t: Any) -> bool:
    return t is list or getattr(t, "__origin__", None) is list


def _structure_list(value: Any, list_type: Any) -> list[Any]:
    # cattrs would turn "abc" into ["a", "b", "c"]; a list must be written as one.
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list, got {_type_name(value)} {value!r:.60}")
    args = getattr(list_type, "__args__", None)
    if not args:
        return list(value)
    return [converter.structure(v, args[0]) for v in value]


converter.register_structure_hook_func(_is_list_type, _structure_list)


def _structure_enum(value: Any, enum_type: type[enum.Enum]) -> enum.Enum:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum_type)
        raise ValueError(f"expected one of {choices}, got {value!r}") from None


converter.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum)
converter.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda e: e.value)


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
    # attrs validators raise ValueError(message, attribute, expected, given).
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc) or type(exc).__name__


def describe_errors(exc: BaseException, what: str) -> list[str]:
    """Turn a cattrs error (group) into ``what.field: problem`` lines."""
    if isinstance(exc, (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError)):
        lines = cattrs.transform_error(exc, path=what, format_exception=_format)
        # cattrs writes "message @ path"; cairn leads with the path.
        out = []
        for line in lines:
            message, _, path = line.rpartition(" @ ")
            out.append(f"{path}: {message}" if path else line)
        return out
    return [f"{what}: {exc}"]


def structure(data: Any, cls: type[T], what: str | None = None) -> T:
    """Structure ``data`` into ``cls`` or raise one ``ValidationError`` listing every problem."""
    label = what or cls.__name__
    if attrs.has(cls) and not isinstance(data, dict):
        raise ValidationError(f"expected a table of fields, got {_type_name(data)}", what=label)
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError) as exc:
        lines = describe_errors(exc, label)
        err = ValidationError("; ".join(lines), what=None)
        # One fact more for callers that list the problems apart; ValidationError declares none such.
        err.problems = lines  # type: ignore[attr-defined]
        raise err from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc), what=label) from None


def unstructure(value: Any) -> Any:
    return converter.unstructure(value)
