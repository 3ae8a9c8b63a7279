"""Model builders, their inputs, and the predict command's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioclf.audio_io import write_wav
from audioclf.config import ConfigError
from tests.helpers import RATE, sine


def test_model_builder_refuses_bad_hyperparameters_by_name() -> None:
    from audioclf.models import build_model, parse_model, spec_cnn2d

    with pytest.raises(ValueError, match=r"^dropout: must be in \[0, 1\), got 1.5"):
        spec_cnn2d.build((98, 40), 12, dropout=1.5)  # a builder's plain error...
    bad = parse_model({"name": "spec_cnn2d", "dropout": 1.5})
    with pytest.raises(ConfigError, match=r"^model.dropout: must be in \[0, 1\), got 1.5"):
        build_model(bad, (98, 40), 12)  # ...names the key where the model is built
    empty = parse_model({"name": "spec_cnn2d", "filters": []})
    with pytest.raises(ConfigError, match=r"^model.filters: list at least one"):
        build_model(empty, (98, 40), 12)
    model = build_model(parse_model({"name": "spec_cnn2d", "filters": [4, 8]}), (98, 40), 12)
    assert model.output_shape == (None, 12)


def test_a_spectrogram_model_refuses_wave_features_naming_the_options(tmp_path: Path) -> None:
    from audioclf.models import check_input, parse_model

    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "raw.yaml").write_text("type: wave\n")
    (tmp_path / "features" / "mel.yaml").write_text("type: logmel\n")
    model = parse_model({"name": "ds_cnn"})
    assert model.input == "spectrogram"
    check_input(model, "mfcc", tmp_path)  # any spectrogram type fits
    with pytest.raises(ConfigError, match=r"takes a spectrogram .* Pick `-S features=mel`"):
        check_input(model, "wave", tmp_path)
    wave = parse_model({"name": "wave_cnn1d"})
    with pytest.raises(ConfigError, match=r"takes a raw waveform .* Pick `-S features=raw`"):
        check_input(wave, "logmel", tmp_path)


def test_predict_names_a_missing_path_or_model_and_exits_2(tmp_path: Path, capsys) -> None:
    from audioclf.cli import main

    assert main(["predict", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["predict", str(tmp_path)]) == 2
    assert "no .wav files in this folder or below" in capsys.readouterr().err
    write_wav(tmp_path / "a.wav", sine(440), RATE)
    assert main(["predict", str(tmp_path), "--model", str(tmp_path / "m")]) == 2
    assert "inference.keras: no exported model there" in capsys.readouterr().err
