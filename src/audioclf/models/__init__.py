"""Model builders, one family per module: ``build(input_shape, num_classes, **hparams)``.

A builder raises a plain ``ValueError`` ("dropout: must be in [0, 1)") for a hyperparameter it
refuses; ``build_model`` names the key (``model.dropout``).

A model is chosen by ``conf/model/<name>.yaml`` whose ``model.name`` is a module here. Adding a
model is one file here plus one yaml; nothing else is edited. A module with
``KIND = "sklearn"`` builds an unfitted linear scikit-learn estimator instead of a Keras model;
``audioclf.linear`` fits it and turns it into a Dense softmax layer. The yaml's other ``model`` keys
are the builder's keyword arguments, checked against its signature before any work.

Each module declares ``INPUT``, the kind of input its builder is written for: ``"wave"``
(``input_shape`` = (samples, 1)), ``"spectrogram"`` ((frames, bins)) or ``"embedding"``
((1, size): a pretrained backbone's features, e.g. ``features=choi2017``). Its yaml picks the
matching features option (``override /features: ...`` in its defaults list), so choosing a
model chooses its input and models with the same features share one cached feature set.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from audioclf.config import ConfigError, parse_kwargs


def available() -> list[str]:
    """Names of the model modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


INPUTS = ("wave", "spectrogram", "embedding")

# Every model's batch norm keeps moving statistics with momentum 0.9 (PyTorch's 0.1), not
# Keras' 0.99. With 0.99 the statistics used at inference lag the training ones for the first
# few hundred steps: bc_resnet and ds_cnn predicted one class for every clip, and spec_cnn2d
# without augmentation (28 steps per epoch) stayed at chance on validation until early
# stopping ended it at epoch 7 (measured, test accuracy 0.117).
BN_MOMENTUM = 0.9


KINDS = ("keras", "sklearn")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    input: str  # "wave", "spectrogram" or "embedding", from the module's INPUT
    hparams: dict[str, Any]
    kind: str = "keras"  # the module's KIND: "sklearn" = build gives an unfitted estimator


def get_builder(name: str) -> Callable[..., Any]:
    if name not in available():
        raise ConfigError(
            f"model.name: unknown model {name!r}. Available models: {', '.join(available())} "
            "(pick one with `dvc exp run -S model=<name>`)"
        )
    return importlib.import_module(f"{__name__}.{name}").build


def input_kind(name: str) -> str:
    kind = getattr(importlib.import_module(f"{__name__}.{name}"), "INPUT", None)
    if kind not in INPUTS:
        raise ConfigError(f"model {name!r}: its module must set INPUT to one of {INPUTS}")
    return kind


def model_kind(name: str) -> str:
    kind = getattr(importlib.import_module(f"{__name__}.{name}"), "KIND", "keras")
    if kind not in KINDS:
        raise ConfigError(f"model {name!r}: its module's KIND must be one of {KINDS}")
    return kind


def build_model(model: ModelConfig, input_shape: tuple[int, ...], num_classes: int):
    """The configured network (a ``keras.Model``, or for ``kind == "sklearn"`` an unfitted
    scikit-learn estimator); a refused hyperparameter names its key."""
    try:
        return get_builder(model.name)(input_shape, num_classes, **model.hparams)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"model.{err}") from None


def check_input(model: ModelConfig, features_type: str, conf: Path = Path("conf")) -> None:
    """Refuse features the model is not written for, naming the options that fit.

    The options are read from ``conf/features/*.yaml``, only when the check fails.
    """
    from audioclf.features import FEATURE_TYPES

    def kind(type_: object) -> str | None:
        return FEATURE_TYPES[type_].input_kind if type_ in FEATURE_TYPES else None

    if kind(features_type) == model.input:
        return
    fitting = []
    for path in sorted((conf / "features").glob("*.yaml")):
        if kind((yaml.safe_load(path.read_text()) or {}).get("type")) == model.input:
            fitting.append(path.stem)
    what = {"wave": "a raw waveform", "spectrogram": "a spectrogram"}.get(
        model.input, "a pretrained backbone's embedding"
    )
    picks = " or ".join(f"`-S features={o}`" for o in fitting) or "a matching features option"
    raise ConfigError(
        f"features.type: model {model.name!r} takes {what} but features.type is "
        f"{features_type!r}. Pick {picks} (or drop the features override: each model's "
        "yaml selects its own features)"
    )


def parse_model(data: Any, key: str = "model") -> ModelConfig:
    """Validate the ``model`` section: a known ``name`` and hparams the builder accepts."""
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(f"{key}.name: required; available models: {', '.join(available())}")
    name = data["name"]
    hparams = parse_kwargs(
        get_builder(name),
        {k: v for k, v in data.items() if k != "name"},
        key,
        skip=("input_shape", "num_classes"),
        unknown=f"unknown hyperparameter for model {name!r}",
    )
    return ModelConfig(name, input_kind(name), hparams, model_kind(name))
