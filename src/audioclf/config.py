"""Typed params: build frozen dataclasses from the plain dicts in params.yaml.

Every stage turns the params sections it reads into one of these schemas before doing any
work, so a typo or a bad value fails at once with a message that names the key (as a dotted
path, e.g. ``features.n_mels``), the bad value and what is allowed.

Schemas are ordinary frozen dataclasses. Field types may be ``int``, ``float``, ``str``,
``bool``, ``Literal[...]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[K, V]``, ``X | None`` or
another dataclass. Extra checks (ranges, relations between fields) go in ``__post_init__`` and raise
:class:`ConfigError` through :func:`check`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params value that does not fit its schema; the message says which key and why."""


def repo_root() -> Path:
    """The repository root: ``DVC_ROOT`` (set by DVC for every stage; in a queued experiment,
    which runs in a temporary copy, it still names the real repository), else the current
    directory. Relative user paths and the MLflow store are taken from here."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    """The MLflow store: ``MLFLOW_TRACKING_URI``, else ``<repo root>/mlflow.db`` (SQLite). Here,
    not in audioclf.tracking, so that a stage that only looks a run up (a backbone given as
    ``runs:/<id>``) does not depend on the tracking code."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def check(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError for ``key`` unless ``ok``; for use in ``__post_init__``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml (composed from conf/ by `dvc exp run`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: not found. It is composed from conf/ by `dvc exp run`; "
            "run the stage from the repository root."
        )
    with path.open() as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def section(params: Mapping[str, Any], dotted: str) -> Any:
    """Return ``params[a][b]...`` for ``dotted = "a.b"``, naming the missing key if absent."""
    node: Any = params
    walked = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            have = ", ".join(sorted(node)) if isinstance(node, Mapping) else ""
            raise ConfigError(
                f"{'.'.join(walked)}: missing from params.yaml (present: {have or 'none'})"
            )
        node = node[part]
    return node


def parse(cls: type[T], data: Any, key: str) -> T:
    """Build dataclass ``cls`` from mapping ``data`` found at dotted ``key``; validate all."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: unknown option. Allowed options: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, field in fields.items():
        sub = f"{key}.{name}"
        if name in data:
            kwargs[name] = convert(hints[name], data[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required option is missing")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        # __post_init__ checks name the field relative to the schema; prefix the section.
        msg = str(err)
        raise ConfigError(msg if msg.startswith(key) else f"{key}.{msg}") from None


def convert(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` (found at ``key``) against type ``tp``; return it converted."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: must be set, got null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key}: {_show(value)} fits none of {tp}"
        )
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key}: unknown value {value!r}. Allowed: {', '.join(map(str, allowed))}"
            )
        return value
    if origin is dict:
        key_type, value_type = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {_show(value)}")
        return {
            convert(key_type, k, f"{key}.{k}"): convert(value_type, v, f"{key}.{k}")
            for k, v in value.items()
        }
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {_show(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} items, got {_show(value)}")
        return tuple(convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"{key}: unsupported schema type {tp!r}")


def parse_kwargs(
    fn: Any,
    data: Mapping[str, Any],
    key: str,
    skip: tuple[str, ...] = (),
    unknown: str = "unknown argument",
    typed: bool = True,
) -> dict[str, Any]:
    """Check ``data`` (found at ``key``) as keyword arguments of ``fn``: every key one of its
    parameters (less ``skip``), every required one present; with ``typed``, each value
    converted to its annotated type. The message for a stray key is ``"<key>.<k>: <unknown>.
    Allowed: ..."``."""
    params = inspect.signature(fn).parameters
    allowed = [
        n
        for n, p in params.items()
        if n not in ("self", *skip) and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    for k in data:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}: {unknown}. Allowed: {', '.join(allowed)}")
    missing = [n for n in allowed if n not in data and params[n].default is params[n].empty]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}: required")
    if not typed:
        return dict(data)
    hints = typing.get_type_hints(fn)
    return {k: convert(hints.get(k, Any), v, f"{key}.{k}") for k, v in data.items()}


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def to_dict(obj: Any) -> Any:
    """A schema instance back to plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat
