"""Stage `trigger_compare`: the trigger task's comparison table, from MLflow.

Runs after each trigger_evaluate, so `dvc repro trigger/dvc.yaml` keeps it current; after
several `dvc exp run`s (queued: temporary copies each see only the runs done so far), refresh
it with `dvc repro -f -s trigger_compare trigger/dvc.yaml`.

Reads:  the MLflow store (audioclf.tracking): the finished runs of trigger.experiment;
        reports/trigger/metrics.json (only to run after trigger_evaluate)
Writes: reports/trigger/comparison.md   model x augmentation x FRR @ FA/h, FA/h, latency, F1
                                        (audioclf.trigger.comparison), best first
        the MLflow experiment's description (shown in the UI) = the same table
Params: trigger.experiment
"""

from __future__ import annotations

from pathlib import Path

from audioclf.atomic import write_text
from audioclf.config import convert, load_params, section
from audioclf.stagetimer import StageTimer
from audioclf.tracking import finished_runs, set_description, tracking_uri
from audioclf.trigger.comparison import markdown, table

REPORTS = Path("reports/trigger")


def main() -> None:
    timer = StageTimer("trigger_compare")
    experiment = convert(str, section(load_params(), "trigger.experiment"), "trigger.experiment")
    df = table(finished_runs(experiment))
    md = (
        f"## {experiment}: {len(df)} runs, lowest FRR at 0 false accepts first\n\n"
        + markdown(df)
        + "\n`frr`, `fa_per_hour`, latency (s, event time minus the trigger's end), `f1`: at "
        "the detector's threshold on the clean test clips and negative audio. `frr@Xfa`: the "
        "lowest FRR of the DET sweep with at most X false accepts per hour (only the X the "
        "negative audio resolves). `frr_<condition>`: FRR at the threshold on a corrupted "
        "condition. `per_step_accuracy`: the reference's number. Definitions: "
        "docs/trigger.md.\n"
        "\nWritten by `dvc repro trigger/dvc.yaml` (stages/trigger_compare.py).\n"
    )
    write_text(REPORTS / "comparison.md", md)
    if len(df):
        set_description(experiment, md)
    best = (
        f"best: {df['run'][0]} ({df['model'][0]}, augment {df['augment'][0]}) FRR "
        f"{df['frr'][0]:.3f} at {df['fa_per_hour'][0]:.1f} FA/h"
        if len(df)
        else "no finished runs yet"
    )
    timer.summary(
        f"{len(df)} finished runs of MLflow experiment {experiment!r} at {tracking_uri()}",
        f"{REPORTS}/comparison.md; the experiment's description in the MLflow UI",
        best,
    )


if __name__ == "__main__":
    main()
