"""Coloured noise, and mixing a noise into a signal at an exact signal-to-noise ratio."""

from __future__ import annotations

import numpy as np

# Exponent a of the power spectrum P(f) ~ f**a of each coloured noise.
SPECTRAL_EXPONENT = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}


def mix_at_snr(
    signal: np.ndarray, noise: np.ndarray, snr_db: float, signal_power: float | None = None
) -> np.ndarray:
    """``signal + g * noise``, g chosen so that 10 log10(P_signal / P(g * noise)) = snr_db.

    Both arrays have shape (n,). ``signal_power`` (mean square) defaults to that of the whole
    signal; pass the power of the speech alone to hold the SNR over a word rather than over
    the silence around it. Computed in float64 so the SNR is exact; returns float32.
    An all-zero noise leaves the signal as it is; an all-zero signal has no level to hold an
    SNR against, so the noise is added at its own level.
    """
    s = np.asarray(signal, dtype=np.float64)
    v = np.asarray(noise, dtype=np.float64)
    if s.shape != v.shape or s.ndim != 1:
        raise ValueError(
            f"signal and noise must have the same shape (n,), got {s.shape}, {v.shape}"
        )
    p_signal = float(np.mean(s**2)) if signal_power is None else float(signal_power)
    p_noise = float(np.mean(v**2))
    if p_noise == 0.0:
        return s.astype(np.float32)
    if p_signal == 0.0:
        return (s + v).astype(np.float32)
    gain = np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (s + gain * v).astype(np.float32)


def colored_noise(kind: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of shape (n_samples,), float32, RMS 1, power spectrum ~ f**a exactly.

    a = 0 white, -1 pink, -2 brown, +1 blue, +2 violet (SPECTRAL_EXPONENT). White noise is
    shaped in the frequency domain: every rfft bin k > 0 is scaled by k**(a/2), so the
    expected power follows f**a exactly over the whole band; the DC bin is zeroed (an f**a
    with a < 0 is infinite there).
    """
    if kind not in SPECTRAL_EXPONENT:
        raise ValueError(f"unknown noise colour {kind!r}. Allowed: {', '.join(SPECTRAL_EXPONENT)}")
    if n_samples < 2:
        raise ValueError(f"n_samples: need at least 2 samples, got {n_samples}")
    white = rng.standard_normal(n_samples)
    spectrum = np.fft.rfft(white)
    k = np.arange(spectrum.size, dtype=np.float64)
    k[0] = 1.0  # placeholder, the DC bin is zeroed below
    spectrum *= k ** (SPECTRAL_EXPONENT[kind] / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=n_samples)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


GENERATED_NOISE = ("white", "pink", "brown")
GENERATED_NOISE_SECONDS = 60.0


def generated_noise(sample_rate: int, seed: int) -> dict[str, np.ndarray]:
    """Noise recordings for a dataset without any (augmentation and the corrupted test sets
    need some): white, pink and brown noise of 60 s at -20 dBFS RMS, seeded by ``seed``."""
    rng = np.random.default_rng([seed, 1])
    n = int(GENERATED_NOISE_SECONDS * sample_rate)
    return {f"generated_{kind}.wav": 0.1 * colored_noise(kind, n, rng) for kind in GENERATED_NOISE}
