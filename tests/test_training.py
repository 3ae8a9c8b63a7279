"""audioclf.training's GPU options and audioclf.threads: tiny generated data, real Keras fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioclf import threads
from audioclf.config import ConfigError, parse
from audioclf.training import (
    TrainConfig,
    check_precision,
    fit,
    float32_output,
    precision,
    with_normalization,
)


def has_gpu() -> bool:
    from audioclf.tfimport import import_tensorflow

    return bool(import_tensorflow().config.list_physical_devices("GPU"))


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of (16 frames, 4 bins) float32 features told apart by their mean."""
    rng = np.random.default_rng(seed)
    y = np.arange(64, dtype=np.int32) % 2
    x = rng.normal(size=(64, 16, 4)).astype(np.float32) + y[:, None, None] * 1.5
    return x, y


def body(mixed: bool = False):
    import keras

    with precision(mixed):
        inputs = keras.Input(shape=(16, 4))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(8, activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x), name="tiny")
    return float32_output(model) if mixed else model


def train_tiny(tmp_path: Path, **options) -> np.ndarray:
    from audioclf.training import make_deterministic

    make_deterministic(7, ops=not options.get("jit_compile", False))
    x, y = data()
    cfg = TrainConfig(epochs=3, batch_size=16, patience=3, **options)
    model = with_normalization(body(cfg.mixed_precision), x)
    model, history = fit(model, (x, y), (x, y), 2, cfg, tmp_path / "model.keras")
    assert len(history["loss"]) == 3
    return np.asarray(model.predict(x, verbose=0))


def test_gpu_options_default_off_and_threads_checked():
    cfg = parse(TrainConfig, {}, "train")
    assert (cfg.mixed_precision, cfg.jit_compile, cfg.threads) == (False, False, None)
    with pytest.raises(ConfigError, match="train.threads"):
        parse(TrainConfig, {"threads": 0}, "train")


def test_jit_compile_refused_when_keras_cannot_compile(tmp_path):
    from audioclf.training import make_deterministic

    make_deterministic(7)  # op determinism on: Keras would silently drop XLA
    x, y = data()
    cfg = TrainConfig(epochs=1, jit_compile=True)
    with pytest.raises(ConfigError, match="train.jit_compile"), pytest.warns(UserWarning):
        fit(with_normalization(body(), x), (x, y), (x, y), 2, cfg, tmp_path / "m.keras")


def test_jit_compile_trains_on_cpu_close_to_without(tmp_path):
    plain = train_tiny(tmp_path / "plain")
    xla = train_tiny(tmp_path / "xla", jit_compile=True)
    assert xla.dtype == np.float32 and xla.shape == (64, 2)
    np.testing.assert_allclose(xla, plain, atol=1e-4)


@pytest.mark.skipif("has_gpu()", reason="checks the refusal on a machine without a GPU")
def test_mixed_precision_refused_without_gpu():
    with pytest.raises(ConfigError, match="train.mixed_precision"):
        check_precision(TrainConfig(mixed_precision=True))
    check_precision(TrainConfig())  # the default passes


@pytest.mark.skipif("not has_gpu()", reason="mixed precision needs a GPU")
def test_mixed_precision_on_gpu_float32_softmax_and_close(tmp_path):
    import keras

    check_precision(TrainConfig(mixed_precision=True))
    plain = train_tiny(tmp_path / "plain")
    mixed = train_tiny(tmp_path / "mixed", mixed_precision=True)
    assert keras.mixed_precision.dtype_policy().name == "float32"  # policy restored
    assert mixed.dtype == np.float32
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(mixed.argmax(1) == plain.argmax(1)) >= 0.95
    reloaded = keras.models.load_model(tmp_path / "mixed" / "model.keras")
    x, _ = data()
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), mixed, atol=1e-6)


@pytest.mark.parametrize(
    ("cores", "workers", "override", "intra", "inter"),
    [(2, 1, None, 2, 2), (2, 2, None, 1, 1), (2, 4, None, 1, 1), (16, 4, None, 4, 2),
     (16, 3, None, 5, 2), (16, 4, 3, 3, 2), (1, 1, None, 1, 1)],
)  # fmt: skip
def test_plan_divides_cores_by_workers(cores, workers, override, intra, inter):
    assert threads.plan(cores, workers, override) == threads.Threads(intra, inter)


def write_info(root: Path, name: str, status: int) -> None:
    folder = root / ".dvc" / "tmp" / "exps" / "run" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.run").write_text(json.dumps({"name": name, "status": status}))


def test_workers_from_env_then_dvc_queue_then_one(tmp_path):
    assert threads.workers({}) == 1
    assert threads.workers({"AUDIOCLF_WORKERS": "3", "DVC_ROOT": str(tmp_path)}) == 3
    write_info(tmp_path, "a", threads.RUNNING)
    write_info(tmp_path, "b", threads.RUNNING)
    write_info(tmp_path, "c", 3)  # finished
    (tmp_path / ".dvc/tmp/exps/run/d").mkdir()
    (tmp_path / ".dvc/tmp/exps/run/d/d.run").write_text("{trunc")  # being written
    assert threads.running_dvc_experiments(tmp_path) == 2
    assert threads.workers({"DVC_ROOT": str(tmp_path)}) == 2
    assert threads.workers({"DVC_ROOT": str(tmp_path / "none")}) == 1
    with pytest.raises(ConfigError, match="AUDIOCLF_WORKERS"):
        threads.workers({"AUDIOCLF_WORKERS": "0"})


def test_dvc_status_value_matches_dvc():
    from dvc.repo.experiments.executor.base import TaskStatus

    assert threads.RUNNING == TaskStatus.RUNNING


def test_configure_sizes_tensorflow_and_blas_in_a_fresh_process():
    import os
    import subprocess
    import sys

    code = (
        "from audioclf import threads; t = threads.configure(); "
        "import tensorflow as tf; from threadpoolctl import threadpool_info; "
        "print(t.intra, t.inter, tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads(), "
        "{p['num_threads'] for p in threadpool_info()})"
    )
    env = {**os.environ, "AUDIOCLF_WORKERS": "2", "AUDIOCLF_THREADS": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=4)
    want = threads.plan(threads.available_cores(), 2)
    assert out[:4] == [str(want.intra), str(want.inter), str(want.intra), str(want.inter)]
    assert out[4].strip() in ("set()", f"{{{want.intra}}}")  # every BLAS pool limited
