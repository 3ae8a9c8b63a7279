"""The exported detector: the raw wave in, per-step trigger scores out.

``data/trigger/model/detector.keras`` is the trained network behind the features it was
trained on, computed in the graph (``audioclf.export.FeatureLayer``, the one implementation
in ``audioclf.features``), behind ``pad_samples`` zeros put before the wave (see
``audioclf.trigger.models.Geometry``): float32 (clips, samples) at ``sample_rate`` ->
float32 (clips, samples // step_samples) sigmoid scores, step ``i`` ending at
``first_step_seconds + i * step_seconds``. Any length is accepted; the model was trained on
clips of ``clip_seconds``. Its inner model ``unpadded`` (the same without the zeros in front)
is what exact streaming runs (audioclf.trigger.streaming).

``detector.json`` beside it: ``model``, ``sample_rate``, ``clip_seconds``, ``step_seconds``,
``first_step_seconds``, ``streamable`` (the contract's keys), and ``step_samples``,
``receptive_samples``, ``pad_samples``. Importing this module imports TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.export import FeatureLayer
from audioclf.tfimport import import_tensorflow
from audioclf.trigger.models import Geometry

tf = import_tensorflow()  # quiet, then Keras on its TensorFlow backend
import keras  # noqa: E402

MODEL_FILE = "detector.keras"
META_FILE = "detector.json"


@keras.saving.register_keras_serializable(package="audioclf.trigger")
class LeftPad(keras.layers.Layer):
    """(clips, samples) -> (clips, pad + samples): ``pad`` zeros before each wave."""

    def __init__(self, pad: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, waves):
        return tf.pad(waves, [[0, 0], [self.pad, 0]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pad": self.pad}


def build(trained, features: dict[str, Any], geo: Geometry):  # -> keras.Model
    """Wrap ``trained`` ((clips, frames, bins) -> (clips, steps)) to take the raw wave."""
    # The trained model's layers in a new, uncompiled model: the detector must not carry the
    # training loss (audioclf.trigger.training's WeightedBCE), which a process that never
    # imported it could not load.
    trained = keras.Model(trained.inputs, trained.outputs, name=trained.name)
    wave = keras.Input(shape=(None,), name="wave")
    feats = FeatureLayer(features, geo.sample_rate, name="features")(wave)
    unpadded = keras.Model(wave, trained(feats), name="unpadded")
    padded = keras.Input(shape=(None,), name="wave")
    scores = unpadded(LeftPad(geo.pad_samples, name="pad")(padded))
    return keras.Model(padded, scores, name=f"{trained.name}_detector")


def save(model, folder: Path, model_name: str, geo: Geometry, clip_seconds: float,
         streamable: bool) -> dict[str, Any]:  # fmt: skip
    """Write ``detector.keras`` and ``detector.json`` into ``folder``; the metadata."""
    meta = {
        "model": model_name,
        "sample_rate": geo.sample_rate,
        "clip_seconds": float(clip_seconds),
        "step_seconds": geo.step_seconds,
        "first_step_seconds": geo.first_step_seconds,
        "streamable": bool(streamable),
        "step_samples": geo.step_samples,
        "receptive_samples": geo.receptive_samples,
        "pad_samples": geo.pad_samples,
    }
    model.save(folder / MODEL_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


@dataclass(frozen=True)
class Detector:
    """A loaded detector: the wave model and where its steps fall."""

    model: Any  # keras.Model (clips, samples) -> (clips, samples // step_samples)
    model_name: str
    sample_rate: int  # Hz of the input waves
    clip_seconds: float  # length of the training clips (conv_gru's streaming window)
    step_seconds: float
    first_step_seconds: float
    streamable: bool  # True: stream_scores carries the state exactly
    step_samples: int
    receptive_samples: int

    def __post_init__(self) -> None:
        # Graph functions of both models, traced once for any (clips, samples): run eagerly,
        # a GRU steps through time in Python (a 2-s window took ~1 s; traced, milliseconds).
        spec = [tf.TensorSpec([None, None], tf.float32)]
        for attr, model in (
            ("_padded", self.model),
            ("_unpadded", self.model.get_layer("unpadded")),
        ):
            fn = tf.function(lambda x, m=model: m(x, training=False), input_signature=spec)
            object.__setattr__(self, attr, fn)

    @property
    def pad_samples(self) -> int:
        return self.receptive_samples - self.step_samples

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def step_times(self, n_steps: int) -> np.ndarray:
        """(n_steps,) float64 seconds from the wave's start at which each step ends."""
        return self.first_step_seconds + self.step_seconds * np.arange(n_steps)

    def scores(self, waves: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(clips, samples) float32 -> (clips, samples // step_samples) float32 scores."""
        return self._run(self._padded, waves, batch_size)

    def unpadded_scores(self, waves: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The same without the zeros in front: (clips, n) with n = 1 + (samples - R) // S
        (0 when shorter than R); step j sees samples [S j, S j + R). Streaming's core."""
        waves = np.asarray(waves, dtype=np.float32)
        if waves.shape[1] < self.receptive_samples:
            return np.zeros((len(waves), 0), np.float32)
        return self._run(self._unpadded, waves, batch_size)

    def _run(self, fn, waves: np.ndarray, batch_size: int) -> np.ndarray:
        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2:
            raise ValueError(f"waves: expected (clips, samples) float32, got shape {waves.shape}")
        out = [
            fn(tf.constant(waves[i : i + batch_size])).numpy()
            for i in range(0, len(waves), batch_size)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def load_detector(path: str | Path) -> Detector:
    """Load ``detector.keras`` and ``detector.json`` from ``path`` (the folder, or the .keras
    file); the error names what is missing and how to make it."""
    folder = Path(path)
    if folder.suffix == ".keras":
        folder = folder.parent
    for name in (MODEL_FILE, META_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name}: no trigger detector there. Train one with "
                "`dvc repro trigger/dvc.yaml` (it writes data/trigger/model/), or pass the "
                "folder that holds detector.keras and detector.json"
            )
    meta = json.loads((folder / META_FILE).read_text())
    model = keras.models.load_model(folder / MODEL_FILE, compile=False)
    return Detector(
        model=model,
        model_name=meta["model"],
        sample_rate=int(meta["sample_rate"]),
        clip_seconds=float(meta["clip_seconds"]),
        step_seconds=float(meta["step_seconds"]),
        first_step_seconds=float(meta["first_step_seconds"]),
        streamable=bool(meta["streamable"]),
        step_samples=int(meta["step_samples"]),
        receptive_samples=int(meta["receptive_samples"]),
    )
