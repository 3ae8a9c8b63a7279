"""SpecAugment (Park et al., 2019): random time and frequency masks, in training only.

``SpecAugmentConfig`` is the schema of ``augment.spec_augment``. The Keras layer
(``layer_class()``) sits after the per-bin standardisation, so a masked cell is set to 0, the
training mean of its bin. At inference (``training`` false) it passes its input through, so a
saved model that contains it predicts exactly as one without it. The layer is defined, and
registered for loading saved models, on the first call of ``layer_class()``: it needs Keras,
which costs seconds to import, and the schema must not.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from audioclf.config import check
from audioclf.tfimport import import_tensorflow


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Time and frequency masks on the (standardised) spectrogram, in training only."""

    freq_masks: int = 0  # masks per clip along the frequency axis; 0 = none
    freq_width: int = 0  # each one's width, uniform in [0, freq_width] bins
    time_masks: int = 0  # masks per clip along the time axis
    time_width: int = 0  # each one's width, uniform in [0, time_width] frames

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return bool(self.freq_masks * self.freq_width or self.time_masks * self.time_width)


@functools.cache
def layer_class() -> type:
    """The ``SpecAugment`` Keras layer class, registered for loading saved models."""
    import_tensorflow()  # quiet, then Keras on its TensorFlow backend
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="audioclf")
    class SpecAugment(keras.layers.Layer):
        """(batch, frames, bins) -> same shape; ``*_masks`` masks of width uniform in
        [0, ``*_width``] at uniform positions, drawn per clip."""

        def __init__(
            self,
            freq_masks: int = 2,
            freq_width: int = 8,
            time_masks: int = 2,
            time_width: int = 10,
            seed: int | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
            self.time_masks, self.time_width = int(time_masks), int(time_width)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def _masks(self, batch, length: int, count: int, width: int):
            """(batch, length) float mask, 1 where any of ``count`` random bands covers."""
            if count == 0 or width == 0:
                return ops.zeros((batch, length))
            width = min(width, length)
            u = keras.random.uniform((batch, count, 2), seed=self.seed_generator)
            widths = ops.floor(u[..., 0] * (width + 1))  # uniform in {0..width}
            starts = ops.floor(u[..., 1] * (length - widths + 1))  # band fits in the axis
            pos = ops.arange(length, dtype="float32")[None, None, :]
            inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
            return ops.max(ops.cast(inside, "float32"), axis=1)

        def call(self, x, training=None):
            if not training:
                return x
            batch = ops.shape(x)[0]
            frames, bins = x.shape[1], x.shape[2]
            time = self._masks(batch, frames, self.time_masks, self.time_width)[:, :, None]
            freq = self._masks(batch, bins, self.freq_masks, self.freq_width)[:, None, :]
            keep = (1.0 - time) * (1.0 - freq)
            return x * ops.cast(keep, x.dtype)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "freq_masks": self.freq_masks,
                "freq_width": self.freq_width,
                "time_masks": self.time_masks,
                "time_width": self.time_width,
                "seed": self.seed,
            }

    return SpecAugment
