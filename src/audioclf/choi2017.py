"""The music-tagging convnet of Choi et al. 2017, ported to Keras 3: a pretrained backbone.

K. Choi, G. Fazekas, M. Sandler, K. Cho, "Transfer learning for music classification and
regression tasks", ISMIR 2017. The weights are the author's Keras 2 re-release
(``keras2_model/model_best.hdf5`` of keunwoochoi/transfer_learning_music at ``COMMIT``),
saved by Keras 2 with two custom layers of kapre 0.1.2.1 (commit 0c37638), which does not run
on Keras 3. Both are rebuilt here as our own layers, from kapre's source at that commit:

- ``MelFrontEnd`` (kapre ``Melspectrogram``, sr 12 kHz, n_dft 512, hop 256, 96 mels, fmax
  6 kHz, power 2, decibels). The STFT is a strided convolution of the wave with the stored
  DFT kernels (512, 1, 1, 257) (Hann-windowed cos and sin), with TensorFlow's ``same``
  padding: ``frames = ceil(samples / 256)``, the ``(frames - 1) * 256 + 512 - samples``
  padding samples split floor/ceil between the two ends (kapre forces ``padding='same'``).
  Power = re^2 + im^2, times the stored mel matrix (257, 96); decibels are
  ``10 log10(max(p, 1e-10))``, minus the maximum, floored at -80 dB. kapre takes that maximum
  over the whole batch tensor (``K.max``); here it is each clip's own maximum, so a clip's
  features never depend on the clips batched with it (the next layer removes each clip's mean,
  so the reference shifts only which bins hit the -80 dB floor; with one clip per batch,
  kapre's numbers are these).
- ``PerSampleNormalization`` (kapre ``Normalization2D('data_sample')``):
  ``(x - mean) / (std + 1e-10)``, mean and (population) std over each clip's whole
  spectrogram.

Then five blocks Conv2D 3x3 (32) -> batch norm (its moving statistics: no batch dependence)
-> ELU -> max pooling (2,4), (3,4), (2,5), (2,4), (4,4) on (mels, frames), global max pooling
and ``dense_1``, 50 sigmoid tags (``TAGS``). The transfer feature (``embedding_model``) is the
global average of the chosen ELU outputs (``elu_1``..``elu_5``), 32 values each, concatenated.

Every weight is read from the HDF5 file with h5py and assigned by layer name, weight name and
shape (``load_weights``); nothing of Keras 2 or kapre is loaded. The file is not shipped
(the author's repository has no license): ``weights_file`` downloads it once, verified by
sha256, into the download cache.

Minimum input: the embedding needs >= 1 frame after four poolings in time (4*4*5*4 = 320
frames, ``MIN_SAMPLES`` = 320 * 256 = 81,920 samples = 6.83 s at 12 kHz; 319 * 256 + 1 =
81,665 is the exact minimum); the tagger needs 5 poolings, 1,280 frames (``TAGGER_MIN_SAMPLES``
= 327,680 samples, 27.3 s). Keras is imported by the functions that need it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audioclf.tfimport import import_tensorflow

REPOSITORY = "keunwoochoi/transfer_learning_music"
COMMIT = "e1f83c389ff32ce48551f916414ae869cbe7f6e6"
WEIGHTS_URL = f"https://github.com/{REPOSITORY}/raw/{COMMIT}/keras2_model/model_best.hdf5"
WEIGHTS_SHA256 = "b5042bd44de1fdd9d757b764d9246e6934f47c8bdc5c15bf13566495f3439d48"
WEIGHTS_SIZE = 1_545_360  # bytes
WEIGHTS_FILE = "choi2017_model_best.hdf5"  # its name in the download cache

SAMPLE_RATE = 12_000  # Hz the network was trained at
N_DFT = 512
HOP = 256
N_MELS = 96
AMIN = 1e-10  # power floor before the log
DYNAMIC_RANGE_DB = 80.0
NORM_EPS = 1e-10
POOLS = ((2, 4), (3, 4), (2, 5), (2, 4), (4, 4))  # (mels, frames) per block
FILTERS = 32
LAYERS = (1, 2, 3, 4, 5)
MIN_SAMPLES = 320 * HOP  # 81,920: 1 frame left after the pooling of blocks 1-4
TAGGER_MIN_SAMPLES = 1280 * HOP  # 327,680: 1 frame left after all five poolings

# The Million Song Dataset top-50 last.fm tags, in the order of dense_1's units: the author's
# example (music-auto_tagging-keras, compact_cnn/main.py, ``tags``).
TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

# HDF5 weight names that differ from ours: kapre never named its mel matrix.
_RENAMED = {("melgram", "Variable"): "freq2mel"}


def embedding_size(layers: Sequence[int] = LAYERS) -> int:
    return FILTERS * len(layers)


def check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    """The chosen ELU layers, sorted; ValueError for an empty, repeated or unknown one."""
    chosen = tuple(int(k) for k in layers)
    if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= set(LAYERS):
        raise ValueError(
            f"layers: a non-empty subset of {list(LAYERS)} without repeats, got {list(layers)}"
        )
    return tuple(sorted(chosen))


@functools.cache
def layer_classes() -> tuple[type, type]:
    """(MelFrontEnd, PerSampleNormalization), defined and registered for loading saved models
    on the first call (Keras costs seconds to import)."""
    import_tensorflow()
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="audioclf")
    class MelFrontEnd(keras.layers.Layer):
        """(clips, samples) at 12 kHz -> (clips, 96 mels, frames, 1) decibels, <= 0.

        Weights (kapre's names and shapes): real_kernels, imag_kernels (512, 1, 1, 257),
        freq2mel (257, 96); frozen.
        """

        def __init__(self, **kwargs) -> None:
            kwargs["trainable"] = False
            super().__init__(**kwargs)
            bins = N_DFT // 2 + 1
            self.real_kernels = self.add_weight(
                shape=(N_DFT, 1, 1, bins), initializer="zeros", name="real_kernels", trainable=False
            )
            self.imag_kernels = self.add_weight(
                shape=(N_DFT, 1, 1, bins), initializer="zeros", name="imag_kernels", trainable=False
            )
            self.freq2mel = self.add_weight(
                shape=(bins, N_MELS), initializer="zeros", name="freq2mel", trainable=False
            )

        def call(self, waves):
            x = ops.expand_dims(waves, -1)  # (clips, samples, 1)
            # kapre's conv2d over (samples, 1) with a (512, 1) kernel is this conv1d.
            real = ops.conv(x, self.real_kernels[:, 0], strides=HOP, padding="same")
            imag = ops.conv(x, self.imag_kernels[:, 0], strides=HOP, padding="same")
            power = real * real + imag * imag  # (clips, frames, 257)
            mel = ops.matmul(power, self.freq2mel)  # (clips, frames, 96)
            db = 10.0 * ops.log(ops.maximum(mel, AMIN)) / np.log(10.0)
            db = db - ops.max(db, axis=(1, 2), keepdims=True)  # per clip, see the docstring
            db = ops.maximum(db, -DYNAMIC_RANGE_DB)
            return ops.expand_dims(ops.transpose(db, (0, 2, 1)), -1)  # (clips, mels, frames, 1)

        def compute_output_shape(self, input_shape):
            n = input_shape[1]
            return (input_shape[0], N_MELS, None if n is None else -(-n // HOP), 1)

    @keras.saving.register_keras_serializable(package="audioclf")
    class PerSampleNormalization(keras.layers.Layer):
        """(x - mean) / (std + 1e-10) over each clip's whole (mels, frames, channels)."""

        def call(self, x):
            mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
            std = ops.std(x, axis=(1, 2, 3), keepdims=True)
            return (x - mean) / (std + NORM_EPS)

    return MelFrontEnd, PerSampleNormalization


def build_tagger():  # -> keras.Model
    """The whole network, weights unset: (clips, samples) at 12 kHz -> (clips, 50) tags.

    Layer names are the HDF5 file's (melgram, conv2d_1, batch_normalization_1, elu_1, MP_1,
    ..., MP, dense_1). Any length >= ``MIN_SAMPLES`` works for the ELU outputs; the tags need
    ``TAGGER_MIN_SAMPLES``.
    """
    import_tensorflow()
    import keras
    from keras import layers

    mel_front_end, normalization = layer_classes()
    waves = keras.Input(shape=(None,), name="wave")
    x = mel_front_end(name="melgram")(waves)
    x = normalization(name="normalization2d_1")(x)
    for i, pool in enumerate(POOLS, start=1):
        x = layers.Conv2D(FILTERS, 3, padding="same", name=f"conv2d_{i}")(x)
        x = layers.BatchNormalization(axis=-1, epsilon=1e-3, name=f"batch_normalization_{i}")(x)
        x = layers.ELU(alpha=1.0, name=f"elu_{i}")(x)
        x = layers.MaxPooling2D(pool, strides=pool, padding="valid", name=f"MP_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="MP")(x)
    tags = layers.Dense(len(TAGS), activation="sigmoid", name="dense_1")(x)
    return keras.Model(waves, tags, name="choi2017_tagger")


def embedding_model(tagger, layers: Sequence[int] = LAYERS, name: str = "choi2017"):
    """(clips, samples >= MIN_SAMPLES) -> (clips, 32 * len(layers)): the global average of
    each chosen ELU output, concatenated in layer order; shares ``tagger``'s weights."""
    import keras

    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"gap_{k}")(tagger.get_layer(f"elu_{k}").output)
        for k in check_layers(layers)
    ]
    out = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="embedding")(pooled)
    return keras.Model(tagger.input, out, name=name)


def load_weights(model, path: str | Path) -> set[str]:
    """Assign every weight of ``model`` from the Keras 2 HDF5 file at ``path``, matching the
    layer name, the weight name and the shape; return the HDF5 dataset paths used.

    Raises ValueError naming the layer and weight when the file lacks one of the model's
    weights or holds it in another shape. Weights of the file that the model lacks (the tagger
    head, for an embedding-only model) are left unused: compare the returned set.
    """
    import h5py

    path = Path(path)
    used: set[str] = set()
    with h5py.File(path, "r") as f:
        if "model_weights" not in f:
            raise ValueError(f"{path}: no 'model_weights' group; not a Keras 2 model file")
        root = f["model_weights"]
        for layer in model.layers:
            for variable in layer.weights:
                dataset = _find(root, layer.name, variable.name)
                if dataset is None:
                    raise ValueError(
                        f"{path}: no weight for layer {layer.name!r} variable {variable.name!r}; "
                        "is this the choi2017 model_best.hdf5?"
                    )
                value = np.asarray(dataset, dtype=np.float32)
                if value.shape != tuple(variable.shape):
                    raise ValueError(
                        f"{path}: {dataset.name} has shape {value.shape}, layer "
                        f"{layer.name!r} variable {variable.name!r} needs {tuple(variable.shape)}"
                    )
                variable.assign(value)
                used.add(dataset.name)
    return used


def _find(root, layer: str, weight: str):
    """The dataset ``<layer>/<layer>/<weight>:0`` (Keras 2's layout), honouring renames."""
    if layer not in root:
        return None
    group = root[layer]
    for name in group.attrs.get("weight_names", []):
        name = name.decode() if isinstance(name, bytes) else str(name)
        short = name.split("/")[-1].removesuffix(":0")
        if _RENAMED.get((layer, short), short) == weight:
            return group[name]
    return None


def all_weights(path: str | Path) -> set[str]:
    """Every weight dataset path in the HDF5 file (to check that a port uses them all)."""
    import h5py

    found: set[str] = set()
    with h5py.File(path, "r") as f:
        f["model_weights"].visititems(
            lambda name, obj: found.add(obj.name) if isinstance(obj, h5py.Dataset) else None
        )
    return found


def weights_file(url: str | None = None, cache: str | None = None, progress: bool = True) -> Path:
    """The weights, downloaded on first use into the download cache (``cache``, else
    ``$AUDIOCLF_CACHE``, else ~/.cache/audioclf) and verified against ``WEIGHTS_SHA256``.

    ``url`` (else ``WEIGHTS_URL``, the author's repository at the pinned commit) may name a
    mirror; the recorded sha256 is checked whatever the URL.
    """
    from audioclf.download import cache_dir, fetch

    return fetch(
        url or WEIGHTS_URL,
        cache_dir(cache),
        sha256=WEIGHTS_SHA256,
        size=WEIGHTS_SIZE,
        filename=WEIGHTS_FILE,
        progress=progress,
    )


def fit_to_network(waves, how: str):  # (clips, n) tensor -> (clips, n') tensor
    """Make clips long enough for the network: ``tile`` repeats each clip whole (as the
    reference did) ``ceil(MIN_SAMPLES / n)`` times; ``pad`` appends zeros up to MIN_SAMPLES.
    Clips already long enough pass unchanged. Needs a static length ``n``."""
    from keras import ops

    n = waves.shape[1]
    if n is None:
        raise ValueError("choi2017: the clip length must be known to tile or pad it")
    if n >= MIN_SAMPLES:
        return waves
    if how == "tile":
        return ops.tile(waves, (1, -(-MIN_SAMPLES // n)))
    if how == "pad":
        return ops.pad(waves, ((0, 0), (0, MIN_SAMPLES - n)))
    raise ValueError(f"fit: 'tile' or 'pad', got {how!r}")


def fitted_samples(n: int, how: str) -> int:
    """Length (samples) of a clip of ``n`` samples after ``fit_to_network``."""
    if n >= MIN_SAMPLES:
        return n
    return n * -(-MIN_SAMPLES // n) if how == "tile" else MIN_SAMPLES
