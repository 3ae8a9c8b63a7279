"""Stage `compare`: the comparison table of every tracked run, from MLflow.

Runs after each `evaluate`, so `dvc repro` keeps it current. After a queued sweep, refresh it
from all the sweep's runs with `dvc repro -f -s compare` (queued runs finish in temporary
copies, each seeing only the runs done so far).

Reads:  the MLflow store (audioclf.tracking), reports/metrics.json (only to run after evaluate)
Writes: reports/comparison.csv, reports/comparison.md   one row per finished run, best first
        the MLflow experiment's description (shown in the UI) = the Markdown table
Params: evaluate (its experiment)
"""

from __future__ import annotations

from pathlib import Path

from audioclf.atomic import atomic_file, write_text
from audioclf.comparison import markdown, table
from audioclf.config import load_params, parse, section
from audioclf.evaluation import EvaluateConfig
from audioclf.stagetimer import StageTimer
from audioclf.tracking import finished_runs, set_description, tracking_uri

REPORTS = Path("reports")


def main() -> None:
    timer = StageTimer("compare")
    experiment = parse(EvaluateConfig, section(load_params(), "evaluate"), "evaluate").experiment
    df = table(finished_runs(experiment))
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
    if len(df):
        set_description(experiment, md)
    best = f"best: {df['run'][0]} ({df['model'][0]}) {df['clean'][0]:.4f}" if len(df) else ""
    timer.summary(
        f"{len(df)} finished runs of MLflow experiment {experiment!r} at {tracking_uri()}",
        f"{REPORTS}/comparison.md and .csv; the experiment's description in the MLflow UI",
        best,
    )


if __name__ == "__main__":
    main()
