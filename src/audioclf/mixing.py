"""Mix a noise into a signal at an exact signal-to-noise ratio."""

from __future__ import annotations

import numpy as np


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
