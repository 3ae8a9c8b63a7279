"""The trigger task's comparison table: one row per finished MLflow run, best first.

Input is what ``mlflow.search_runs`` returns for the experiment ``trigger.experiment``
(``params.*``, ``metrics.*``, ``tags.*`` columns), as logged by trigger_train and
trigger_evaluate. Rows are runs (data x model x augmentation x mining); columns: the operating point
at the detector's threshold (FRR, FA/h), FRR at 0 false accepts and at each FA/h target
the negative audio resolved (``frr@<X>fa``), latency, event F1, the reference's per-step
accuracy, training time, hard negatives mined, FRR on each corrupted condition. Sorted by
FRR at 0 false accepts, then FRR at the threshold (lower is better), newer first on ties.
"""

from __future__ import annotations

import re

import pandas as pd

from audioclf.comparison import markdown_table

CLEAN = "metrics.clean/"
# (column, source, format)
COLUMNS = (
    ("run", "tags.mlflow.runName", "{}"),
    ("data", "params.data.name", "{}"),
    ("model", "params.model.name", "{}"),
    ("augment", "params.train.augment.name", "{}"),
    ("mining", "params.mine.name", "{}"),  # hard-negative mining: default, none (blank: before it)
    ("threshold", "params.detect.threshold", "{:g}"),
    ("frr", f"{CLEAN}frr", "{:.3f}"),
    ("fa_per_hour", f"{CLEAN}fa_per_hour", "{:.1f}"),
    ("latency_median_s", f"{CLEAN}latency_median_s", "{:.2f}"),
    ("latency_p95_s", f"{CLEAN}latency_p95_s", "{:.2f}"),
    ("f1", f"{CLEAN}f1", "{:.3f}"),
    ("per_step_accuracy", "metrics.per_step_accuracy", "{:.4f}"),
    ("train_s", "metrics.train_seconds", "{:.0f}"),
    ("mined_clips", "metrics.mined_clips", "{:.0f}"),
)
TEXT = {"run", "data", "model", "augment", "mining"}
OPERATING = re.compile(r"^metrics\.clean/frr_at_([0-9.e+-]+)fa$")
CONDITION = re.compile(r"^metrics\.([A-Za-z0-9_]+)/frr$")


def _number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run; see the module docstring for the columns and the order."""
    names = [c for c, _, _ in COLUMNS]
    if runs.empty:
        return pd.DataFrame(columns=[*names, "run_id"])
    runs = runs.sort_values("start_time", ascending=False)
    none = pd.Series(None, index=runs.index, dtype=object)
    out = pd.DataFrame(index=runs.index)
    for name, source, _ in COLUMNS:
        value = runs.get(source, none)
        out[name] = value if name in TEXT else _number(value)
    targets = sorted((float(m.group(1)), c) for c in runs if (m := OPERATING.match(c)) is not None)
    position = names.index("fa_per_hour") + 1
    for k, (target, column) in enumerate(targets):
        out.insert(position + k, f"frr@{target:g}fa", _number(runs[column]))
    for column in sorted(runs):
        m = CONDITION.match(column)
        if m and m.group(1) != "clean":
            out[f"frr_{m.group(1)}"] = _number(runs[column])
    out["run_id"] = runs["run_id"]
    zero = "frr@0fa" if "frr@0fa" in out else "frr"
    return out.sort_values([zero, "frr"], kind="stable", na_position="last").reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``table``'s output (run ids left out)."""
    formats = {name: fmt for name, _, fmt in COLUMNS}
    return markdown_table(df, formats, TEXT, "{:.3f}")
