"""The trigger-word networks: per-step sigmoid scores from a log-mel spectrogram.

Two families, chosen by ``conf/trigger/model/<name>.yaml`` (``trigger.model.name``):

- ``conv_gru``, the course's reference: Conv1D(196, 15, stride 4) -> batch norm -> ReLU ->
  dropout -> GRU(128, sequences) -> dropout -> batch norm -> GRU(128, sequences) -> dropout ->
  batch norm -> dropout -> Dense(1, sigmoid) per step. Causal (valid convolution,
  unidirectional GRUs), but its state runs from the clip start: it is trained on clips and
  streamed in overlapping clip-length windows (audioclf.trigger.streaming).
- ``stream_cnn``, a small causal CNN in the spirit of kws_streaming / microWakeWord: a strided
  Conv1D front end, then dilated Conv1D blocks (kernel 3, dilations 1, 2, 4, 8, ...) with
  valid padding, each step seeing a finite past (its receptive field, ~1.3 s by default). It
  streams exactly: the state is the last receptive field of samples.

Geometry. Both read log-mel frames (default: 25 ms Hann window, 10 ms hop, 40 bands at
16 kHz; the reference reads a 101-bin linear spectrogram of 44.1 kHz audio with a 200-sample
window and 80-sample hop, 5511 frames per 10 s, which its stride 4 turns into 1375 steps of
7.3 ms). Here a step is ``stride x hop`` = 40 ms: 250 steps per 10 s clip. Every convolution
is valid (no padding), so output step ``i`` sees exactly the samples ``[S i, S i + R)`` of
its input, ``S`` = step samples, ``R`` = receptive samples (``Geometry``). The detector pads
``R - S`` zero samples in front of the wave (``Geometry.pad_samples``), so a wave of ``n``
samples gives ``n // S`` steps and step ``i`` is emitted once the sample ``S (i + 1)`` has
arrived: step times ``S (i + 1) / rate`` (first step 0.04 s, step 0.04 s).

``build(cfg, bins)`` is a pure builder: (clips, frames, bins) features -> (clips, steps)
scores. TensorFlow is imported only inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from audioclf.config import ConfigError, check, parse
from audioclf.features import StftConfig, parse_features

# Batch norm's moving statistics with momentum 0.9 (not Keras' 0.99), as the classifier's
# models do (audioclf.models.BN_MOMENTUM): with 0.99 they lag the training ones for hundreds of
# steps, and a short training run (16 batches per epoch here) evaluates with stale statistics.
BN_MOMENTUM = 0.9

DEFAULT_FEATURES: dict[str, Any] = {
    "type": "logmel",
    "window_ms": 25.0,
    "hop_ms": 10.0,
    "n_mels": 40,
}


def _spectrogram(features: dict[str, Any]) -> StftConfig:
    """The features block as a spectrogram config; refuses other types and resampling."""
    cfg = parse_features(features, "features")
    check(
        isinstance(cfg, StftConfig),
        "features.type",
        f"must be a spectrogram (stft, logspec, logmel, mfcc), got {cfg.type!r}",
    )
    check(
        cfg.sample_rate is None,
        "features.sample_rate",
        "must be null: the detector runs at the data's sample rate (trigger.data)",
    )
    return cfg


@dataclass(frozen=True)
class ConvGruConfig:
    """The reference Conv1D + two GRUs (kernel/stride in feature frames)."""

    name: Literal["conv_gru"] = "conv_gru"
    features: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_FEATURES))
    conv_filters: int = 196
    conv_kernel: int = 15  # frames
    conv_stride: int = 4  # frames per output step
    gru_units: int = 128
    dropout: float = 0.2  # every dropout layer (the course's Keras code drops 0.8)

    def __post_init__(self) -> None:
        _spectrogram(self.features)
        for key in ("conv_filters", "conv_kernel", "conv_stride", "gru_units"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")

    def feature_config(self) -> StftConfig:
        return _spectrogram(self.features)

    def frames(self) -> tuple[int, int]:
        """(receptive field, stride) of one output step, in feature frames."""
        return self.conv_kernel, self.conv_stride


@dataclass(frozen=True)
class StreamCnnConfig:
    """Strided Conv1D front end, then causal dilated Conv1D blocks (valid padding)."""

    name: Literal["stream_cnn"] = "stream_cnn"
    features: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_FEATURES))
    front_filters: int = 64
    front_kernel: int = 5  # frames
    front_stride: int = 4  # frames per output step
    filters: int = 64  # of each dilated block
    kernel: int = 3  # steps, of each dilated block
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # one block each; receptive field grows with sum
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _spectrogram(self.features)
        for key in ("front_filters", "front_kernel", "front_stride", "filters", "kernel"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(
            all(d >= 1 for d in self.dilations),
            "dilations",
            f"must all be >= 1, got {list(self.dilations)}",
        )
        check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")

    def feature_config(self) -> StftConfig:
        return _spectrogram(self.features)

    def frames(self) -> tuple[int, int]:
        steps = 1 + sum((self.kernel - 1) * d for d in self.dilations)  # of the front conv
        return self.front_kernel + self.front_stride * (steps - 1), self.front_stride


MODELS: dict[str, type] = {"conv_gru": ConvGruConfig, "stream_cnn": StreamCnnConfig}
STREAMABLE = {"conv_gru": False, "stream_cnn": True}  # exact chunk-by-chunk state

ModelConfig = ConvGruConfig | StreamCnnConfig


def parse_model(data: Any, key: str = "trigger.model") -> ModelConfig:
    """The ``trigger.model`` section as its schema; a bad key or value names it."""
    if not isinstance(data, dict) or data.get("name") not in MODELS:
        name = data.get("name") if isinstance(data, dict) else None
        raise ConfigError(
            f"{key}.name: unknown trigger model {name!r}. Available: {', '.join(MODELS)} "
            "(pick one with `-S trigger/model=<name>`)"
        )
    return parse(MODELS[data["name"]], data, key)


@dataclass(frozen=True)
class Geometry:
    """Where the output steps fall on the input wave, in samples at ``sample_rate``."""

    sample_rate: int
    step_samples: int  # S: between two output steps
    receptive_samples: int  # R: samples one step sees (the unpadded model's first step)
    bins: int  # feature bins per frame

    @property
    def pad_samples(self) -> int:
        """Zeros the detector puts before the wave so that step i ends at sample S (i+1)."""
        return self.receptive_samples - self.step_samples

    @property
    def step_seconds(self) -> float:
        return self.step_samples / self.sample_rate

    @property
    def first_step_seconds(self) -> float:
        return self.step_samples / self.sample_rate

    def n_steps(self, n_samples: int) -> int:
        """Steps of the (padded) detector for a wave of ``n_samples``."""
        return n_samples // self.step_samples


def geometry(cfg: ModelConfig, sample_rate: int) -> Geometry:
    feats = _spectrogram(cfg.features)
    f = feats.framing(sample_rate)
    receptive_frames, stride_frames = cfg.frames()
    return Geometry(
        sample_rate=sample_rate,
        step_samples=stride_frames * f.frame_step,
        receptive_samples=(receptive_frames - 1) * f.frame_step + f.frame_length,
        bins=feats.bins(f),
    )


def build(cfg: ModelConfig, bins: int):  # -> keras.Model (clips, frames, bins) -> (clips, steps)
    """The network on (standardised) features; valid padding everywhere, so the output has
    ``1 + (frames - receptive frames) // stride`` steps."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, bins), name="features")  # (clips, frames, bins)
    if isinstance(cfg, ConvGruConfig):
        x = layers.Conv1D(cfg.conv_filters, cfg.conv_kernel, strides=cfg.conv_stride)(inputs)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(cfg.dropout)(x)
        x = layers.GRU(cfg.gru_units, return_sequences=True, name="gru0")(x)
        x = layers.Dropout(cfg.dropout)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.GRU(cfg.gru_units, return_sequences=True, name="gru1")(x)
        x = layers.Dropout(cfg.dropout)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.Dropout(cfg.dropout)(x)
    else:
        x = layers.Conv1D(cfg.front_filters, cfg.front_kernel, strides=cfg.front_stride)(inputs)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
        for i, d in enumerate(cfg.dilations):
            # Valid, dilated: step t reads steps t - (kernel - 1) d .. t of the block's input.
            x = layers.Conv1D(cfg.filters, cfg.kernel, dilation_rate=d, name=f"dilated{i}")(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = layers.ReLU()(x)
            x = layers.Dropout(cfg.dropout)(x)
    # Dense on (clips, steps, units) acts per step: the reference's TimeDistributed(Dense).
    # (Keras 3's TimeDistributed, traced with an unknown number of steps, took the batch size
    # for it: 2 steps out of 5 for a batch of 2.)
    x = layers.Dense(1, activation="sigmoid", name="score")(x)
    outputs = layers.Reshape((-1,), name="steps")(x)  # (clips, steps)
    return keras.Model(inputs, outputs, name=cfg.name)
