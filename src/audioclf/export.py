"""The exported model: raw waveform in, class probabilities out.

Training runs on the cached features; the exported model wraps the trained network with a
``FeatureLayer`` that computes those same features inside the model (the one implementation
in ``audioclf.features``), so it needs no cache and no preprocessing code beyond reading audio.
A pretrained backbone (``features=choi2017``, or ``features=trained``: a network trained by this
pipeline, its architecture saved in the layer's config) becomes part of that layer, its weights
saved in the file: loading the model needs neither the download nor the backbone's file.
Its input is the clip at the features' sample rate: (clips, samples) float32 in [-1, 1].

Saved as ``inference.keras`` with ``inference.json`` beside it (classes, sample rate, clip
length, features config); ``load`` restores both. Importing this module imports TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.features import input_rate, input_samples, make_transform, parse_features
from audioclf.tfimport import import_tensorflow

import_tensorflow()  # quiet, then Keras on its TensorFlow backend
import keras  # noqa: E402

from audioclf.specaugment import layer_class  # noqa: E402

layer_class()  # registers the SpecAugment layer a trained model may hold

MODEL_FILE = "inference.keras"
META_FILE = "inference.json"


@keras.saving.register_keras_serializable(package="audioclf")
class FeatureLayer(keras.layers.Layer):
    """(clips, samples) waves -> (clips, frames, bins) features, as in the feature cache."""

    def __init__(
        self,
        features: dict[str, Any],
        sample_rate: int,
        backbone: dict[str, Any] | None = None,
        **kwargs,
    ) -> None:
        kwargs["trainable"] = False  # no weights: a fixed transform
        super().__init__(**kwargs)
        self.features = dict(features)
        self.sample_rate = int(sample_rate)  # of the input waves
        cfg = parse_features(self.features)
        # A backbone trained by this pipeline (features=trained): its architecture is saved in
        # this layer's config, so loading the exported model needs neither its file nor MLflow.
        self._stores_architecture = getattr(cfg, "stores_architecture", False)
        if backbone is not None:
            network = keras.saving.deserialize_keras_object(backbone)
        else:
            network = cfg.network()
        if network is None:
            self._transform = make_transform(cfg, self.sample_rate)
        else:
            # A pretrained backbone: tracked as an attribute, so its weights are saved in
            # inference.keras and restored on loading (``build`` sets them the first time).
            self.backbone = network
            self._transform = cfg.apply(network)

    def call(self, waves):
        return self._transform(waves)

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "features": self.features,
            "sample_rate": self.sample_rate,
        }
        if self._stores_architecture:
            config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config


@dataclass(frozen=True)
class Exported:
    model: Any  # keras.Model: (clips, clip_samples) -> (clips, classes)
    classes: list[str]
    sample_rate: int  # Hz of the input waves
    clip_samples: int  # samples per input clip


def build(trained, features: dict[str, Any], prepared_rate: int, prepared_samples: int):
    """Wrap ``trained`` ((clips, frames, bins) -> probs) to take the raw waveform."""
    cfg = parse_features(features)
    rate = input_rate(cfg, prepared_rate)
    waves = keras.Input(shape=(input_samples(cfg, prepared_rate, prepared_samples),), name="wave")
    layer = FeatureLayer(features, rate, name="features")
    if hasattr(layer, "backbone"):
        cfg.load_pretrained(layer.backbone)
    outputs = trained(layer(waves))
    return keras.Model(waves, outputs, name=f"{trained.name}_wave")


def save(model, folder: Path, classes: list[str], model_name: str) -> None:
    """Write ``inference.keras`` and ``inference.json`` into ``folder``."""
    layer = model.get_layer("features")
    meta = {
        "model": model_name,
        "classes": list(classes),
        "sample_rate": layer.sample_rate,
        "clip_samples": int(model.input_shape[1]),
        "features": layer.features,
    }
    model.save(folder / MODEL_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load(folder: str | Path) -> Exported:
    """Load an exported model; the error names what is missing and how to make it."""
    folder = Path(folder)
    for name in (MODEL_FILE, META_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name}: no exported model there. Train one with `dvc repro` "
                "(it writes data/model/), or pass the folder that holds inference.keras"
            )
    meta = json.loads((folder / META_FILE).read_text())
    model = keras.models.load_model(folder / MODEL_FILE)
    return Exported(model, meta["classes"], meta["sample_rate"], meta["clip_samples"])


def predict(model, waves: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(clips, samples) float32 -> (clips, classes) probabilities."""
    return model.predict(np.asarray(waves, dtype=np.float32), batch_size=batch_size, verbose=0)
