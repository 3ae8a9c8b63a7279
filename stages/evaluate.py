"""Stage `evaluate`: test-set metrics, plots, and the run's MLflow record.

Reads:  data/model/ (model.keras, inference.keras + .json, history.csv, summary.json,
        run.json: the MLflow run train started);
        data/features/test_x.npy, info.json (the backbone, logged);
        data/prepared/test_{x,y}.npy, labels.json;
        data/corrupted/ (the corrupted test sets, features computed here as for the cache);
        params.yaml (the classifier's sections, logged to MLflow; not other tasks')
Writes: reports/metrics.json      accuracy, loss, per-class accuracy (DVC metric), accuracy on
                                  the clean and each corrupted test set (test/acc_clean,
                                  test/acc_<set>, test/acc_corrupted_mean), and how often the
                                  exported raw-wave model agrees with the cache model
        reports/predictions.csv   true and predicted label per test clip (DVC confusion plot)
        reports/confusion.png, reports/curves.png
        the MLflow run train started, ended FINISHED: flattened params (a transfer run adds
        backbone.* and classifier.*), test metrics, test
        dataset inputs, images, model (or, when train was restored from DVC's run cache or up
        to date, a new run tagged restored_from=<train's run> with its history copied)
Params: evaluate, and data, features, augment, model, train (logged)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from audioclf import tracking
from audioclf.atomic import atomic_file, write_json, write_text
from audioclf.config import flatten, load_params, parse, section
from audioclf.evaluation import EvaluateConfig, set_accuracies, summarize
from audioclf.features import compute, parse_features, resample_clips
from audioclf.lineage import EVALUATION_INPUTS, TRAINING_INPUTS
from audioclf.plots import confusion_png, curves_png
from audioclf.stagetimer import StageTimer
from audioclf.tfimport import import_tensorflow

MODEL = Path("data/model")
FEATURES = Path("data/features")
PREPARED = Path("data/prepared")
CORRUPTED = Path("data/corrupted")
REPORTS = Path("reports")
# The sections this task logs; params.yaml also holds other tasks' (trigger: trigger/dvc.yaml).
CLASSIFIER_SECTIONS = ("data", "features", "augment", "model", "train", "evaluate")
# What metrics.json takes from the train stage's summary.json.
TRAINED = (
    "best_val_accuracy",
    "best_val_loss",
    "best_epoch",
    "epochs_run",
    "trainable_params",
    "train_seconds",
    "seconds_per_epoch",
)


def read_history(path: Path) -> dict[str, list[float]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    # An empty column (no learning rate for a scikit-learn classifier) is left out.
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k != "epoch" and rows[0][k] != ""}


def corrupted_predictions(
    model, n_clips: int, feats, sample_rate: int, batch_size: int
) -> dict[str, np.ndarray]:
    """The predicted labels on each set of data/corrupted, its features computed as the
    cache's are."""
    sets = json.loads((CORRUPTED / "sets.json").read_text())
    out = {}
    for name in sets:
        waves = np.load(CORRUPTED / f"{name}.npy", mmap_mode="r")  # float16 (clips, samples)
        if len(waves) != n_clips:
            raise ValueError(
                f"{CORRUPTED}/{name}.npy has {len(waves)} clips, the test set {n_clips}: "
                "the corrupted sets are stale; run `dvc repro` to regenerate them"
            )
        x = np.concatenate(list(compute(waves, feats, sample_rate, batch_size)))
        out[name] = model.predict(x, batch_size=batch_size, verbose=0).argmax(axis=1)
    return out


def export_agreement(probs: np.ndarray, sample_rate: int, batch_size: int) -> float:
    """How often the exported raw-wave model (features computed inside it from the raw test
    clips) picks the cached-features model's class."""
    from audioclf import export

    exported = export.load(MODEL)
    waves = resample_clips(np.load(PREPARED / "test_x.npy"), sample_rate, exported.sample_rate)
    wave_probs = export.predict(exported.model, waves, batch_size)
    agreement = float(np.mean(wave_probs.argmax(axis=1) == probs.argmax(axis=1)))
    if agreement < 1:
        print(
            f"[evaluate] WARNING: the exported model ({MODEL}/{export.MODEL_FILE}) disagrees "
            f"with the cached-features model on {1 - agreement:.2%} of the test clips"
        )
    return agreement


def write_reports(
    metrics: dict,
    test: dict,
    probs: np.ndarray,
    y_test: np.ndarray,
    classes: list[str],
    history: dict[str, list[float]],
    title: str,
) -> None:
    """metrics.json, predictions.csv, confusion.png and curves.png in reports/."""
    REPORTS.mkdir(exist_ok=True)
    write_json(REPORTS / "metrics.json", metrics)
    y_pred = probs.argmax(axis=1)
    write_text(
        REPORTS / "predictions.csv",
        "actual,predicted\n"
        + "".join(f"{classes[t]},{classes[p]}\n" for t, p in zip(y_test, y_pred)),
    )
    cm = np.asarray(test["confusion_matrix"])
    for name, draw in (
        ("confusion.png", lambda p: confusion_png(cm, classes, p, title)),
        ("curves.png", lambda p: curves_png(history, p, title)),
    ):
        with atomic_file(REPORTS / name) as tmp:
            draw(tmp)


def evaluate(cfg: EvaluateConfig, feats, history: dict, flat_params: dict, run_id: str):
    """Test and corrupted-set metrics, the reports and the run's results; (robustness, test,
    test clips)."""
    labels = json.loads((PREPARED / "labels.json").read_text())
    classes, rate = labels["classes"], labels["sample_rate"]
    x_test = np.load(FEATURES / "test_x.npy", mmap_mode="r")
    y_test = np.load(PREPARED / "test_y.npy")
    trained = json.loads((MODEL / "summary.json").read_text())

    import_tensorflow()  # quiet, then Keras on its TensorFlow backend
    import keras

    from audioclf.specaugment import layer_class

    layer_class()  # registered for loading
    model = keras.models.load_model(MODEL / "model.keras")
    probs = model.predict(np.asarray(x_test), batch_size=cfg.batch_size, verbose=0)
    test = summarize(probs, y_test, classes)
    robustness = {"test/acc_clean": test["accuracy"]}
    robustness |= set_accuracies(
        corrupted_predictions(model, len(y_test), feats, rate, cfg.batch_size), y_test
    )
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_balanced_accuracy": test["balanced_accuracy"],
        "test_loss": test["loss"],
        **{k: trained[k] for k in TRAINED},
        "export_agreement": export_agreement(probs, rate, cfg.batch_size),
        **robustness,
        "per_class_accuracy": test["per_class_accuracy"],
    }
    title = f"{trained['model']}: test accuracy {test['accuracy']:.4f}"
    write_reports(metrics, test, probs, y_test, classes, history, title)
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    scalars |= {f"test_acc_{c}": a for c, a in test["per_class_accuracy"].items() if a is not None}
    tracking.log_results(
        run_id,
        flat_params,
        scalars,
        [REPORTS / "metrics.json", REPORTS / "confusion.png", REPORTS / "curves.png"],
        MODEL,
    )
    return robustness, test, len(y_test)


def main() -> None:
    timer = StageTimer("evaluate")
    params = load_params()
    cfg = parse(EvaluateConfig, section(params, "evaluate"), "evaluate")
    feats = parse_features(section(params, "features"))
    history = read_history(MODEL / "history.csv")
    run_id, restored = tracking.evaluation_run(
        cfg.experiment, tracking.read_run_file(MODEL), history, tracking.run_tags()
    )
    with tracking.ends_on_error(run_id):
        parts = (TRAINING_INPUTS + EVALUATION_INPUTS) if restored else EVALUATION_INPUTS
        data_name = section(params, "data.name")
        tracking.log_lineage(run_id, data_name, parts, Path("params.yaml"))
        backbone = json.loads((FEATURES / "info.json").read_text()).get("backbone")
        own = {k: params[k] for k in CLASSIFIER_SECTIONS if k in params}
        logged = flatten(own) | tracking.transfer_params(backbone, section(params, "model"))
        robustness, test, n_test = evaluate(cfg, feats, history, logged, run_id)
    tracking.end_run(run_id, "FINISHED")
    mean = robustness.get("test/acc_corrupted_mean")
    corrupted = (
        f", mean over {len(robustness) - 2} corrupted sets {mean:.4f}" if mean is not None else ""
    )
    timer.summary(
        f"{n_test} test clips, {MODEL}/model.keras",
        f"{REPORTS}/metrics.json, predictions.csv, confusion.png, curves.png; MLflow run {run_id}",
        f"test accuracy {test['accuracy']:.4f} (balanced {test['balanced_accuracy']:.4f})"
        f"{corrupted}",
    )


if __name__ == "__main__":
    main()
