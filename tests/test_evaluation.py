"""Metrics, the comparison table and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioclf import atomic, evaluation


def test_confusion_and_per_class_accuracy_exact() -> None:
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    cm = evaluation.confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    acc = evaluation.per_class_accuracy(cm)
    assert acc[:3].tolist() == [0.5, 2 / 3, 1.0] and np.isnan(acc[3])
    probs = np.eye(4)[y_pred] * 0.9 + 0.025
    s = evaluation.summarize(probs, y_true, ["a", "b", "c", "d"])
    assert s["accuracy"] == pytest.approx(4 / 6) and s["per_class_accuracy"]["d"] is None


def test_atomic_writes_leave_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half.npy").write_bytes(b"xx")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    atomic.write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_files_move_each_file_and_keep_the_folders_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic.atomic_files(out) as tmp:
        (tmp / "half.npy").write_bytes(b"xx")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary sibling
    out.mkdir()
    (out / ".gitignore").write_text("/a.npy\n")
    (out / "a.npy").write_bytes(b"old")
    with atomic.atomic_files(out) as tmp:
        (tmp / "a.npy").write_bytes(b"new")
        (tmp / "b.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [".gitignore", "a.npy", "b.json"]
    assert (out / "a.npy").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_comparison_table_is_best_first_with_corrupted_columns_when_present() -> None:
    import pandas as pd

    from audioclf.comparison import markdown, table

    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "start_time": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "tags.mlflow.runName": ["old", "mid", "new"],
            "params.data.name": ["synthetic", "synthetic", "fsdd"],
            "params.model.name": ["spec_cnn2d", "light_cnn", "wave_cnn1d"],
            "params.features.type": ["logmel", "logspec", "wave"],
            "params.features.sample_rate": ["None", "8000", "8000"],
            "params.augment.name": ["none", "noise_shift", "noise_shift"],
            "metrics.trainable_params": [72796.0, 313854.0, 457452.0],
            "metrics.train_seconds": [180.3, 60.0, 600.0],
            "metrics.seconds_per_epoch": [9.0, 3.0, 30.0],
            "metrics.epochs_run": [20.0, 20.0, 20.0],
            "metrics.best_val_accuracy": [0.875, 0.8, 0.9],
            "metrics.test_accuracy": [0.8917, 0.85, 0.8917],
            "metrics.test_balanced_accuracy": [0.89, None, 0.88],  # older runs lack it
            "metrics.test/acc_clean": [0.8917, None, 0.8917],  # = test_accuracy: no column
            "metrics.test/acc_speed_slow": [0.7, None, 0.8],
            "metrics.test/acc_noise_snr10": [0.5, None, 0.6],
            "metrics.test/acc_corrupted_mean": [0.6, None, 0.7],
        }
    )
    df = table(runs)
    assert list(df["run"]) == ["new", "old", "mid"]  # ties: newer first
    assert list(df["features"]) == ["wave 8k", "logmel", "logspec 8k"]
    assert list(df.columns)[-6:] == [
        "clean",
        "balanced",
        "noise_snr10",
        "speed_slow",
        "corrupted_mean",
        "run_id",
    ]
    md = markdown(df).splitlines()
    assert md[0].startswith("| run | data | model | features | augment | trainable_params |")
    assert md[2] == (
        "| new | fsdd | wave_cnn1d | wave 8k | noise_shift | 457,452 | 600 | 30.0 | 20 | 0.9000 "
        "| 0.8917 | 0.8800 | 0.6000 | 0.8000 | 0.7000 |"
    )
    assert md[4].endswith("| 0.8500 |  |  |  |  |")  # no corrupted-test values for that run
    assert table(pd.DataFrame()).empty


def test_transfer_rows_name_their_backbone_beside_the_from_scratch_rows() -> None:
    import pandas as pd

    from audioclf.comparison import table
    from audioclf.features import parse_features
    from audioclf.tracking import transfer_params

    backbone = parse_features({"type": "choi2017", "layers": [1, 3]}).backbone()
    assert backbone["embedding_size"] == 64 and backbone["layers"] == "1,3"
    assert len(backbone["weights_sha256"]) == 64
    assert parse_features({"type": "logmel"}).backbone() is None
    logged = transfer_params(backbone, {"name": "logreg", "C": 0.5, "max_iter": 100})
    assert logged == {
        "backbone.name": "choi2017",
        "backbone.weights_sha256": backbone["weights_sha256"],
        "backbone.layers": "1,3",
        "backbone.embedding_size": 64,
        "classifier.C": 0.5,
        "classifier.max_iter": 100,
        "classifier.name": "logreg",
    }
    assert transfer_params(None, {"name": "spec_cnn2d"}) == {}

    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "start_time": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "params.model.name": ["spec_cnn2d", "logreg"],
            "params.features.type": ["logmel", "choi2017"],
            "params.features.sample_rate": ["None", "12000"],
            "params.backbone.name": [None, "choi2017"],
            "params.backbone.layers": [None, "1,3"],
            "metrics.test_accuracy": [0.9, 0.8],
        }
    )
    df = table(runs)
    assert list(zip(df["model"], df["features"])) == [
        ("spec_cnn2d", "logmel"),
        ("logreg", "choi2017 [1,3]"),
    ]


def test_learning_curve_averages_runs_per_series_and_n_with_all_last(tmp_path: Path) -> None:
    import pandas as pd

    from audioclf.comparison import learning_curve
    from audioclf.plots import learning_curve_png

    def run(i: int, model: str, n: str, acc: float, backbone: str | None = None) -> dict:
        return {
            "run_id": f"r{i}",
            "start_time": pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=i),
            "params.data.name": "speech_commands",
            "params.model.name": model,
            "params.features.type": "choi2017" if backbone else "logmel",
            "params.features.sample_rate": "None",
            "params.backbone.name": backbone,
            "params.backbone.layers": "1,2,3,4,5" if backbone else None,
            "params.data.prepare.max_train_per_class": n,
            "metrics.test_accuracy": acc,
        }

    runs = pd.DataFrame(
        [
            run(0, "logreg", "None", 0.9, "choi2017"),
            run(1, "logreg", "5", 0.5, "choi2017"),
            run(2, "logreg", "20", 0.7, "choi2017"),
            run(3, "logreg", "5", 0.6, "choi2017"),  # a second seed at N = 5: averaged
            run(4, "spec_cnn2d", "50", 0.8),
            run(5, "spec_cnn2d", "None", 0.95),
        ]
    )
    curve = learning_curve(runs)
    transfer = curve[curve["series"] == "speech_commands: logreg / choi2017 [1,2,3,4,5]"]
    assert list(transfer["n"]) == ["5", "20", "all"]
    assert list(transfer["accuracy"]) == pytest.approx([0.55, 0.7, 0.9])
    assert list(transfer["runs"]) == [2, 1, 1]
    scratch = curve[curve["series"] == "speech_commands: spec_cnn2d / logmel"]
    assert list(zip(scratch["n"], scratch["accuracy"])) == [("50", 0.8), ("all", 0.95)]
    # Runs from before the key existed count as "all".
    older = learning_curve(runs.drop(columns="params.data.prepare.max_train_per_class"))
    assert set(older["n"]) == {"all"} and len(older) == 2
    assert learning_curve(pd.DataFrame()).empty

    for name, data in (("curve.png", curve), ("empty.png", learning_curve(pd.DataFrame()))):
        learning_curve_png(data, tmp_path / name, "test")
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
