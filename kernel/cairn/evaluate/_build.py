"""Evaluators built from ``NAME:key=value`` specs over ``[evaluators.<name>]`` tables, and described for listing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import CairnError, PluginError, ValidationError
from cairn.evaluate._contract import INPUTS, KINDS, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.plugins import Plugins

__all__ = ["ConfiguredEvaluator", "EvaluatorInfo", "EvaluatorSpec", "build_evaluators", "describe_evaluators"]


_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
_KEY_RE = re.compile(r"\A\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


@attrs.frozen
class EvaluatorSpec:
    """``NAME`` or ``NAME:key=value,key2=value2`` as written on the command line.

    Values are raw text until the evaluator's config class gives them a type:
    a text field takes the text as it is; other fields read it as a TOML value
    (``true``, ``0.5``, ``["a", "b"]``, ``{type = "object"}``); a list field
    also takes ``a|b|c``. Quote a value holding a comma followed by ``key=``.
    """

    name: str
    params: tuple[tuple[str, str], ...] = ()
    text: str = ""

    @property
    def label(self) -> str:
        """What the evaluator is called in results: the spec as written, so two settings of one evaluator differ."""
        return self.text or self.name

    @classmethod
    def parse(cls, text: str) -> EvaluatorSpec:
        text = text.strip()
        name, sep, rest = text.partition(":")
        name = name.strip()
        if not _NAME_RE.match(name):
            raise ValidationError(
                f"--evaluator {text!r}: {name!r} is not an evaluator name",
                hint="write NAME or NAME:key=value,key2=value2; `cairn evaluators` lists names",
            )
        if not sep:
            return cls(name, (), name)
        params: list[tuple[str, str]] = []
        for piece in _split_params(rest):
            key, eq, value = piece.partition("=")
            key = key.strip()
            if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValidationError(
                    f"--evaluator {text!r}: {piece!r} is not key=value", hint="write NAME:key=value,key2=value2"
                )
            if key in dict(params):
                raise ValidationError(f"--evaluator {text!r}: {key} is given twice")
            params.append((key, value.strip()))
        if not params:
            raise ValidationError(
                f"--evaluator {text!r}: nothing after the colon", hint="write NAME, or NAME:key=value"
            )
        return cls(name, tuple(params), text)


def _split_params(text: str) -> list[str]:
    """Split ``a=1,b="x,y",c=[1, 2]`` at the commas that start a new ``key=``.

    A comma inside quotes or brackets, or one not followed by ``key=``,
    belongs to the value (a regex like ``\\d{1,3}`` keeps its comma).
    """
    pieces: list[str] = []
    current: list[str] = []
    quote: str | None = None
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"' and i + 1 < len(text):
                current.append(char + text[i + 1])
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0 and _KEY_RE.match(text[i + 1 :]):
            pieces.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if current or pieces:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def _field_types(cls: type) -> dict[str, Any]:
    try:
        attrs.resolve_types(cls)
    except Exception:  # an annotation that cannot be resolved: read every value as TOML
        return {}
    return {f.name: f.type for f in attrs.fields(cls)}


def _accepts(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return kind in getattr(annotation, "__args__", ()) and getattr(annotation, "__origin__", None) is not list


def _is_list(annotation: Any) -> bool:
    if annotation is list or getattr(annotation, "__origin__", None) is list:
        return True
    return any(_is_list(a) for a in getattr(annotation, "__args__", ()) if a is not type(None))


def _coerce(raw: str, annotation: Any, *, source: str, path: tuple[str, ...]) -> Any:
    from cairn.config_toml import check_values, read_value

    # One reader for every TOML value cairn takes: nesting and numbers bounded, NUL refused.
    parsed, value = read_value(raw, source=source)
    check_values({path[-1]: value}, file=source, prefix=path[:-1], locate=False)
    if annotation is None:
        return value
    if _is_list(annotation):
        if parsed and isinstance(value, list):
            return value
        return [piece.strip() for piece in raw.split("|")]
    if _accepts(annotation, str):
        # A text field takes the text as written; a quoted value loses its quotes.
        return value if parsed and isinstance(value, str) else raw
    return value


@attrs.frozen
class ConfiguredEvaluator:
    """An evaluator ready to run: its label in results, registered name, plugin and effective parameters."""

    label: str
    name: str
    plugin: str
    params: dict[str, Any]
    evaluator: Evaluator

    @property
    def kind(self) -> str:
        return self.evaluator.kind

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.evaluator.inputs)

    @property
    def threshold(self) -> float:
        return float(self.evaluator.threshold)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this evaluator."""
        return {
            "label": self.label,
            "name": self.name,
            "plugin": self.plugin,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "threshold": self.threshold,
            "params": self.params,
        }


def _empty_config() -> Config:
    from cairn.config import Config

    return Config(data={}, sources={})


def _with_params(config: Config, name: str, spec: EvaluatorSpec, config_cls: type) -> Config:
    """``config`` with the spec's parameters laid over ``[evaluators.<name>]``, remembered as their source."""
    if not spec.params:
        return config
    types = _field_types(config_cls)
    data = {**config.data}
    section = dict(data.get("evaluators") or {})
    table = dict(section.get(name) or {}) if isinstance(section.get(name), dict) else {}
    sources = dict(config.sources)
    for key, raw in spec.params:
        table[key] = _coerce(raw, types.get(key), source=f"--evaluator {spec.text}", path=("evaluators", name, key))
        sources[("evaluators", name, key)] = f"--evaluator {spec.text}"
    section[name] = table
    data["evaluators"] = section
    return attrs.evolve(config, data=data, sources=sources)


def _check_declarations(evaluator: Any, name: str, plugin: str) -> None:
    if not isinstance(evaluator, Evaluator):
        raise PluginError(
            f"evaluator {name!r}: the factory returned {type(evaluator).__name__}, not a cairn.evaluate.Evaluator",
            plugin=plugin,
        )
    kind = getattr(evaluator, "kind", None)
    if kind not in KINDS:
        raise PluginError(f"evaluator {name!r} declares kind {kind!r}; one of {', '.join(KINDS)}", plugin=plugin)
    inputs = tuple(getattr(evaluator, "inputs", ()))
    odd = [i for i in inputs if i not in INPUTS]
    if odd:
        raise PluginError(
            f"evaluator {name!r} needs unknown input(s) {', '.join(map(repr, odd))}; inputs are {', '.join(INPUTS)}",
            plugin=plugin,
        )
    threshold = getattr(evaluator, "threshold", None)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise PluginError(
            f"evaluator {name!r} has threshold {threshold!r}; a threshold is a number in [0, 1]", plugin=plugin
        )


def build_evaluators(
    specs: Iterable[str | EvaluatorSpec], plugins: Plugins, config: Config | None = None
) -> list[ConfiguredEvaluator]:
    """Evaluators from specs (``"exact"``, ``"regex:pattern=^a"``), each over its ``[evaluators.<name>]`` table.

    A spec's parameters override the table's keys. Unknown keys and wrong
    types are refused naming the key and where it was written, exactly as for
    any backend table. Two specs with the same label are refused.
    """
    from cairn.model import unstructure

    config = config if config is not None else _empty_config()
    out: list[ConfiguredEvaluator] = []
    seen: set[str] = set()
    for item in specs:
        spec = item if isinstance(item, EvaluatorSpec) else EvaluatorSpec.parse(item)
        if spec.label in seen:
            raise ValidationError(
                f"evaluator {spec.label!r} is given twice",
                hint="give each evaluator once, or with different parameters",
            )
        seen.add(spec.label)
        registration = plugins.evaluators.get(spec.name)
        effective = _with_params(config, spec.name, spec, registration.config_cls)
        settings: object = effective.structure_table(("evaluators", spec.name), registration.config_cls)
        evaluator = plugins.create("evaluators", spec.name, effective)
        _check_declarations(evaluator, spec.name, registration.plugin)
        evaluator.name = spec.name
        params = unstructure(settings) if attrs.has(type(settings)) else {}
        out.append(ConfiguredEvaluator(spec.label, spec.name, registration.plugin, params, evaluator))
    return out


@attrs.frozen
class EvaluatorInfo:
    """What ``cairn evaluators`` shows about one registered evaluator."""

    name: str
    kind: str | None
    inputs: list[str]
    threshold: float | None
    plugin: str
    description: str
    parameters: dict[str, Any]
    configured: bool
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def describe_evaluators(plugins: Plugins, config: Config | None = None) -> list[EvaluatorInfo]:
    """Every registered evaluator, built from its table to learn its kind, inputs and threshold.

    One that cannot be built as configured (a required key unset, a bad
    value) is listed with the problem, and with what its class declares when
    the factory is an ``Evaluator`` class.
    """
    from cairn.model import unstructure

    config = config if config is not None else _empty_config()
    out: list[EvaluatorInfo] = []
    tables = config.table("evaluators")
    for registration in plugins.evaluators:
        configured = isinstance(tables.get(registration.name), dict)
        parameters: dict[str, Any] = {}
        try:
            settings: object = config.structure_table(("evaluators", registration.name), registration.config_cls)
            parameters = unstructure(settings) if attrs.has(type(settings)) else {}
            evaluator = plugins.create("evaluators", registration.name, config)
            _check_declarations(evaluator, registration.name, registration.plugin)
            out.append(
                EvaluatorInfo(
                    registration.name,
                    evaluator.kind,
                    list(evaluator.inputs),
                    float(evaluator.threshold),
                    registration.plugin,
                    registration.description,
                    parameters,
                    configured,
                    None,
                )
            )
        except CairnError as exc:
            if not parameters:
                parameters = {f.name: _jsonable_default(f) for f in attrs.fields(registration.config_cls)}
            kind, inputs, threshold = _declared(registration.factory)
            out.append(
                EvaluatorInfo(
                    registration.name,
                    kind,
                    inputs,
                    threshold,
                    registration.plugin,
                    registration.description,
                    parameters,
                    configured,
                    str(exc),
                )
            )
    return out


def _declared(factory: Any) -> tuple[str | None, list[str], float | None]:
    """What a factory says of its evaluators without building one: an ``Evaluator`` class declares
    ``kind``, ``inputs`` and ``threshold``, and any factory may carry the same attributes."""
    kind = getattr(factory, "kind", None)
    if kind not in KINDS:
        return None, [], None
    inputs = getattr(factory, "inputs", ())
    threshold = getattr(factory, "threshold", None)
    return (
        kind,
        [i for i in inputs if i in INPUTS] if isinstance(inputs, (tuple, list)) else [],
        float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else None,
    )


def _jsonable_default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    # attrs' stubs declare Factory a function (it returns the default's type); at run time it is a class.
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    if default is attrs.NOTHING:
        return None
    try:
        json.dumps(default)
    except (TypeError, ValueError):
        return repr(default)
    return default
