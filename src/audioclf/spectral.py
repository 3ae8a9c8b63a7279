"""The spectral transforms of ``audioclf.features`` in NumPy and SciPy, without TensorFlow.

The feature cache (the ``features`` and ``augment`` stages, and ``evaluate``'s corrupted test
sets) is computed here; the exported model computes the same features with TensorFlow's
``tf.signal`` ops inside the model (``audioclf.export``). Each function below ports its
``tf.signal`` counterpart step by step, in float32 as TensorFlow computes it, so the two agree
to float32 rounding (tests/test_spectral.py compares them on generated signals; the FFTs are
different libraries, so the last bits differ): importing TensorFlow costs ~12 s per process,
more than computing the features of 50,000 clips here.

Shapes: waves (clips, samples) float32; frames = 1 + (samples - frame_length) // frame_step
(no end padding, as ``tf.signal.stft(pad_end=False)``); bins = fft_length // 2 + 1.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

# tf.signal.linear_to_mel_weight_matrix's HTK mel scale: mel = 1127 ln(1 + f / 700 Hz).
MEL_BREAK_HZ = np.float32(700.0)
MEL_HIGH_Q = np.float32(1127.0)


def hann_window(length: int) -> np.ndarray:
    """float32 (length,): ``tf.signal.hann_window(length, periodic=True)``, computed as
    TensorFlow does. Its quirk kept: an odd length gets the symmetric window (denominator
    length - 1), an even one the periodic window (denominator length)."""
    if length == 1:
        return np.ones(1, dtype=np.float32)
    even = 1 - length % 2
    n = np.float32(length + even - 1)
    count = np.arange(length, dtype=np.float32)
    cos_arg = np.float32(2 * np.pi) * count / n
    return np.float32(0.5) - np.float32(0.5) * np.cos(cos_arg)


def stft_magnitude(
    waves: np.ndarray, window: np.ndarray, frame_step: int, fft_length: int
) -> np.ndarray:
    """|STFT|, float32 (clips, frames, fft_length // 2 + 1): ``tf.abs(tf.signal.stft(waves,
    len(window), frame_step, fft_length, hann_window, pad_end=False))``.

    Frames are a strided view of ``waves``; each is windowed and zero-padded at its end to
    ``fft_length`` by the real FFT (single precision, complex64 out, as TensorFlow's).
    """
    waves = np.asarray(waves, dtype=np.float32)
    frame_length = len(window)
    # (clips, frames, frame_length), a view: no copy until the window multiplies it.
    framed = np.lib.stride_tricks.sliding_window_view(waves, frame_length, axis=-1)[
        ..., ::frame_step, :
    ]
    spectrum = scipy.fft.rfft(framed * window, n=fft_length, axis=-1)
    return np.abs(spectrum)


def hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """HTK mel of float32 ``hertz``, as TensorFlow's ``_hertz_to_mel`` (float32)."""
    return MEL_HIGH_Q * np.log(np.float32(1.0) + hertz / MEL_BREAK_HZ)


def tf_linspace(start: np.float32, stop: np.float32, num: int) -> np.ndarray:
    """float32 (num,): ``tf.linspace`` (``linspace_nd``): start + i * delta inside, start and
    stop exactly at the ends."""
    delta = (stop - start) / np.float32(max(num - 1, 1))
    inside = start + delta * np.arange(1, max(num - 1, 1), dtype=np.float32)
    return np.concatenate([[start], inside, [stop]]).astype(np.float32)[:num]


def mel_matrix(n_mels: int, n_bins: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """float32 (n_bins, n_mels): ``tf.signal.linear_to_mel_weight_matrix`` (HTK triangles on
    the mel scale between ``fmin`` and ``fmax`` Hz; the DC bin gets no weight)."""
    zero = np.float32(0.0)
    nyquist = np.float32(sample_rate) / np.float32(2.0)
    linear = tf_linspace(zero, nyquist, n_bins)[1:]  # Hz of bins 1..n_bins-1
    bins_mel = hertz_to_mel(linear)[:, None]  # (n_bins - 1, 1)
    edges = tf_linspace(hertz_to_mel(np.float32(fmin)), hertz_to_mel(np.float32(fmax)), n_mels + 2)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]  # (1, n_mels)
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(zero, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


def log_mel(magnitude: np.ndarray, matrix: np.ndarray, log_offset: float) -> np.ndarray:
    """float32 (clips, frames, n_mels): log(|X|^2 @ matrix + log_offset), as the TensorFlow
    transform (``tf.tensordot(tf.square(magnitude), matrix, 1)``)."""
    power = np.square(magnitude)
    mel = (power.reshape(-1, power.shape[-1]) @ matrix).reshape(*power.shape[:-1], -1)
    return np.log(mel + np.float32(log_offset))


def mfcc(log_mel_spectrogram: np.ndarray, n_mfcc: int) -> np.ndarray:
    """float32 (..., n_mfcc): ``tf.signal.mfccs_from_log_mel_spectrograms(x)[..., :n_mfcc]``:
    the unnormalised DCT-II over mel bands times 1 / sqrt(2 * n_mels) (HTK's scaling)."""
    n_mels = log_mel_spectrogram.shape[-1]
    dct = scipy.fft.dct(log_mel_spectrogram, type=2, axis=-1)
    return (dct * (np.float32(1.0) / np.sqrt(np.float32(n_mels * 2.0))))[..., :n_mfcc]
