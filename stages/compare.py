"""Stage `compare`: the comparison table of every tracked run, from MLflow.

Runs after each `evaluate`, so `dvc repro` keeps it current. After a queued sweep, refresh it
from all the sweep's runs with `dvc repro -f -s compare` (queued runs finish in temporary
copies, each seeing only the runs done so far).

Reads:  the MLflow store (audioclf.tracking), reports/metrics.json (only to run after evaluate)
Writes: reports/comparison.csv, reports/comparison.md   one row per finished run, best first
        reports/learning_curve.png   test accuracy against data.prepare.max_train_per_class (N
                                     training recordings per class), a line per dataset, model
                                     and features/backbone
        the MLflow experiment's description (shown in the UI) = the Markdown table; the
        learning curve as an artifact (reports/learning_curve.png) of the newest run
        the same table as an MLflow table artifact (comparison.json) on a run named
        "comparison" (replaced each time)
        the MLflow model registry: per dataset (data.name), the best run's exported model
        (raw waveform in) as model <data.name>, alias @champion (moved when a better run comes)
Params: evaluate (its experiment)
"""

from __future__ import annotations

from pathlib import Path

from audioclf.atomic import atomic_file, write_text
from audioclf.comparison import champions, learning_curve, markdown, table
from audioclf.config import load_params, parse, section
from audioclf.evaluation import EvaluateConfig
from audioclf.plots import learning_curve_png
from audioclf.stagetimer import StageTimer
from audioclf.tracking import (
    attach_report,
    finished_runs,
    log_comparison,
    register_champion,
    set_description,
    tracking_uri,
)

REPORTS = Path("reports")


def main() -> None:
    timer = StageTimer("compare")
    experiment = parse(EvaluateConfig, section(load_params(), "evaluate"), "evaluate").experiment
    runs = finished_runs(experiment)
    df = table(runs)
    curve = learning_curve(runs)
    md = (
        f"## {experiment}: {len(df)} runs, best test accuracy first\n\n"
        + markdown(df)
        + "\n`clean`: test accuracy. Each column after it: accuracy on one corrupted test set "
        "(`evaluate.corruptions`, type_severity); `corrupted_mean`: their mean.\n"
        + "\nWritten by `dvc repro -s compare` (stages/compare.py).\n"
    )
    REPORTS.mkdir(exist_ok=True)
    with atomic_file(REPORTS / "comparison.csv") as tmp:
        df.to_csv(tmp, index=False)
    write_text(REPORTS / "comparison.md", md)
    with atomic_file(REPORTS / "learning_curve.png") as tmp:
        learning_curve_png(curve, tmp, f"{experiment}: test accuracy against N per class")
    registered = []
    if len(df):
        set_description(experiment, md)
        newest = runs.sort_values("start_time", ascending=False)["run_id"].iloc[0]
        attach_report(newest, REPORTS / "learning_curve.png")
        log_comparison(experiment, df, md)
        for data, run_id in champions(df).items():
            version, moved = register_champion(data, run_id)
            new = " (moved here)" if moved else ""
            registered.append(f"models:/{data}@champion = version {version}{new}")
    best = f"best: {df['run'][0]} ({df['model'][0]}) {df['clean'][0]:.4f}" if len(df) else ""
    timer.summary(
        f"{len(df)} finished runs of MLflow experiment {experiment!r} at {tracking_uri()}",
        f"{REPORTS}/comparison.md and .csv, learning_curve.png ({curve['series'].nunique()} "
        "series); the experiment's description in the MLflow UI",
        "; ".join(filter(None, [best, *registered])),
    )


if __name__ == "__main__":
    main()
