"""Stage layer: each stage's main on a tiny generated dataset in a temporary folder.

The stages run in order, in this process, under an audit hook that records every file they
open and every output they rename into place, so the test also holds dvc.yaml's data deps and
outs against what each stage really reads and writes.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from audioclf.audio_io import write_wav
from audioclf.config import ConfigError
from audioclf.models import available
from tests.helpers import COMMANDS, make_raw, shared_file, tone_clip
from tests.httpserver import LoopbackServer
from tests.test_config import DVC, composed, write_params

_RECORD: dict[str, set[str]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _RECORD is None:
        return
    if event == "open" and isinstance(args[0], str | os.PathLike):
        mode = args[1] if isinstance(args[1], str) else "r"
        kind = "write" if any(c in mode for c in "wax+") else "read"
        _RECORD[kind].add(os.path.abspath(args[0]))
    elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], str | os.PathLike):
        _RECORD["read"].add(os.path.abspath(args[0]))
    elif event == "os.rename":
        _RECORD["renamed"].add(os.path.abspath(args[1]))


sys.addaudithook(_audit)


def run_stage(name: str, workdir: Path) -> dict[str, set[str]]:
    """Run stages/<name>.py's main() in ``workdir``; return the data paths it read and wrote."""
    global _RECORD
    import importlib

    module = importlib.import_module(f"stages.{name}")
    _RECORD = {"read": set(), "write": set(), "renamed": set()}
    try:
        module.main()
    finally:
        record, _RECORD = _RECORD, None
    root = str(workdir) + os.sep

    def rel(paths: set[str]) -> set[str]:
        return {p[len(root) :] for p in paths if p.startswith(root)}

    return {k: rel(v) for k, v in record.items()}


def tiny_params(workdir: Path, **changes: object) -> dict:
    return write_params(
        workdir,
        [
            f"data.prepare.commands=[{','.join(COMMANDS)}]",
            "data.prepare.validation_percentage=20",
            "data.prepare.testing_percentage=20",
            "train.epochs=3",
            "train.batch_size=32",
            "model.filters=[8,16]",
        ],
        **changes,
    )


def add_bad_files(raw: Path) -> dict[str, str]:
    """Files prepare must convert or skip; returns path -> expected action."""
    rate = 16000
    t = np.arange(2 * rate) / rate
    (raw / "yes" / "bad00000_nohash_0.wav").write_bytes(b"")
    (raw / "yes" / "bad00001_nohash_0.wav").write_bytes(b"RIFF....not really a wave file")
    write_wav(raw / "no" / "bad00002_nohash_0.wav", np.sin(2 * np.pi * 300 * t[:rate]), rate)
    data = (raw / "no" / "bad00002_nohash_0.wav").read_bytes()
    (raw / "no" / "bad00002_nohash_0.wav").write_bytes(data[:2000])  # truncated
    t48 = np.arange(72000) / 48000  # 1.5 s at 48 kHz
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 500 * t48), np.cos(2 * np.pi * 500 * t48)], 1)
    sf.write(raw / "up" / "odd00003_nohash_0.wav", stereo, 48000)  # 48 kHz stereo, too long
    sf.write(raw / "up" / "odd00004_nohash_0.wav", 0.3 * np.sin(t), 8000, subtype="PCM_U8")
    (raw / "up" / "notes.txt").write_text("not audio")
    return {
        "yes/bad00000_nohash_0.wav": "skipped",
        "yes/bad00001_nohash_0.wav": "skipped",
        "no/bad00002_nohash_0.wav": "skipped",
        "up/odd00003_nohash_0.wav": "converted",
        "up/odd00004_nohash_0.wav": "converted",
        "up/notes.txt": "skipped",
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """Run prepare -> features -> augment -> train -> evaluate -> compare on the tiny dataset."""
    work = tmp_path_factory.mktemp("stages")
    raw = make_raw(work / "data" / "raw", speakers=30)
    bad = add_bad_files(raw)
    tiny_params(work)
    old = Path.cwd()
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    try:
        records = {
            s: run_stage(s, work)
            for s in ("prepare", "corrupt", "features", "augment", "train", "evaluate", "compare")
        }
        yield work, {"records": records, "bad": bad}
    finally:
        os.chdir(old)
        del os.environ["MLFLOW_TRACKING_URI"]


def test_prepare_reports_every_bad_file_and_keeps_every_class(pipeline, capsys) -> None:
    work, info = pipeline
    out = work / "data" / "prepared"
    with (out / "report.csv").open() as f:
        report = {r["path"]: r for r in csv.DictReader(f)}
    for path, action in info["bad"].items():
        assert report[path]["action"] == action, path
    assert "empty file (0 bytes)" in report["yes/bad00000_nohash_0.wav"]["reason"]
    assert "truncated" in report["no/bad00002_nohash_0.wav"]["reason"]
    assert report["up/odd00003_nohash_0.wav"]["reason"] == (
        "mixed down from 2 channels; resampled 48000->16000 Hz; cropped 1.500 s to 1.000 s"
    )
    assert "resampled 8000->16000 Hz" in report["up/odd00004_nohash_0.wav"]["reason"]

    labels = json.loads((out / "labels.json").read_text())
    assert labels == {
        "classes": ["_silence_", "_unknown_", *COMMANDS],
        "sample_rate": 16000,
        "clip_samples": 16000,
    }
    with (out / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_split: dict[str, list[dict]] = {}
    for r in rows:
        by_split.setdefault(r["split"], []).append(r)
    speakers = {s: {r["speaker"] for r in rs if r["speaker"]} for s, rs in by_split.items()}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    for split, rs in by_split.items():
        x = np.load(out / f"{split}_x.npy")
        y = np.load(out / f"{split}_y.npy")
        assert x.dtype == np.float32 and x.shape == (len(rs), 16000)
        assert y.dtype == np.int32 and [labels["classes"][i] for i in y] == [r["label"] for r in rs]
        assert [int(r["index"]) for r in rs] == list(range(len(rs)))
        n_words = sum(r["label"] in COMMANDS for r in rs)
        # 10 % silence and 10 % unknown, rounded up, as TensorFlow's example.
        assert sum(r["label"] == "_silence_" for r in rs) == -(-n_words // 10)
        assert sum(r["label"] == "_unknown_" for r in rs) == -(-n_words // 10)
        assert {r["label"] for r in rs} >= set(COMMANDS)


def test_features_and_augment_shapes(pipeline) -> None:
    work, _ = pipeline
    for split in ("train", "validation", "test"):
        x = np.load(work / "data/features" / f"{split}_x.npy", mmap_mode="r")
        n = len(np.load(work / "data/prepared" / f"{split}_y.npy"))
        assert x.shape == (n, 98, 40) and x.dtype == np.float32
    aug = np.load(work / "data/augmented/train_x.npy")
    assert aug.shape == (n_train := len(np.load(work / "data/prepared/train_y.npy")), 98, 40)
    applied = [json.loads(line) for line in (work / "data/augmented/applied.jsonl").open()]
    assert [a["source_index"] for a in applied] == list(range(n_train))
    assert {t for a in applied for t in a} <= {
        "copy",
        "source_index",
        "shift",
        "gain",
        "background_noise",
    }  # the light chain
    assert all("shift" in a for a in applied)  # p = 1
    # Background noise comes only from the training part of the noise recordings.
    noise = [a["background_noise"] for a in applied if "background_noise" in a]
    assert 0.5 * n_train < len(noise) < n_train  # p = 0.8
    train_noise = np.load(work / "data/prepared/noise_train.npz")
    for a in noise:
        assert a["noise_file_path"] in train_noise.files and 0.0 <= a["snr_db"] <= 20.0
        assert a["offset"] + a["duration"] <= len(train_noise[a["noise_file_path"]]) / 16000


def test_corrupt_writes_every_set_deterministically(pipeline, tmp_path, monkeypatch) -> None:
    work, _ = pipeline
    params = yaml.safe_load((work / "params.yaml").read_text())
    sets = json.loads((work / "data/corrupted/sets.json").read_text())
    expected = [f"{t}_{s}" for t, sev in params["evaluate"]["corruptions"].items() for s in sev]
    assert list(sets) == expected and len(expected) == 11
    clean = np.load(work / "data/prepared/test_x.npy")
    for name in expected:
        x = np.load(work / "data/corrupted" / f"{name}.npy")
        assert x.shape == clean.shape and x.dtype == np.float16
        assert not np.allclose(x, clean, atol=1e-3), f"{name} left the clips as they were"
    applied = [json.loads(line) for line in (work / "data/corrupted/applied.jsonl").open()]
    assert len(applied) == len(expected) * len(clean)
    test_noise = set(np.load(work / "data/prepared/noise_test.npz").files)
    assert {a["noise"]["noise_file_path"] for a in applied if "noise" in a} <= test_noise
    # The same params give byte-identical sets, whatever ran before.
    shutil.copytree(work / "data/prepared", tmp_path / "data/prepared")
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    run_stage("corrupt", tmp_path)
    for name in [*expected, "applied.jsonl", "sets.json"]:
        path = name if "." in name else f"{name}.npy"
        again = (tmp_path / "data/corrupted" / path).read_bytes()
        assert again == (work / "data/corrupted" / path).read_bytes(), name


def test_train_and_evaluate_outputs(pipeline) -> None:
    work, _ = pipeline
    with (work / "data/model/history.csv").open() as f:
        history = list(csv.DictReader(f))
    assert 1 <= len(history) <= 3 and set(history[0]) >= {"loss", "val_loss", "val_accuracy"}
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test/acc_clean"] == metrics["test_accuracy"]
    sets = json.loads((work / "data/corrupted/sets.json").read_text())
    corrupted = [metrics[f"test/acc_{name}"] for name in sets]
    assert all(0.0 <= a <= 1.0 for a in corrupted)
    assert metrics["test/acc_corrupted_mean"] == pytest.approx(np.mean(corrupted))
    assert set(metrics["per_class_accuracy"]) == {"_silence_", "_unknown_", *COMMANDS}
    assert (work / "reports/confusion.png").read_bytes()[:4] == b"\x89PNG"
    with (work / "reports/predictions.csv").open() as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == len(np.load(work / "data/prepared/test_y.npy"))
    # The exported raw-wave model computes the same features inside: same predictions.
    assert metrics["export_agreement"] == 1.0


def test_compare_tables_the_run_and_shows_it_in_mlflow(pipeline) -> None:
    work, _ = pipeline
    metrics = json.loads((work / "reports/metrics.json").read_text())
    with (work / "reports/comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["features"]) == ("spec_cnn2d", "logmel")
    assert row["augment"] == "light"
    assert float(row["noise_snr0"]) == metrics["test/acc_noise_snr0"]
    assert float(row["corrupted_mean"]) == metrics["test/acc_corrupted_mean"]
    assert float(row["clean"]) == metrics["test_accuracy"]
    assert int(float(row["trainable_params"])) == metrics["trainable_params"]
    md = (work / "reports/comparison.md").read_text()
    assert f"| {metrics['test_accuracy']:.4f} |" in md and "| spec_cnn2d |" in md

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("audioclf")
    assert experiment.tags["mlflow.note.content"] == md
    # The learning curve: in reports/ and an artifact of the newest run.
    png = (work / "reports/learning_curve.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    run_id = rows[0]["run_id"]
    logged = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports/learning_curve.png")
    assert Path(logged).read_bytes() == png


def test_compare_registers_the_best_model_and_predict_loads_it_from_the_registry(
    pipeline, tmp_path, capsys
) -> None:
    """`audioclf predict --model models:/synthetic@champion` gives the evaluate stage's labels
    for the test clips (the registered model is the run's exported raw-wave model)."""
    import mlflow

    from audioclf.cli import main as cli

    work, _ = pipeline
    client = mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("synthetic", "champion")
    with (work / "reports/comparison.csv").open() as f:
        assert champion.run_id == next(csv.DictReader(f))["run_id"]  # the best row
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["audioclf.phase"] == "evaluating"
    assert "restored_from" not in run.data.tags  # train and evaluate logged one run
    assert [m.step for m in client.get_metric_history(run.info.run_id, "learning_rate")] == [
        1 + i for i in range(int(run.data.metrics["epochs_run"]))
    ]
    with (work / "data/prepared/manifest.csv").open() as f:
        test = [r for r in csv.DictReader(f) if r["split"] == "test" and r["label"] != "_silence_"]
    with (work / "reports/predictions.csv").open() as f:
        predicted = [r["predicted"] for r in csv.DictReader(f)]
    expected = {}
    for r in test[:6]:  # the original WAV files (silence clips are windows of noise)
        shutil.copy(work / "data/raw" / r["path"], tmp_path / Path(r["path"]).name)
        expected[Path(r["path"]).name] = predicted[int(r["index"])]
    capsys.readouterr()
    champion_uri = "models:/synthetic@champion"
    assert cli(["predict", str(tmp_path), "--top-k", "1", "--model", champion_uri]) == 0
    shown = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert {name: labels.split()[0] for name, labels in shown.items()} == expected
    assert cli(["predict", str(tmp_path), "--model", "models:/nosuch@champion"]) == 2
    assert "models:/nosuch@champion: not found in the MLflow store" in capsys.readouterr().err


def test_download_writes_the_speech_commands_layout(tmp_path: Path, monkeypatch) -> None:
    """The download stage on a tiny synthetic config; it touches exactly what dvc.yaml says."""
    monkeypatch.chdir(tmp_path)
    download = {
        "speakers": 2,
        "commands": ["yes", "no"],
        "unknown_words": ["bed"],
        "repetitions": 1,
        "background_kinds": ["pink"],
        "background_seconds": 2.0,
        "babble_bank_seconds": 2.0,
    }
    params = composed()
    params["data"]["download"] = download
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    record = run_stage("download", tmp_path)
    raw = tmp_path / "data/raw"
    words = sorted(p.name for p in raw.iterdir())
    assert words == ["_background_noise_", "bed", "no", "yes"]
    clips = sorted(p.relative_to(raw).as_posix() for p in raw.glob("[!_]*/*.wav"))
    assert len(clips) == 6 and all("_nohash_0.wav" in c for c in clips)
    data, rate = sf.read(raw / clips[0], dtype="int16")
    assert rate == 16000 and data.shape == (16000,)
    assert {p for p in record["renamed"] if "/.tmp-" not in p} == set(DVC["download"]["outs"])
    assert not {p for p in record["read"] if p.startswith("data/") and "/.tmp-" not in p}


@pytest.mark.parametrize(
    "stage", ["prepare", "corrupt", "features", "augment", "train", "evaluate", "compare"]
)
def test_dvc_yaml_data_deps_and_outs_match_what_the_stage_touched(pipeline, stage) -> None:
    _, info = pipeline
    record = info["records"][stage]
    spec = DVC[stage]
    data_deps = [d for d in spec["deps"] if d.startswith("data/")]
    outs = []
    for group in ("outs", "metrics", "plots"):
        outs += [next(iter(o)) if isinstance(o, dict) else o for o in spec.get(group, [])]

    def under(path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r + "/") for r in roots)

    # Reads of the stage's own half-written output (in its .tmp- folder) don't count.
    read = {p for p in record["read"] if p.startswith("data/") and "/.tmp-" not in p}
    # Listing a folder whose files are declared one by one (data/model) is not a read of its
    # own: each file opened is recorded, and must be a dependency.
    listed = {p for p in read if any(d.startswith(p + "/") for d in data_deps)}
    undeclared = {p for p in read - listed if not under(p, data_deps) and not under(p, outs)}
    assert not undeclared, f"{stage} reads files dvc.yaml does not list: {sorted(undeclared)}"
    unread = [d for d in data_deps if not any(under(p, [d]) for p in read)]
    assert not unread, f"dvc.yaml lists deps {stage} never reads: {unread}"
    # The MLflow store (mlflow.db + mlartifacts/) is outside DVC by design: it accumulates
    # every run, including queued experiments' runs.
    written = {
        p
        for p in record["renamed"]
        if not Path(p).name.startswith(".tmp-") and not p.startswith("mlartifacts/")
    }
    assert written == set(outs), f"{stage} wrote {sorted(written)}, dvc.yaml says {outs}"


def test_augment_none_writes_empty_arrays_of_the_right_shape(pipeline, tmp_path, monkeypatch):
    work, _ = pipeline
    shutil.copytree(work / "data/prepared", tmp_path / "data/prepared")
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["augment"] = composed(["augment=none"])["augment"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage("augment", tmp_path)
    x = np.load(tmp_path / "data/augmented/train_x.npy")
    y = np.load(tmp_path / "data/augmented/train_y.npy")
    assert x.shape == (0, 98, 40) and x.dtype == np.float32
    assert y.shape == (0,) and y.dtype == np.int32


def test_heavy_augmentation_and_spec_augment_train_and_export(pipeline, tmp_path, monkeypatch):
    """Every transform on every copy, SpecAugment in the model; the export still agrees."""
    work, _ = pipeline
    for folder in ("data/prepared", "data/features", "data/corrupted"):
        shutil.copytree(work / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["augment"] = composed(["augment=heavy"])["augment"]
    params["train"] |= {"epochs": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("augment", "train", "evaluate"):
        run_stage(stage, tmp_path)
    applied = [json.loads(line) for line in (tmp_path / "data/augmented/applied.jsonl").open()]
    fired = {t for a in applied for t in a} - {"copy", "source_index"}
    assert fired == set(params["augment"]["chain"])  # each transform fired on some copy
    import keras

    from audioclf.specaugment import layer_class

    layer_class()  # registered for loading

    model = keras.models.load_model(tmp_path / "data/model/model.keras")
    layer = model.get_layer("spec_augment")
    assert layer.get_config()["time_masks"] == params["augment"]["spec_augment"]["time_masks"]
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["export_agreement"] == 1.0  # masks are off at inference

    # A raw-waveform model refuses SpecAugment before training, naming the key.
    chosen = composed(["model=wave_cnn1d", "augment=heavy"])
    params |= {"model": chosen["model"], "features": chosen["features"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage("features", tmp_path)
    with pytest.raises(ConfigError, match=r"augment.spec_augment: model 'wave_cnn1d' takes a raw"):
        run_stage("train", tmp_path)


@pytest.mark.parametrize("model", available())
def test_every_model_trains_on_its_own_features_and_exports_a_raw_wave_model(
    pipeline, tmp_path, monkeypatch, model
) -> None:
    """Each model's yaml picks its features; training and the raw-wave export agree."""
    work, _ = pipeline
    for folder in ("data/prepared", "data/corrupted"):
        shutil.copytree(work / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    chosen = composed([f"model={model}"])
    params |= {"model": chosen["model"], "features": chosen["features"]}
    params["train"] |= {"epochs": 1}
    with contextlib.ExitStack() as stack:
        if params["features"]["type"] == "choi2017":  # its weights, served on loopback
            weights = shared_file("pretrained/choi2017_keras2/model_best.hdf5")
            server = stack.enter_context(LoopbackServer(weights.parent))
            params["features"] |= {
                "weights_url": server.url(weights.name),
                "cache_dir": str(tmp_path / "cache"),
            }
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for stage in ("features", "augment", "train", "evaluate"):
            run_stage(stage, tmp_path)
    info = json.loads((tmp_path / "data/features/info.json").read_text())
    meta = json.loads((tmp_path / "data/model/inference.json").read_text())
    assert meta["model"] == model and meta["sample_rate"] == info["input_rate"]
    assert meta["clip_samples"] == info["input_rate"]  # 1 s clips
    x = np.load(tmp_path / "data/features/test_x.npy", mmap_mode="r")
    assert x.shape[1:] == tuple(info["shape"]) and x.dtype == np.float32
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["export_agreement"] == 1.0
    assert metrics["epochs_run"] == 1 and metrics["trainable_params"] > 0
    if params["features"]["type"] == "choi2017":  # MLflow holds the backbone and classifier
        import mlflow

        run = mlflow.search_runs(experiment_names=["audioclf"], output_format="list")[0]
        assert run.data.params["backbone.name"] == "choi2017"
        assert run.data.params["backbone.embedding_size"] == "160"
        assert run.data.params["backbone.weights_sha256"] == info["backbone"]["weights_sha256"]
        assert run.data.params["classifier.name"] == model
    else:
        assert info["backbone"] is None


def test_a_folder_dataset_without_noise_runs_every_stage(tmp_path: Path, monkeypatch) -> None:
    """`data=folder`: 8 kHz stereo recordings of 3 classes, no noise recordings, no silence or
    unknown class. Generated noise stands in for augmentation and the noisy test sets, and
    evaluate reports balanced accuracy."""
    source = tmp_path / "recordings"
    rng = np.random.default_rng(3)
    for word, freq in {"low": 300.0, "mid": 900.0, "high": 2000.0}.items():
        (source / word).mkdir(parents=True)
        for s in range(20):
            wave = np.stack([tone_clip(freq, 8000, 0.8, rng)] * 2, axis=1)
            sf.write(source / word / f"spk{s:02d}-take1.wav", wave, 8000)
    work = tmp_path / "work"
    work.mkdir()
    write_params(
        work,
        [
            "data=folder",
            "data.prepare.validation_percentage=20",
            "data.prepare.testing_percentage=20",
            "train.epochs=2",
            "train.batch_size=16",
            "model.filters=[8,16]",
        ],
        data__download__path=str(source),
        data__prepare__speaker_pattern="^(spk[0-9]+)-",
    )
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    for stage in ("download", "prepare", "corrupt", "features", "augment", "train", "evaluate"):
        run_stage(stage, work)

    labels = json.loads((work / "data/prepared/labels.json").read_text())
    assert labels["classes"] == ["high", "low", "mid"]  # every class folder, sorted
    noise = np.load(work / "data/prepared/noise_test.npz")
    assert sorted(noise.files) == ["generated_brown", "generated_pink", "generated_white"]
    with (work / "data/prepared/manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    splits_of = {}
    for r in rows:
        splits_of.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())  # no speaker in two splits
    metrics = json.loads((work / "reports/metrics.json").read_text())
    recall = [a for a in metrics["per_class_accuracy"].values() if a is not None]
    assert metrics["test_balanced_accuracy"] == pytest.approx(np.mean(recall))
    assert "test/acc_noise_snr0" in metrics


def test_prepare_in_another_number_of_threads_gives_the_same_bytes(pipeline, tmp_path, monkeypatch):
    """Tasks of 3 files in a different number of threads write what the pipeline wrote."""
    from audioclf import parallel

    module = importlib.import_module("stages.prepare")
    work, _ = pipeline
    shutil.copytree(work / "data/raw", tmp_path / "data/raw")
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(module, "LOAD_PART", 3)
    threads = 3 if parallel.n_workers() < 3 else 1
    used = []

    def spy(fn, items, _threads=None):
        used.append(threads)
        return parallel.thread_map(fn, items, threads)

    monkeypatch.setattr(module, "thread_map", spy)
    run_stage("prepare", tmp_path)
    assert used, "prepare never loaded through thread_map"
    ours, theirs = tmp_path / "data/prepared", work / "data/prepared"
    names = sorted(p.name for p in theirs.iterdir())
    assert sorted(p.name for p in ours.iterdir()) == names
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


@pytest.mark.parametrize(
    ("stage", "inputs"),
    [("corrupt", "data/prepared"), ("augment", "data/prepared")],
)
def test_work_fanned_out_to_processes_gives_the_same_bytes(
    pipeline, tmp_path, monkeypatch, stage: str, inputs: str
):
    """Chunks of 10 items in 2 worker processes write what one process wrote."""
    import importlib

    from audioclf import fanout, parallel

    module = importlib.import_module(f"stages.{stage}")
    work, _ = pipeline
    shutil.copytree(work / inputs, tmp_path / inputs)
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fanout, "CHUNK", 10)
    monkeypatch.setattr(fanout, "PARALLEL_FROM", 20)
    if hasattr(module, "PARALLEL_FROM"):
        monkeypatch.setattr(module, "PARALLEL_FROM", 20)
    pooled = []

    def spy(fn, items, desc, workers=None, min_items=64, unit="clip"):
        pooled.append(len(items) >= min_items and parallel.n_workers() > 1)
        return parallel.ordered_map(fn, items, desc, workers, min_items, unit)

    monkeypatch.setattr(fanout, "ordered_map", spy)
    run_stage(stage, tmp_path)
    assert any(pooled), "the work never went to worker processes"
    out = {"prepare": "data/prepared", "corrupt": "data/corrupted", "augment": "data/augmented"}
    ours, theirs = tmp_path / out[stage], work / out[stage]
    names = sorted(p.name for p in theirs.iterdir())
    assert sorted(p.name for p in ours.iterdir()) == names
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def test_a_network_trained_here_is_the_backbone_of_a_linear_classifier(
    pipeline, tmp_path, monkeypatch
) -> None:
    """features=trained: the pipeline's own spec_cnn2d (moved away afterwards) under logreg."""
    import mlflow

    from audioclf import backbone, export

    work, _ = pipeline
    for folder in ("data/prepared", "data/corrupted"):
        shutil.copytree(work / folder, tmp_path / folder)
    shutil.copytree(work / "data/model", tmp_path / "backbones/words")
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    chosen = composed(["model=logreg", "features=trained"])
    params |= {"model": chosen["model"], "features": chosen["features"]}
    params["features"]["model"] = "backbones/words"  # relative to the repository root
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("features", "augment", "train", "evaluate"):
        run_stage(stage, tmp_path)

    info = json.loads((tmp_path / "data/features/info.json").read_text())
    digest = backbone.sha256(tmp_path / "backbones/words/inference.keras")
    assert info["backbone"]["weights_sha256"] == digest
    assert info["backbone"]["name"] == f"spec_cnn2d@{digest[:8]}"
    size = info["backbone"]["embedding_size"]
    x = np.load(tmp_path / "data/features/train_x.npy")
    assert x.shape[1:] == (1, size) == tuple(info["shape"]) and x.dtype == np.float32
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["export_agreement"] == 1.0
    run = mlflow.search_runs(experiment_names=["audioclf"], output_format="list")[0]
    assert run.data.params["backbone.weights_sha256"] == digest
    assert run.data.params["classifier.name"] == "logreg"

    # The exported model holds the backbone: it loads and predicts with the backbone gone.
    waves = np.load(tmp_path / "data/prepared/test_x.npy").astype(np.float32)
    before = export.predict(export.load(tmp_path / "data/model").model, waves)
    shutil.rmtree(tmp_path / "backbones")
    after = export.predict(export.load(tmp_path / "data/model").model, waves)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert before.argmax(1).tolist() == after.argmax(1).tolist()


def test_a_trained_backbone_refuses_a_missing_model_or_layer_naming_the_key(pipeline) -> None:
    from audioclf import backbone
    from audioclf.features import parse_features

    work, _ = pipeline
    model = str(work / "data/model")

    def shape(**changes: object) -> tuple[int, int]:
        return parse_features({"type": "trained", **changes}).output_shape(16000, 16000)

    with pytest.raises(ConfigError, match=r"features.model: name the backbone"):
        shape()
    with pytest.raises(ConfigError, match=r"features.model: '/nowhere': .*inference.keras"):
        shape(model="/nowhere")
    with pytest.raises(ConfigError, match=r"features.layer: .* has no layer 'nope'. Its layers: "):
        shape(model=model, layer="nope")
    with pytest.raises(ConfigError, match=r"features.layer: 999 is out of range"):
        shape(model=model, layer=999)
    with pytest.raises(ConfigError, match=r"features.sample_rate: the backbone .* 16000 Hz"):
        parse_features({"type": "trained", "model": model}).output_shape(8000, 8000)
    with pytest.raises(ConfigError, match=r"features.sha256: .* the backbone changed"):
        shape(model=model, sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"features.model: 'runs:/x'"):
        shape(model="runs:/x")
    # An MLflow run names the model it logged: the same file as the pipeline's data/model.
    import mlflow

    first = mlflow.search_runs(experiment_names=["audioclf"], output_format="list")[-1]
    folder = backbone.resolve(f"runs:/{first.info.run_id}")
    assert backbone.sha256(folder / "inference.keras") == backbone.sha256(
        work / "data/model/inference.keras"
    )
    with pytest.raises(ConfigError, match=r"features.model: 'runs:/0{32}': no such MLflow run"):
        backbone.resolve("runs:/" + "0" * 32)
    # A conv layer's (clips, frames, bins, channels) output is averaged to one value per channel.
    network, _ = backbone.load(model, -1)
    conv = next(n for n in backbone.layer_names(network) if "conv" in n)
    cfg = parse_features({"type": "trained", "model": model, "layer": conv})
    frames, size = cfg.output_shape(16000, 16000)
    waves = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 16000)).astype(np.float32)
    out = np.asarray(cfg.transform(16000)(waves))
    assert out.shape == (3, 1, size) == (3, frames, size) and out.dtype == np.float32


def test_few_shot_prepare_keeps_n_per_class_and_leaves_validation_and_test_alone(
    pipeline, tmp_path, monkeypatch, capsys
) -> None:
    work, _ = pipeline
    shutil.copytree(work / "data/raw", tmp_path / "data/raw")
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["data"]["prepare"]["max_train_per_class"] is None  # the default: all
    params["data"]["prepare"]["max_train_per_class"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage("prepare", tmp_path)
    assert "few-shot: at most 3 training clips per class" in capsys.readouterr().out
    few, full = tmp_path / "data/prepared", work / "data/prepared"
    for name in ("validation_x.npy", "validation_y.npy", "test_x.npy", "test_y.npy"):
        assert (few / name).read_bytes() == (full / name).read_bytes(), name
    classes = json.loads((few / "labels.json").read_text())["classes"]
    y_few, y_full = np.load(few / "train_y.npy"), np.load(full / "train_y.npy")
    for c in COMMANDS:
        assert np.sum(y_few == classes.index(c)) == min(3, np.sum(y_full == classes.index(c)))
    # _unknown_ and _silence_ are sized on the command clips kept, as always (10 % each).
    for extra in ("_unknown_", "_silence_"):
        got = np.sum(y_few == classes.index(extra))
        assert 0 < got <= np.sum(y_full == classes.index(extra)), extra
    assert len(y_few) < len(y_full)
    with (few / "manifest.csv").open() as f:
        kept = [r for r in csv.DictReader(f) if r["split"] == "train" and r["label"] in COMMANDS]
    with (full / "manifest.csv").open() as f:
        every = {r["path"] for r in csv.DictReader(f) if r["split"] == "train"}
    assert {r["path"] for r in kept} <= every and len(kept) == 3 * len(COMMANDS)
    # Reproducible: the same params give the same bytes.
    first = (few / "train_x.npy").read_bytes()
    run_stage("prepare", tmp_path)
    assert (few / "train_x.npy").read_bytes() == first
