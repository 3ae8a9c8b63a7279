"""Model builders, one family per module: ``build(input_shape, num_classes, **hparams)``.

A model is chosen by ``conf/model/<name>.yaml`` whose ``name`` is a module here. Adding a
model is one file here plus one yaml; nothing else is edited. The yaml's other keys are the
builder's keyword arguments, checked against its signature before any work.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from audioclf.config import ConfigError, convert


def available() -> list[str]:
    """Names of the model modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hparams: dict[str, Any]


def get_builder(name: str) -> Callable[..., Any]:
    if name not in available():
        raise ConfigError(
            f"model.name: unknown model {name!r}. Available models: {', '.join(available())} "
            "(pick one with `dvc exp run -S model=<name>`)"
        )
    return importlib.import_module(f"{__name__}.{name}").build


def parse_model(data: Any, key: str = "model") -> ModelConfig:
    """Validate the ``model`` section: a known ``name`` and hparams the builder accepts."""
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(f"{key}.name: required; available models: {', '.join(available())}")
    name = data["name"]
    build = get_builder(name)
    sig = inspect.signature(build)
    hints = typing.get_type_hints(build)
    allowed = [p for p in sig.parameters if p not in ("input_shape", "num_classes")]
    hparams = {}
    for k, v in data.items():
        if k == "name":
            continue
        if k not in allowed:
            raise ConfigError(
                f"{key}.{k}: unknown hyperparameter for model {name!r}. "
                f"Allowed: {', '.join(allowed)}"
            )
        hparams[k] = convert(hints.get(k, Any), v, f"{key}.{k}")
    return ModelConfig(name, hparams)
