"""The Keras 3 port of the Choi et al. 2017 tagger (audioclf.choi2017), checked against the
author's weights in ../shared/pretrained (skips without them unless AUDIOCLF_REQUIRE_SHARED=1).

The NumPy reference below is written from kapre 0.1.2.1's source (commit 0c37638), not from
the layer: explicit frames with TensorFlow's ``same`` padding, the stored DFT kernels and mel
matrix, in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioclf import choi2017
from tests.helpers import shared_file

WEIGHTS = "pretrained/choi2017_keras2/model_best.hdf5"
CLIP = "pretrained/choi2017_compact_cnn/1100103.clip.npy"  # 29 s of music at 12 kHz


@pytest.fixture(scope="module")
def weights() -> Path:
    return shared_file(WEIGHTS)


@pytest.fixture(scope="module")
def tagger(weights: Path):
    model = choi2017.build_tagger()
    choi2017.load_weights(model, weights)
    return model


@pytest.fixture(scope="module")
def kernels(weights: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(weights, "r") as f:
        g = f["model_weights/melgram/melgram"]
        return {
            k: np.asarray(g[f"{k}:0"], dtype=np.float64)
            for k in ("real_kernels", "imag_kernels", "Variable")
        }


def reference_melgram(waves: np.ndarray, k: dict[str, np.ndarray], ref: str = "clip") -> np.ndarray:
    """kapre's Melspectrogram + Normalization2D('data_sample') in float64:
    (clips, samples) -> (clips, 96, frames). ``ref``: dB reference, each clip's max ("clip",
    the port) or the batch's max ("batch", kapre's K.max over the batch tensor)."""
    hop, n_dft = 256, 512
    n = waves.shape[1]
    frames = -(-n // hop)
    pad = max((frames - 1) * hop + n_dft - n, 0)
    padded = np.pad(waves.astype(np.float64), ((0, 0), (pad // 2, pad - pad // 2)))
    index = np.arange(frames)[:, None] * hop + np.arange(n_dft)[None, :]
    framed = padded[:, index]  # (clips, frames, 512)
    real = framed @ k["real_kernels"][:, 0, 0, :]
    imag = framed @ k["imag_kernels"][:, 0, 0, :]
    mel = (real**2 + imag**2) @ k["Variable"]  # (clips, frames, 96)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    top = db.max(axis=(1, 2), keepdims=True) if ref == "clip" else db.max()
    db = np.maximum(db - top, -80.0)
    db = db.transpose(0, 2, 1)
    mean = db.mean(axis=(1, 2), keepdims=True)
    std = db.std(axis=(1, 2), keepdims=True)
    return (db - mean) / (std + 1e-10)


def test_the_stored_kernels_are_kapres_hann_windowed_dft(kernels) -> None:
    # kapre.backend.get_stft_kernels: cos/sin(2 pi k n / 512) * periodic Hann, bins 0..256.
    n = np.arange(512)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 512)
    w = 2 * np.pi * np.arange(257)[None, :] * n[:, None] / 512
    assert np.abs(kernels["real_kernels"][:, 0, 0] - np.cos(w) * hann[:, None]).max() < 1e-6
    assert np.abs(kernels["imag_kernels"][:, 0, 0] - np.sin(w) * hann[:, None]).max() < 1e-6
    assert kernels["Variable"].shape == (257, 96)  # 257 bins to 6 kHz (Nyquist) -> 96 mels


def test_front_end_matches_a_numpy_reference_to_float32_precision(tagger, kernels) -> None:
    import keras

    music = np.load(shared_file(CLIP))
    rng = np.random.default_rng(0)
    t = np.arange(choi2017.MIN_SAMPLES + 1000) / 12000
    waves = np.stack(
        [
            music[: len(t)],
            0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t)),
            0.5 * rng.standard_normal(len(t)),
        ]
    ).astype(np.float32)
    front = keras.Model(tagger.input, tagger.get_layer("normalization2d_1").output)
    ours = np.asarray(front(waves))[..., 0]
    expected = reference_melgram(waves, kernels)
    assert ours.shape == expected.shape == (3, 96, -(-waves.shape[1] // 256))
    assert ours.dtype == np.float32
    error = np.abs(ours - expected).max()
    median = np.median(np.abs(ours - expected))
    print(f"front end vs NumPy float64 reference: max abs error {error:.3g}, median {median:.3g}")
    # Normalised values span about -3..+3; float32 resolves 1e-7 relative, and the float32
    # STFT of bins ~80 dB under the clip's peak loses a few more digits.
    assert error < 1e-4
    assert median < 1e-5


def test_per_clip_decibel_reference_makes_a_clip_independent_of_its_batch(kernels) -> None:
    # Why the port departs from kapre's per-batch maximum: a quiet clip batched with a loud
    # one gets other bins clamped at -80 dB, so its normalised spectrogram changes.
    rng = np.random.default_rng(1)
    quiet = 1e-3 * rng.standard_normal((1, choi2017.MIN_SAMPLES))
    loud = 0.9 * rng.standard_normal((1, choi2017.MIN_SAMPLES))
    quiet[:, :20000] *= 1e-3  # a quiet part, more than 40 dB under the rest
    both = np.concatenate([quiet, loud])
    alone = reference_melgram(quiet, kernels, ref="batch")[0]
    assert np.abs(reference_melgram(both, kernels, ref="clip")[0] - alone).max() == 0
    assert np.abs(reference_melgram(both, kernels, ref="batch")[0] - alone).max() > 0.1


def test_features_do_not_depend_on_the_batch_size(tagger) -> None:
    embed = choi2017.embedding_model(tagger)
    rng = np.random.default_rng(2)
    waves = (rng.random((6, 96000)) * rng.uniform(0.01, 1, (6, 1))).astype(np.float32)
    together = embed.predict(waves, batch_size=6, verbose=0)
    alone = np.concatenate([embed.predict(w[None], batch_size=1, verbose=0) for w in waves])
    assert together.shape == (6, 160) and together.dtype == np.float32
    difference = np.abs(together - alone).max()
    print(f"batch of 6 vs one at a time: max abs difference {difference:.3g}")
    assert np.allclose(together, alone, rtol=1e-5, atol=1e-5)


def test_every_weight_in_the_file_is_used_by_name_and_shape(weights) -> None:
    model = choi2017.build_tagger()
    used = choi2017.load_weights(model, weights)
    assert used == choi2017.all_weights(weights)
    assert len(used) == 35  # 3 mel + 5 * (2 conv + 4 bn) + 2 dense
    assert sum(int(np.prod(v.shape)) for v in model.weights) == 327_442  # the notebook's total


def test_a_layer_subset_gives_32_values_per_layer(tagger) -> None:
    waves = np.random.default_rng(3).standard_normal((2, choi2017.MIN_SAMPLES)).astype(np.float32)
    full = np.asarray(choi2017.embedding_model(tagger)(waves))
    part = np.asarray(choi2017.embedding_model(tagger, [5, 2])(waves))
    assert part.shape == (2, 64)
    np.testing.assert_array_equal(part, np.concatenate([full[:, 32:64], full[:, 128:]], axis=1))
    with pytest.raises(ValueError, match="layers"):
        choi2017.check_layers([0, 6])


def test_a_file_without_a_weight_is_refused_naming_it(tmp_path: Path, weights: Path) -> None:
    import h5py

    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(weights.read_bytes())
    with h5py.File(broken, "a") as f:
        g = f["model_weights/conv2d_3/conv2d_3"]
        data = np.asarray(g["kernel:0"])
        del g["kernel:0"]
        g["kernel:0"] = data[:2]
    with pytest.raises(ValueError, match="conv2d_3.*kernel"):
        choi2017.load_weights(choi2017.build_tagger(), broken)


def test_tags_of_the_authors_example_clip(tagger) -> None:
    clip = np.load(shared_file(CLIP))
    assert clip.shape == (348_000,) and len(clip) >= choi2017.TAGGER_MIN_SAMPLES
    tags = tagger.predict(clip[None].astype(np.float32), verbose=0)[0]
    assert tags.shape == (50,)
    top = [(choi2017.TAGS[i], round(float(tags[i]), 3)) for i in np.argsort(-tags)[:5]]
    print(f"1100103.clip.npy top-5 tags: {top}")
    assert [name for name, _ in top] == ["folk", "rock", "indie", "acoustic", "jazz"]


def test_weights_are_downloaded_once_verified_into_the_cache(tmp_path: Path, weights: Path) -> None:
    from tests.httpserver import LoopbackServer

    cache = tmp_path / "cache"
    with LoopbackServer(weights.parent) as server:
        url = server.url(weights.name)
        path = choi2017.weights_file(url, str(cache), progress=False)
        assert path == cache / choi2017.WEIGHTS_FILE
        assert path.read_bytes() == weights.read_bytes()
        assert choi2017.weights_file(url, str(cache), progress=False) == path
        assert [r.method for r in server.requests] == ["GET"]  # the second call: the cache


def test_weights_with_another_checksum_are_refused(tmp_path: Path, weights: Path) -> None:
    from audioclf.download import DownloadError
    from tests.httpserver import LoopbackServer

    served = tmp_path / "served"
    served.mkdir()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same size, one bit off
    (served / weights.name).write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with LoopbackServer(served) as server, pytest.raises(DownloadError, match="sha256 mismatch"):
        choi2017.weights_file(server.url(weights.name), str(cache), progress=False)
    assert list(cache.iterdir()) == []  # nothing kept
