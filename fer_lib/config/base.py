"""Building configs from plain dicts, checking them, hashing them.

``from_dict`` builds a (nested) dataclass from plain dicts and rejects unknown keys, wrong types and values
out of range with a message that names the parameter's dotted path, the value and what is accepted, e.g.
``ConfigError: teachers.resnet18.train.lr: expected a finite number > 0, got -0.001``.
Each dataclass checks its own fields in ``__post_init__`` with ``check(self, field=RULE, ...)``; the error
names the field, and ``from_dict`` prefixes the path it was building. ``to_dict`` is the inverse of
``from_dict``; ``config_hash`` is the stable digest the run store keys on.

Key stability: ``key_fields`` is what a run's key hashes. A field declared with ``added_field`` (a field added after
runs were keyed) is left out of it while it holds its default, so adding a field whose default keeps the old
behaviour leaves every existing key unchanged; set to anything else, it enters the key. A class retires a field by
naming its last value in ``RETIRED_KEY_FIELDS``: the key keeps the value the stored runs were computed with.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from typing import Any, Callable


class ConfigError(ValueError):
    """A parameter is missing, unknown or of the wrong type/value."""


class FieldError(ConfigError):
    """A field of a dataclass failed its check; ``from_dict`` adds the path in front of ``field``."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# ----------------------------------------------------------------------------- value rules
Rule = tuple[Callable[[Any], bool], str]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def between(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    """A finite number in the interval, e.g. ``between(0, 1, hi_open=True)`` is [0, 1)."""
    def ok(v):
        if not _finite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    if lo is not None and hi is not None:
        text = f"a finite number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"a finite number {'>' if lo_open else '>='} {lo}"
    elif hi is not None:
        text = f"a finite number {'<' if hi_open else '<='} {hi}"
    else:
        text = "a finite number"
    return ok, text


POSITIVE = between(0, lo_open=True)
NONNEG = between(0)
PROB = between(0, 1)
FINITE = between()


def at_least(n: int) -> Rule:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n), f"an integer >= {n}"


def one_of(*allowed) -> Rule:
    return (lambda v: v in allowed), f"one of {', '.join(map(str, allowed))}"


def optional(rule: Rule) -> Rule:
    ok, text = rule
    return (lambda v: v is None or ok(v)), f"null or {text}"


def check(obj, **rules: Rule) -> None:
    """Raise ``FieldError`` naming the first field of ``obj`` whose value breaks its rule."""
    for name, (ok, text) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            raise FieldError(name, f"expected {text}, got {value!r}")


def check_range_pair(obj, name: str, lo=None, hi=None) -> None:
    """A (low, high) pair of finite numbers with low <= high, inside [lo, hi] when given."""
    a, b = getattr(obj, name)
    inside = between(lo, hi)[0]
    if not (inside(a) and inside(b) and a <= b):
        where = f" within [{lo}, {hi}]" if lo is not None or hi is not None else ""
        raise FieldError(name, f"expected [low, high] with low <= high{where}, got {[a, b]}")


# ----------------------------------------------------------------------------- dict <-> dataclass
def deep_merge(base: dict, override: dict | None) -> dict:
    """``base`` updated recursively with ``override`` (dicts merge, everything else replaces)."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls, d: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``d``; errors name the offending key path."""
    if d is None:
        d = {}
    if isinstance(d, cls):
        return d
    if not isinstance(d, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ConfigError(
            f"{_join(where, sorted(unknown)[0])}: unknown key; expected one of {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, _join(where, k)) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise ConfigError(f"{_join(where or cls.__name__, e.field)}: {e.message}") from None
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(tp, value, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is Any:
        return value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: expected a list, got {value!r}")
            return tuple(_coerce(args[0], v, where) for v in value)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp in _SCALARS:
        what, accepts = _SCALARS[tp]
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, accepts):
            raise ConfigError(f"{where}: expected {what}, got {value!r}")
        return tp(value)
    return value


#: a scalar field's type -> (what the error says it expects, the YAML values it accepts); a bool is accepted only
#: where the field is a bool (YAML's ``true`` is not the integer 1 here)
_SCALARS = {bool: ("true/false", bool), int: ("an integer", int), float: ("a number", (int, float)),
            str: ("a string", str)}


def build(cls, where: str, **kwargs):
    """``cls(**kwargs)`` whose field errors name the parameter's path (``where.field``)."""
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise ConfigError(f"{_join(where, e.field)}: {e.message}") from None


def to_dict(cfg) -> dict:
    """Plain-data view of a config (tuples become lists, as in YAML/JSON)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


ADDED = "fer_lib.added_since"


def added_field(default=dataclasses.MISSING, *, since: str, default_factory=dataclasses.MISSING, **kwargs):
    """A config field added after runs were keyed (``since``: the date or version it came in). While it holds its
    default it stays out of the run key (``key_fields``), so the runs stored before it keep their keys."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={**kwargs.pop("metadata", {}), ADDED: since}, **kwargs)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _key_value(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.key_dict() if hasattr(value, "key_dict") else key_fields(value)
    if isinstance(value, (list, tuple)):
        return [_key_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _key_value(v) for k, v in value.items()}
    return value


def key_fields(cfg, drop: tuple[str, ...] = ()) -> dict:
    """The plain-data view of ``cfg`` that a run key hashes: ``to_dict(cfg)`` without the fields in ``drop``, without
    every ``added_field`` that holds its default (at any depth; a nested config with its own ``key_dict`` gives that), and with the class's ``RETIRED_KEY_FIELDS``.

    For a config with no added or retired fields this equals ``to_dict(cfg)`` minus ``drop``."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in drop or (ADDED in f.metadata and value == _default(f)):
            continue
        out[f.name] = _key_value(value)
    out.update(getattr(type(cfg), "RETIRED_KEY_FIELDS", {}))
    return json.loads(json.dumps(out))


def config_hash(*parts: Any) -> str:
    """sha256 over the canonical JSON of ``parts`` (sorted keys), hex."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
