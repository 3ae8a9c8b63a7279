"""The comparison table: one row per finished MLflow run, best test accuracy first.

Input is what ``mlflow.search_runs`` returns (a pandas DataFrame with ``params.*``,
``metrics.*`` and ``tags.*`` columns). Rows are runs (dataset x model x augmentation);
``features`` names the backbone and its layers for a transfer run ("choi2017 [1,2,3,4,5]"),
so its rows sit beside the networks trained from scratch ("logmel"); ``clean`` is the test
accuracy, ``balanced`` the balanced accuracy, then each corrupted test
set's accuracy (``test/acc_<set>`` metrics) gets a column, and ``corrupted_mean`` their mean:
the robustness table.

``learning_curve`` turns the same runs into the few-shot learning curve: test accuracy against
``data.prepare.max_train_per_class`` (N training recordings per class; null = all), one series
per dataset, model and features/backbone.
"""

from __future__ import annotations

import pandas as pd

# (column, source column in search_runs, format)
COLUMNS = (
    ("run", "tags.mlflow.runName", "{}"),
    ("data", "params.data.name", "{}"),
    ("model", "params.model.name", "{}"),
    ("features", None, "{}"),
    ("augment", "params.augment.name", "{}"),
    ("trainable_params", "metrics.trainable_params", "{:,.0f}"),
    ("train_s", "metrics.train_seconds", "{:.0f}"),
    ("s_per_epoch", "metrics.seconds_per_epoch", "{:.1f}"),
    ("epochs", "metrics.epochs_run", "{:.0f}"),
    ("best_val_acc", "metrics.best_val_accuracy", "{:.4f}"),
    ("clean", "metrics.test_accuracy", "{:.4f}"),
    ("balanced", "metrics.test_balanced_accuracy", "{:.4f}"),
)
MEAN = "corrupted_mean"


def _missing(value: object) -> bool:
    return value in (None, "None", "", "null") or pd.isna(value)


def features_label(
    type_: object, rate: object, backbone: object = None, layers: object = None
) -> str:
    """ "logmel", "logspec 8k" when the features resample, or the backbone and its layers
    ("choi2017 [1,2,3,4,5]") for a transfer run (params ``backbone.*``)."""
    if not _missing(backbone):
        return f"{backbone} [{layers}]" if not _missing(layers) else str(backbone)
    if _missing(rate):
        return str(type_)
    return f"{type_} {float(rate) / 1000:g}k"


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run, ``clean`` descending (ties: newer first)."""
    if runs.empty:
        return pd.DataFrame(columns=[c for c, _, _ in COLUMNS])
    runs = runs.sort_values("start_time", ascending=False)
    out = pd.DataFrame(index=runs.index)
    for name, source, _ in COLUMNS:
        if name == "features":
            none = pd.Series(None, index=runs.index)
            out[name] = [
                features_label(*values)
                for values in zip(
                    runs["params.features.type"],
                    runs.get("params.features.sample_rate", none),
                    runs.get("params.backbone.name", none),
                    runs.get("params.backbone.layers", none),
                )
            ]
        else:
            out[name] = runs.get(source)
    prefix = "metrics.test/acc_"
    corrupted = sorted(
        c for c in runs if c.startswith(prefix) and c not in (f"{prefix}clean", f"{prefix}{MEAN}")
    )
    for c in corrupted:
        out[c.removeprefix(prefix)] = runs[c]
    if f"{prefix}{MEAN}" in runs:
        out[MEAN] = runs[f"{prefix}{MEAN}"]
    out["run_id"] = runs["run_id"]
    return out.sort_values("clean", ascending=False, kind="stable").reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``table``'s output (run ids left out)."""
    formats = {name: fmt for name, _, fmt in COLUMNS}
    return markdown_table(df, formats, {"run", "data", "model", "features", "augment"}, "{:.4f}")


def markdown_table(df: pd.DataFrame, formats: dict[str, str], text: set[str], default: str) -> str:
    """``df`` (its ``run_id`` column left out) as a GitHub-flavoured Markdown table: each
    column's cells by its format in ``formats`` (else ``default``), empty for a missing
    value; the ``text`` columns left-aligned, the others right-aligned."""
    cols = [c for c in df.columns if c != "run_id"]

    def cell(col: str, value: object) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        return formats.get(col, default).format(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" if c in text else "---:" for c in cols) + "|",
    ]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in cols) + " |" for _, row in df.iterrows()]
    return "\n".join(lines) + "\n"


def champions(df: pd.DataFrame) -> dict[str, str]:
    """Each dataset's best run (``table``'s first row of that dataset): data name -> run id."""
    best = df.dropna(subset=["data"]).groupby("data", sort=False).head(1)
    return dict(zip(best["data"].astype(str), best["run_id"]))


ALL = "all"  # the x label of runs with every training clip (max_train_per_class: null)
N_PARAM = "params.data.prepare.max_train_per_class"


def learning_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """Columns ``series`` ("<data>: <model> / <features>"), ``n`` (N, or ``ALL``), ``n_value``
    (N as a number, ``inf`` for all: the x order), ``accuracy`` (mean test accuracy of the
    runs at that point) and ``runs`` (how many); sorted by series, then N."""
    columns = ["series", "n", "n_value", "accuracy", "runs"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = table(runs)
    by_id = runs.set_index("run_id")
    n = by_id[N_PARAM] if N_PARAM in by_id else pd.Series(None, index=by_id.index)
    values = [None if _missing(v) else int(float(v)) for v in n.reindex(rows["run_id"])]
    points = pd.DataFrame(
        {
            "series": [
                f"{d}: {m} / {f}" for d, m, f in zip(rows["data"], rows["model"], rows["features"])
            ],
            "n": [ALL if v is None else str(v) for v in values],
            "n_value": [float("inf") if v is None else float(v) for v in values],
            "accuracy": rows["clean"].astype(float),
        }
    ).dropna(subset=["accuracy"])
    out = (
        points.groupby(["series", "n", "n_value"], as_index=False)
        .agg(accuracy=("accuracy", "mean"), runs=("accuracy", "size"))
        .sort_values(["series", "n_value"], kind="stable")
        .reset_index(drop=True)
    )
    return out[columns]
