"""Audio I/O, clip conversion and streaming .npy files: generated signals, exact values."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf import clips
from audioclf.audio_io import AudioError, read_wav, write_wav
from audioclf.npystream import NpyWriter, iter_rows
from tests.helpers import RATE, sine


def test_wav_round_trip_is_16_bit_exact(tmp_path: Path) -> None:
    wave = sine(1000.0, 1600)
    write_wav(tmp_path / "a.wav", wave, RATE)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE and back.dtype == np.float32 and back.shape == (1600, 1)
    assert np.max(np.abs(back[:, 0] - wave)) <= 1 / 32767


def test_fit_length_pads_end_and_crops_centre() -> None:
    wave = np.arange(10, dtype=np.float32)
    assert clips.fit_length(wave, 14).tolist() == list(range(10)) + [0, 0, 0, 0]
    assert clips.fit_length(wave, 4).tolist() == [3, 4, 5, 6]


def test_stereo_8bit_48k_long_file_is_converted_with_notes(tmp_path: Path) -> None:
    stereo = np.stack([sine(440, 96000, 48000), sine(440, 96000, 48000)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 48000, subtype="PCM_U8")
    loaded = clips.load_clip(tmp_path / "s.wav", RATE, RATE)
    assert loaded.wave.shape == (RATE,) and loaded.wave.dtype == np.float32
    assert loaded.notes == (
        "mixed down from 2 channels",
        "resampled 48000->16000 Hz",
        "cropped 2.000 s to 1.000 s",
    )
    # 440 Hz survives resampling: the spectral peak is at 440 Hz (1 Hz bins).
    assert np.argmax(np.abs(np.fft.rfft(loaded.wave))) == 440


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (b"this is not audio at all, just text" * 10, "not readable as audio"),
    ],
)
def test_unreadable_files_raise_audio_error_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as err:
        clips.load_clip(path, RATE, RATE)
    assert str(path) in str(err.value)


def test_audio_error_survives_pickling_with_path_and_reason() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(AudioError("a/b.wav", "empty file (0 bytes)")))
    assert (err.path, err.reason, str(err)) == (
        "a/b.wav",
        "empty file (0 bytes)",
        "a/b.wav: empty file (0 bytes)",
    )


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "t.wav", sine(440), RATE)
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"truncated \(header declares 32000 bytes"):
        clips.load_clip(tmp_path / "t.wav", RATE, RATE)


def test_npy_writer_appends_rows_into_a_file_np_save_would_write(tmp_path: Path) -> None:

    x = np.random.default_rng(0).standard_normal((10, 7)).astype(np.float32)
    np.save(tmp_path / "ref.npy", x)
    with NpyWriter(tmp_path / "out.npy", np.float32, (7,)) as w:
        w.append(x[:3])
        w.append(x[3:].astype(np.float64))  # converted to the file's dtype
    assert (tmp_path / "out.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    batches = list(iter_rows(tmp_path / "out.npy", 4))
    assert [b.shape for b in batches] == [(4, 7), (4, 7), (2, 7)]
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), x)
    with NpyWriter(tmp_path / "bad.npy", np.float32, (7,)) as w, pytest.raises(ValueError):
        w.append(np.zeros((2, 6)))


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_npy_writer_copies_rows_of_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:

    from audioclf.npystream import NpyWriter

    if not kernel_copy:  # as on macOS, which has no copy_file_range
        monkeypatch.delattr(os, "copy_file_range")
    x = np.arange(40, dtype=np.float32).reshape(8, 5)
    np.save(tmp_path / "chunk.npy", x)
    with NpyWriter(tmp_path / "out.npy", np.float32, (5,)) as w:
        w.append(x[:1] * -1)
        w.append_rows_of(tmp_path / "chunk.npy", 2, 3)
        w.append_rows_of(tmp_path / "chunk.npy", 7, 1)
        w.append(x[:1] * -2)
        with pytest.raises(ValueError, match="out of 8"):
            w.append_rows_of(tmp_path / "chunk.npy", 6, 3)
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, np.concatenate([-x[:1], x[2:5], x[7:8], -2 * x[:1]]))
