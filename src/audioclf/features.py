"""Model inputs: log-mel (default), STFT magnitude, log-spectrogram, MFCC, the raw wave, or
the embedding of a pretrained backbone (``choi2017``, or a network trained by this pipeline:
``trained``).

Each feature type is one class here (its schema, output shape and transforms) plus one
``conf/features/<option>.yaml``; classes register themselves in ``FEATURE_TYPES``.

Each fixed transform has two implementations that agree to float32 rounding: TensorFlow's
signal ops (``transform``), which the exported model runs inside itself (``audioclf.export``),
and a NumPy/SciPy port of them (``numpy_transform``, ``audioclf.spectral``), which computes
the feature cache (the ``features`` and ``augment`` stages, ``compute``) without importing
TensorFlow. tests/test_spectral.py checks that both give the same numbers and a model fed
either the same predictions. A backbone (a network) has only the TensorFlow one. Input: float32
waveforms (clips, samples) in [-1, 1], first resampled to ``sample_rate`` when the config sets
one (a model may want 8 kHz audio while the dataset is prepared at 16 kHz). Output: float32
(clips, frames, bins) with ``frames = 1 + (samples - frame_length) // frame_step``; the raw
wave is (clips, samples, 1); an embedding is (clips, 1, size).

TensorFlow is imported inside the functions that need it (``import tensorflow`` costs ~12 s).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from audioclf import choi2017, spectral
from audioclf.clips import fit_length, resample
from audioclf.config import ConfigError, check, parse
from audioclf.npystream import NpyWriter, iter_rows, shape_of
from audioclf.parallel import thread_map
from audioclf.tfimport import import_tensorflow

# Clips per thread task of the NumPy transforms (64 1-s 16 kHz clips: 4 MB in, 6.5 MB of
# complex STFT): the unit of work, the same whatever the number of threads.
PART = 64
# Feature types by their ``type`` name; every class below adds itself when it is defined.
FEATURE_TYPES: dict[str, type[WaveConfig]] = {}


@dataclass(frozen=True)
class Framing:
    """Frame sizes in samples for a config at a sample rate."""

    frame_length: int
    frame_step: int
    fft_length: int


@dataclass(frozen=True)
class WaveConfig:
    """The waveform itself, for models that learn their own front end.

    The base of every feature type. A type is one subclass (its fields are the schema of
    ``features``, its ``type`` default the name) plus ``conf/features/<option>.yaml``;
    ``input_kind`` says which models it fits (their ``INPUT``).
    """

    type: Literal["wave"] = "wave"
    sample_rate: int | None = None  # Hz the clips are resampled to; null = the prepared rate
    input_kind: ClassVar[str] = "wave"
    max_batch: ClassVar[int | None] = None  # clips per transform call, if memory needs a cap

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        FEATURE_TYPES[cls.__dict__["type"]] = cls

    def __post_init__(self) -> None:
        check(
            self.sample_rate is None or self.sample_rate >= 1000,
            "sample_rate",
            f"must be null (keep the prepared rate) or >= 1000 Hz, got {self.sample_rate}",
        )

    def output_shape(self, n_samples: int, sample_rate: int) -> tuple[int, int]:
        """(frames, bins) of a clip of ``n_samples`` at ``sample_rate`` (the transform's
        input rate): (samples, 1) for the raw wave."""
        return n_samples, 1

    def transform(self, sample_rate: int):  # -> Callable[[tf.Tensor], tf.Tensor]
        """A TensorFlow function (clips, samples) -> (clips, frames, bins), float32."""
        tf = import_tensorflow()
        return lambda waves: tf.expand_dims(waves, -1)

    def numpy_transform(self, sample_rate: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """The same transform in NumPy (``audioclf.spectral``), float32 (clips, samples) ->
        (clips, frames, bins); None where only TensorFlow computes it (a network)."""
        return lambda waves: np.asarray(waves, dtype=np.float32)[..., None]

    def network(self):  # -> keras.Model | None
        """The network with weights that the transform runs (a pretrained backbone), its
        weights not yet set; None for a fixed transform. ``audioclf.export`` makes it part of
        the exported model, so its weights are saved with it."""
        return None

    def backbone(self) -> dict[str, Any] | None:
        """What MLflow logs about the pretrained network the features come from (``name``,
        ``weights_sha256``, ``layers``, ``embedding_size``); None without one. The features
        stage records it in data/features/info.json."""
        return None


FEATURE_TYPES["wave"] = WaveConfig


@dataclass(frozen=True)
class StftConfig(WaveConfig):
    """Magnitude of the short-time Fourier transform, |X|, Hann window."""

    type: Literal["stft"] = "stft"
    window_ms: float = 25.0  # analysis window length
    hop_ms: float = 10.0  # step between frames
    n_fft: int | None = None  # FFT size; null = next power of two >= window
    input_kind: ClassVar[str] = "spectrogram"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.window_ms > 0, "window_ms", f"must be > 0 ms, got {self.window_ms}")
        check(self.hop_ms > 0, "hop_ms", f"must be > 0 ms, got {self.hop_ms}")
        check(self.n_fft is None or self.n_fft >= 2, "n_fft", "must be null or >= 2")

    def framing(self, sample_rate: int) -> Framing:
        frame_length = int(round(self.window_ms * sample_rate / 1000))
        frame_step = int(round(self.hop_ms * sample_rate / 1000))
        if frame_length < 2 or frame_step < 1:
            raise ConfigError(
                f"features.window_ms/hop_ms: {self.window_ms} ms / {self.hop_ms} ms give "
                f"{frame_length}/{frame_step} samples at {sample_rate} Hz; use longer windows"
            )
        fft_length = self.n_fft or 1 << (frame_length - 1).bit_length()
        if fft_length < frame_length:
            raise ConfigError(
                f"features.n_fft: {fft_length} is shorter than the window ({frame_length} samples)"
            )
        return Framing(frame_length, frame_step, fft_length)

    def bins(self, f: Framing) -> int:
        return f.fft_length // 2 + 1

    def output_shape(self, n_samples: int, sample_rate: int) -> tuple[int, int]:
        f = self.framing(sample_rate)
        if n_samples < f.frame_length:
            raise ConfigError(
                f"features.window_ms: the window ({f.frame_length} samples) is longer than the "
                f"clips ({n_samples} samples)"
            )
        return 1 + (n_samples - f.frame_length) // f.frame_step, self.bins(f)

    def from_magnitude(self, sample_rate: int, f: Framing):  # -> Callable
        """What the type computes from |STFT| (clips, frames, fft_length // 2 + 1)."""
        return lambda magnitude: magnitude

    def from_magnitude_numpy(self, sample_rate: int, f: Framing):  # -> Callable
        """``from_magnitude`` in NumPy."""
        return lambda magnitude: magnitude

    def transform(self, sample_rate: int):
        tf = import_tensorflow()
        f = self.framing(sample_rate)
        post = self.from_magnitude(sample_rate, f)

        def transform(waves):
            stft = tf.signal.stft(
                waves,
                frame_length=f.frame_length,
                frame_step=f.frame_step,
                fft_length=f.fft_length,
                window_fn=tf.signal.hann_window,
                pad_end=False,
            )
            return post(tf.abs(stft))

        return transform

    def numpy_transform(self, sample_rate: int) -> Callable[[np.ndarray], np.ndarray]:
        f = self.framing(sample_rate)
        window = spectral.hann_window(f.frame_length)
        post = self.from_magnitude_numpy(sample_rate, f)
        return lambda waves: post(
            spectral.stft_magnitude(waves, window, f.frame_step, f.fft_length)
        )


@dataclass(frozen=True)
class LogSpecConfig(StftConfig):
    """log(|X| + eps): the Kaggle notebooks' log-spectrogram (20 ms window, 10 ms step)."""

    type: Literal["logspec"] = "logspec"
    window_ms: float = 20.0
    eps: float = 1e-10  # added before the log so silence gives a finite value

    def from_magnitude(self, sample_rate: int, f: Framing):
        tf = import_tensorflow()
        return lambda magnitude: tf.math.log(magnitude + self.eps)

    def from_magnitude_numpy(self, sample_rate: int, f: Framing):
        return lambda magnitude: np.log(magnitude + np.float32(self.eps))


@dataclass(frozen=True)
class LogMelConfig(StftConfig):
    """log(mel power + offset), the usual keyword-spotting input."""

    type: Literal["logmel"] = "logmel"
    n_mels: int = 40
    fmin: float = 20.0  # Hz, lowest mel band edge
    fmax: float | None = None  # Hz, highest mel band edge; null = Nyquist
    log_offset: float = 1e-6  # added to mel power before the log

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_mels >= 1, "n_mels", f"must be >= 1, got {self.n_mels}")
        check(self.fmin >= 0, "fmin", f"must be >= 0 Hz, got {self.fmin}")
        check(
            self.fmax is None or self.fmax > self.fmin,
            "fmax",
            f"must be null or above fmin ({self.fmin} Hz), got {self.fmax}",
        )
        check(self.log_offset > 0, "log_offset", f"must be > 0, got {self.log_offset}")

    def bins(self, f: Framing) -> int:
        return self.n_mels

    def upper_edge(self, sample_rate: int) -> float:
        """Hz of the highest mel band edge: ``fmax``, else Nyquist."""
        nyquist = sample_rate / 2
        fmax = self.fmax if self.fmax is not None else nyquist
        if fmax > nyquist:
            raise ConfigError(f"features.fmax: {fmax} Hz is above Nyquist ({nyquist} Hz)")
        return fmax

    def from_magnitude(self, sample_rate: int, f: Framing):
        tf = import_tensorflow()
        # (fft_bins, n_mels): maps the power spectrum onto HTK-mel triangular bands.
        mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=self.n_mels,
            num_spectrogram_bins=f.fft_length // 2 + 1,
            sample_rate=sample_rate,
            lower_edge_hertz=self.fmin,
            upper_edge_hertz=self.upper_edge(sample_rate),
        )

        def log_mel(magnitude):
            mel = tf.tensordot(tf.square(magnitude), mel_matrix, 1)  # (clips, frames, n_mels)
            return tf.math.log(mel + self.log_offset)

        return log_mel

    def from_magnitude_numpy(self, sample_rate: int, f: Framing):
        matrix = spectral.mel_matrix(
            self.n_mels, f.fft_length // 2 + 1, sample_rate, self.fmin, self.upper_edge(sample_rate)
        )
        return lambda magnitude: spectral.log_mel(magnitude, matrix, self.log_offset)


@dataclass(frozen=True)
class MfccConfig(LogMelConfig):
    """The first ``n_mfcc`` cepstral coefficients of the log-mel spectrogram (DCT-II)."""

    type: Literal["mfcc"] = "mfcc"
    n_mfcc: int = 13

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            1 <= self.n_mfcc <= self.n_mels,
            "n_mfcc",
            f"must be between 1 and n_mels ({self.n_mels}), got {self.n_mfcc}",
        )

    def bins(self, f: Framing) -> int:
        return self.n_mfcc

    def from_magnitude(self, sample_rate: int, f: Framing):
        tf = import_tensorflow()
        log_mel = super().from_magnitude(sample_rate, f)
        return lambda m: tf.signal.mfccs_from_log_mel_spectrograms(log_mel(m))[..., : self.n_mfcc]

    def from_magnitude_numpy(self, sample_rate: int, f: Framing):
        log_mel = super().from_magnitude_numpy(sample_rate, f)
        return lambda m: spectral.mfcc(log_mel(m), self.n_mfcc)


@dataclass(frozen=True)
class Choi2017Config(WaveConfig):
    """The transfer feature of Choi et al. 2017 (``audioclf.choi2017``): global averages of
    the chosen ELU layers of their pretrained music tagger, 32 values each; (1, 32 * layers).

    Clips are resampled to the network's 12 kHz (``sample_rate``), then tiled or padded to
    its minimum input (``choi2017.MIN_SAMPLES``, 81,920 samples) inside the transform, so the
    exported model does the same from the raw 12 kHz clip. The weights are downloaded on first
    use from the author's repository (``weights_url``: null = the pinned commit) into the
    download cache (``cache_dir``) and checked against the recorded sha256.
    """

    type: Literal["choi2017"] = "choi2017"
    sample_rate: int | None = choi2017.SAMPLE_RATE
    layers: tuple[int, ...] = choi2017.LAYERS  # which ELU layers (1-5) to average
    fit: Literal["tile", "pad"] = "tile"  # how a short clip reaches the minimum length
    weights_url: str | None = None  # null = the author's repository at the pinned commit
    cache_dir: str | None = None  # null: $AUDIOCLF_CACHE or ~/.cache/audioclf
    input_kind: ClassVar[str] = "embedding"
    max_batch: ClassVar[int | None] = 32  # block 1 holds 32 x 96 x frames floats per clip

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.sample_rate == choi2017.SAMPLE_RATE,
            "sample_rate",
            f"must be {choi2017.SAMPLE_RATE} (the rate the network was trained at), "
            f"got {self.sample_rate}",
        )
        try:
            choi2017.check_layers(self.layers)
        except ValueError as err:
            raise ConfigError(f"features.{err}") from None

    def output_shape(self, n_samples: int, sample_rate: int) -> tuple[int, int]:
        return 1, choi2017.embedding_size(self.layers)

    def network(self):  # -> keras.Model (clips, samples >= MIN_SAMPLES) -> (clips, size)
        return choi2017.embedding_model(choi2017.build_tagger(), self.layers)

    def backbone(self) -> dict[str, Any]:
        return {
            "name": "choi2017",
            "weights_sha256": choi2017.WEIGHTS_SHA256,  # checked on every download
            "layers": ",".join(str(i) for i in self.layers),  # ELU layers 1-5
            "embedding_size": choi2017.embedding_size(self.layers),
        }

    def load_pretrained(self, network, progress: bool = True) -> None:
        """Set ``network``'s weights from the (downloaded, verified) HDF5 file."""
        path = choi2017.weights_file(self.weights_url, self.cache_dir, progress=progress)
        choi2017.load_weights(network, path)

    def apply(self, network):  # -> Callable[[tf.Tensor], tf.Tensor]
        """(clips, samples) at 12 kHz -> (clips, 1, size) through ``network``."""
        tf = import_tensorflow()
        return lambda waves: tf.expand_dims(
            network(choi2017.fit_to_network(waves, self.fit), training=False), 1
        )

    def transform(self, sample_rate: int):
        network = self.network()
        self.load_pretrained(network)
        return self.apply(network)

    def numpy_transform(self, sample_rate: int) -> None:
        return None  # a network: TensorFlow computes it


@dataclass(frozen=True)
class TrainedConfig(WaveConfig):
    """A network trained by this pipeline as the backbone (``audioclf.backbone``): the output
    of its layer ``layer`` (averaged to one value per channel), (1, size) per clip.

    ``model`` is its exported model (data/model/inference.keras, its folder, relative to the
    repository root, or ``runs:/<MLflow run id>``); the clips must reach it as it was trained:
    at its sample rate (``sample_rate``) and clip length. ``sha256``, if set, must be the
    inference.keras file's: a backbone retrained at the same path then fails loudly instead of
    silently changing the features (DVC tracks the params, not the file: docs/transfer.md).
    """

    type: Literal["trained"] = "trained"
    model: str | None = None  # path to inference.keras (or its folder) or runs:/<run id>
    layer: str | int = -2  # layer name, or index into backbone.layer_names (-2: before output)
    sha256: str | None = None  # expected sha256 of inference.keras; null = not checked
    input_kind: ClassVar[str] = "embedding"
    max_batch: ClassVar[int | None] = 64
    stores_architecture: ClassVar[bool] = True  # the exported model keeps the network's config

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.model is None or self.model.strip() != "",
            "model",
            "must name the backbone (or be null until one is chosen)",
        )
        check(
            self.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", self.sha256) is not None,
            "sha256",
            f"must be null or 64 lowercase hex digits, got {self.sha256!r}",
        )

    def _loaded(self) -> tuple[Any, dict]:
        from audioclf import backbone

        # Checked here, not in the schema: conf/features/trained.yaml composes with model: null
        # (every option must), and the features stage asks for the shape before any work.
        if self.model is None:
            raise ConfigError(
                "features.model: name the backbone: a trained model's inference.keras (or its "
                "folder, e.g. a copy of data/model) relative to the repository root, or "
                "runs:/<MLflow run id>: `dvc exp run -S features=trained -S features.model=...`"
            )

        network, meta = backbone.load(self.model, self.layer)
        if self.sha256 is not None and meta["sha256"] != self.sha256:
            raise ConfigError(
                f"features.sha256: {meta['folder']}/inference.keras has sha256 {meta['sha256']}, "
                f"not {self.sha256}: the backbone changed. Set features.sha256 to the new value "
                "to use it (its features will be recomputed)"
            )
        return network, meta

    def output_shape(self, n_samples: int, sample_rate: int) -> tuple[int, int]:
        network, meta = self._loaded()
        if sample_rate != meta["sample_rate"]:
            raise ConfigError(
                f"features.sample_rate: the backbone {self.model!r} takes {meta['sample_rate']} Hz "
                f"clips, these are at {sample_rate} Hz: set features.sample_rate: "
                f"{meta['sample_rate']}"
            )
        if n_samples != meta["clip_samples"]:
            raise ConfigError(
                f"features.model: the backbone {self.model!r} takes clips of "
                f"{meta['clip_samples']} samples, these have {n_samples}: prepare the data "
                "with the clip length it was trained on (data.prepare)"
            )
        return 1, int(network.output_shape[-1])

    def network(self):  # -> keras.Model (clips, samples) -> (clips, ...), weights set
        return self._loaded()[0]

    def load_pretrained(self, network, progress: bool = True) -> None:
        """Nothing to do: ``network`` was loaded with its trained weights."""

    def backbone(self) -> dict[str, Any]:
        network, meta = self._loaded()
        return {
            "name": f"{meta['model']}@{meta['sha256'][:8]}",  # its model and file hash
            "source": self.model,
            "weights_sha256": meta["sha256"],
            "layers": meta["layer"],
            "embedding_size": int(network.output_shape[-1]),
        }

    def apply(self, network):  # -> Callable[[tf.Tensor], tf.Tensor]
        """(clips, samples) -> (clips, 1, size): the layer's output, averaged over all axes
        but the last (frames, bins) when it has more."""
        tf = import_tensorflow()

        def embed(waves):
            out = network(waves, training=False)
            if len(out.shape) > 2:
                out = tf.reduce_mean(out, axis=list(range(1, len(out.shape) - 1)))
            return tf.expand_dims(out, 1)

        return embed

    def transform(self, sample_rate: int):
        return self.apply(self.network())

    def numpy_transform(self, sample_rate: int) -> None:
        return None  # a network: TensorFlow computes it


def parse_features(data: Any, key: str = "features") -> WaveConfig:
    """Validate the ``features`` params section; ``type`` picks the schema."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in FEATURE_TYPES:
        raise ConfigError(
            f"{key}.type: unknown feature type {kind!r}. Allowed: {', '.join(FEATURE_TYPES)} "
            "(pick one with `dvc exp run -S features=<type>`)"
        )
    return parse(FEATURE_TYPES[kind], data, key)


def input_rate(cfg: WaveConfig, prepared_rate: int) -> int:
    """Sample rate (Hz) of the waves the transform sees."""
    return cfg.sample_rate or prepared_rate


def input_samples(cfg: WaveConfig, prepared_rate: int, n_samples: int) -> int:
    """Length of a prepared clip of ``n_samples`` after resampling to the features' rate."""
    return int(round(n_samples * input_rate(cfg, prepared_rate) / prepared_rate))


def resample_clips(waves: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """(clips, samples) at ``rate_in`` -> float32 (clips, samples') at ``rate_out``.

    ``clips.resample`` (the one used when reading files, so the exported model's input from
    ``audioclf predict`` matches the cache) clip by clip: libsoxr gives the same numbers as on
    all clips at once as channels, at a third of the cost (70 vs 210 us per 1 s clip, 16 to
    8 kHz). Each clip is then cut or padded to exactly round(samples * rate_out / rate_in).
    """
    if rate_in == rate_out:
        return np.asarray(waves, dtype=np.float32)
    n_out = int(round(waves.shape[1] * rate_out / rate_in))
    out = np.empty((len(waves), n_out), dtype=np.float32)
    for i, wave in enumerate(waves):
        out[i] = fit_length(resample(np.asarray(wave, dtype=np.float32), rate_in, rate_out), n_out)
    return out


def output_shape(cfg: WaveConfig, prepared_rate: int, n_samples: int) -> tuple[int, int]:
    """(frames, bins) of one prepared clip's features: (samples, 1) for the raw wave."""
    rate = input_rate(cfg, prepared_rate)
    return cfg.output_shape(input_samples(cfg, prepared_rate, n_samples), rate)


def make_transform(cfg: WaveConfig, sample_rate: int):  # -> Callable[[tf.Tensor], tf.Tensor]
    """A TensorFlow function (clips, samples) float32 -> (clips, frames, bins) float32.

    ``sample_rate`` is the rate of its input, ``input_rate(cfg, ...)``: resampling happens
    before. Usable eagerly, inside ``tf.function`` or inside a Keras layer.
    """
    return cfg.transform(sample_rate)


def compute_numpy(
    batches: Iterable[np.ndarray],
    transform: Callable[[np.ndarray], np.ndarray],
    rate_in: int,
    rate_out: int,
    threads: int | None = None,
) -> Iterator[np.ndarray]:
    """Resample then ``transform`` (a ``numpy_transform``) each PART clips of ``batches``, in
    order, in ``threads`` threads (default: the cores this process may use).

    Threads, not processes: libsoxr, SciPy's FFT and NumPy's array operations release the GIL,
    so the cores work with nothing to start or import and no copies between processes. The
    parts are the same whatever the number of threads, so the output is too. At most
    2 x threads parts are in flight: memory stays bounded.
    """

    def features(waves: np.ndarray) -> np.ndarray:
        return transform(resample_clips(waves, rate_in, rate_out))

    parts = (b[i : i + PART] for b in batches for i in range(0, len(b), PART))
    # One BLAS thread per part (the mel matrix product): the parts already use the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        yield from thread_map(features, parts, threads)


def compute(
    waves: np.ndarray | Iterable[np.ndarray],
    cfg: WaveConfig,
    sample_rate: int,
    batch_size: int = 256,
    *,
    n_samples: int | None = None,
    backend: Literal["numpy", "tensorflow"] = "numpy",
    threads: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield features for ``waves`` at ``sample_rate``, batch by batch: ``waves`` is an array
    (clips, n_samples) cut into ``batch_size`` batches, or an iterable of such batches (e.g.
    ``npystream.iter_rows``) of clips of ``n_samples``. Clips are resampled first if the
    config asks for another rate.

    ``backend="numpy"``: the type's ``numpy_transform`` in ``threads`` threads
    (``compute_numpy``), no TensorFlow; a type without one (a network), and
    ``backend="tensorflow"``, run the TensorFlow transform the exported model holds.
    Batches keep memory bounded whatever the number of clips.
    """
    rate = input_rate(cfg, sample_rate)
    if isinstance(waves, np.ndarray):
        array, n_samples = waves, waves.shape[1]
        waves = (array[i : i + batch_size] for i in range(0, len(array), batch_size))
    elif n_samples is None:
        raise TypeError("compute: pass n_samples with an iterable of batches")
    numpy_transform = cfg.numpy_transform(rate) if backend == "numpy" else None
    if numpy_transform is not None:
        yield from compute_numpy(waves, numpy_transform, sample_rate, rate, threads)
        return

    tf = import_tensorflow()
    transform = tf.function(
        make_transform(cfg, rate),
        input_signature=[tf.TensorSpec([None, input_samples(cfg, sample_rate, n_samples)])],
    )
    step = cfg.max_batch or batch_size
    for batch in waves:
        batch = resample_clips(batch, sample_rate, rate)
        for i in range(0, len(batch), step):
            yield transform(tf.constant(batch[i : i + step])).numpy()


def write_npy(
    path: Path,
    source: Path,
    cfg: WaveConfig,
    sample_rate: int,
    desc: str,
    batch_size: int = 256,
) -> tuple[int, int]:
    """Compute features for the clips (clips, samples) of the .npy ``source`` into a new .npy
    at ``path``.

    Read and written batch by batch, so memory stays at one batch whatever the number of
    clips. A progress bar shows when the output is a terminal. Returns (frames, bins).
    """
    (n_clips, n_samples), _, _ = shape_of(source)
    shape = output_shape(cfg, sample_rate, n_samples)
    batches = iter_rows(source, batch_size)
    with (
        NpyWriter(path, np.float32, shape) as out,
        tqdm(total=n_clips, desc=desc, unit="clip", disable=None) as bar,
    ):
        for batch in compute(batches, cfg, sample_rate, batch_size, n_samples=n_samples):
            out.append(batch)
            bar.update(len(batch))
    return shape
