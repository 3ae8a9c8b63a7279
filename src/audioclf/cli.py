"""``audioclf``: the command line for a trained model.

    audioclf predict clip.wav                      # top-3 labels with probabilities
    audioclf predict folder/ --top-k 1             # every WAV under folder/, a line each
    audioclf predict folder/ --submission sub.csv  # Kaggle-style fname,label
    audioclf sweep --slurm -S 'model=a,b'          # a sweep on a cluster: docs/cluster.md
    audioclf detect long.wav --chime out.wav       # trigger word in a long recording:
                                                   # docs/trigger.md

The model is the exported raw-wave model the train stage writes (``data/model/inference.keras``
and ``inference.json``), or a registered one: ``--model models:/<data name>@champion`` is the
best run's (``compare`` registers it in the MLflow store of ``audioclf.tracking``). Audio is
read, mixed down, resampled and padded or cropped exactly as ``prepare`` does, and the model
computes its own features. Files that cannot be read are
reported on stderr and skipped; the exit status is 1 if any were.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from audioclf.audio_io import AudioError
from audioclf.clips import try_load_clip
from audioclf.parallel import ordered_map

# The TensorFlow Speech Recognition Challenge's names for the two extra classes.
KAGGLE_LABELS = {"_silence_": "silence", "_unknown_": "unknown"}
CHUNK = 1024  # files loaded and classified per batch: memory stays bounded on any folder


def wav_files(path: Path) -> list[Path]:
    """``path`` itself, or every .wav under it (sorted); a clear error if there are none."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: no .wav files in this folder or below")
    return files


def classify(
    files: Sequence[Path], exported, batch_size: int = 256
) -> Iterator[tuple[Path, np.ndarray | AudioError]]:
    """Yield (file, class probabilities) in order, or (file, AudioError) for a bad file."""
    from audioclf.export import predict

    for start in range(0, len(files), CHUNK):
        chunk = files[start : start + CHUNK]
        jobs = [(f, exported.sample_rate, exported.clip_samples) for f in chunk]
        loaded = list(ordered_map(try_load_clip, jobs, desc="predict: reading"))
        good = [i for i, r in enumerate(loaded) if not isinstance(r, AudioError)]
        probs = (
            predict(exported.model, np.stack([loaded[i].wave for i in good]), batch_size)
            if good
            else []
        )
        by_index = dict(zip(good, probs))
        for i, f in enumerate(chunk):
            yield f, by_index.get(i, loaded[i])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audioclf", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="classify a WAV file or every WAV in a folder")
    p.add_argument("path", type=Path, help="a .wav file or a folder (searched recursively)")
    p.add_argument(
        "--model",
        default="data/model",
        help="folder with inference.keras, or models:/<name>@champion from the MLflow registry "
        "(the store of MLFLOW_TRACKING_URI, else ./mlflow.db)",
    )
    p.add_argument("--top-k", type=int, default=3, help="labels to print per file (default 3)")
    p.add_argument(
        "--submission",
        type=Path,
        help="also write a Kaggle-style CSV (fname,label): fname relative to the folder, "
        "silence/unknown for _silence_/_unknown_",
    )
    p.add_argument("--batch-size", type=int, default=256)
    from audioclf import job, sweep  # the cluster commands (docs/cluster.md)

    job.add_parser(sub)
    sweep.add_parser(sub)
    add_detect_parser(sub)
    args = parser.parse_args(argv)
    if args.command != "predict":
        return args.handler(args)
    if args.top_k < 1:
        parser.error("--top-k: must be >= 1")

    with tempfile.TemporaryDirectory(prefix="audioclf-model-") as tmp:
        try:
            files = wav_files(args.path)
            from audioclf.export import load

            exported = load(model_folder(args.model, Path(tmp)))
        except (FileNotFoundError, LookupError) as err:
            print(f"audioclf: {err}", file=sys.stderr)
            return 2
    return predict_files(args, files, exported)


def add_detect_parser(sub: argparse._SubParsersAction) -> None:
    from audioclf.trigger.detection import DetectConfig

    default = DetectConfig()  # = conf/trigger/detect/default.yaml (tested)
    p = sub.add_parser(
        "detect",
        help="find the trigger word in a long recording, streamed block by block",
        description="Print each detection (time in s, smoothed score) of the trigger detector "
        "in a WAV file of any length, read block by block (bounded memory), and the real-time "
        "factor. Detection: docs/trigger.md.",
    )
    p.add_argument("path", type=Path, help="an audio file (any rate, channels mixed to mono)")
    p.add_argument(
        "--model", type=Path, default=Path("data/trigger/model"),
        help="folder with detector.keras and detector.json (default data/trigger/model)",
    )  # fmt: skip
    p.add_argument("--threshold", type=float, default=default.threshold)
    p.add_argument("--smooth-steps", type=int, default=default.smooth_steps)
    p.add_argument("--refractory", type=float, default=default.refractory_seconds,
                   help="seconds without a second detection")  # fmt: skip
    p.add_argument("--block-seconds", type=float, default=1.0, help="read and score blocks")
    p.add_argument(
        "--chime", type=Path, metavar="OUT.wav",
        help="also write the recording (mono, at the detector's rate) with a chime at each "
        "detection",
    )  # fmt: skip
    p.set_defaults(handler=detect_main)


def detect_main(args: argparse.Namespace) -> int:
    """``audioclf detect``: detections on stdout (``time_s<TAB>score``), the summary on stderr."""
    import time

    from audioclf.config import ConfigError
    from audioclf.trigger.detection import DetectConfig
    from audioclf.trigger.listen import Listened, audio_blocks, listen

    try:
        cfg = DetectConfig(
            smooth_steps=args.smooth_steps,
            threshold=args.threshold,
            refractory_seconds=args.refractory,
        )
        if args.block_seconds <= 0:
            raise ConfigError(f"block_seconds: must be > 0, got {args.block_seconds}")
    except ConfigError as err:
        key, _, why = str(err).partition(": ")
        flag = {"refractory_seconds": "refractory"}.get(key, key).replace("_", "-")
        print(f"audioclf detect: --{flag}: {why}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        from audioclf.trigger.export import load_detector

        detector = load_detector(args.model)
        info, blocks = audio_blocks(args.path, detector.sample_rate, args.block_seconds)
    except (FileNotFoundError, AudioError) as err:
        print(f"audioclf detect: {err}", file=sys.stderr)
        return 2
    loaded = time.perf_counter() - start
    print("time_s\tscore", flush=True)
    done = Listened(0.0, 0.0, 0)
    for event in listen(detector, blocks, cfg, args.chime, done):
        print(f"{event.time:.2f}\t{event.score:.3f}", flush=True)
    channels = "mono" if info.channels == 1 else f"{info.channels} channels"
    print(
        f"audioclf detect: {done.events} detections in {done.seconds:.1f} s of {args.path} "
        f"({info.samplerate} Hz {channels} -> {detector.sample_rate} Hz mono); model "
        f"{detector.model_name} (loaded in {loaded:.1f} s); threshold {cfg.threshold:g}, "
        f"smoothing {cfg.smooth_steps} steps, refractory {cfg.refractory_seconds:g} s; "
        f"real-time factor {done.real_time_factor:.4f} ({done.wall_seconds:.1f} s)"
        + (f"; wrote {args.chime} with a chime at each detection" if args.chime else ""),
        file=sys.stderr,
    )
    return 0


def model_folder(model: str, tmp: Path) -> Path:
    """A local folder, or a ``models:/``/``runs:/`` URI downloaded into ``tmp``."""
    if not model.startswith(("models:/", "runs:/")):
        return Path(model)
    from mlflow.exceptions import MlflowException

    from audioclf.tracking import download_model, tracking_uri

    try:
        return download_model(model, tmp)
    except MlflowException as err:
        raise LookupError(
            f"{model}: not found in the MLflow store {tracking_uri()} ({err.message}). "
            "`dvc repro -s compare` registers the best run as models:/<data name>@champion; "
            "set MLFLOW_TRACKING_URI to the store that has it"
        ) from err


def predict_files(args: argparse.Namespace, files: list[Path], exported) -> int:
    """Print each file's top labels (and write the submission); the exit status."""
    root = args.path if args.path.is_dir() else args.path.parent
    k = min(args.top_k, len(exported.classes))
    rows, bad = [], 0
    for f, result in classify(files, exported, args.batch_size):
        name = f.relative_to(root).as_posix()
        if isinstance(result, AudioError):
            print(f"audioclf: skipped {f}: {result.reason}", file=sys.stderr)
            bad += 1
            continue
        top = np.argsort(-result, kind="stable")[:k]
        labels = [exported.classes[i] for i in top]
        print(f"{name}\t" + "  ".join(f"{c} {result[i]:.3f}" for c, i in zip(labels, top)))
        rows.append((name, KAGGLE_LABELS.get(labels[0], labels[0])))
    if args.submission:
        from audioclf.atomic import atomic_file

        with atomic_file(args.submission) as tmp, tmp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["fname", "label"])
            w.writerows(rows)
        print(f"audioclf: wrote {len(rows)} rows to {args.submission}", file=sys.stderr)
    if bad:
        print(f"audioclf: {bad} of {len(files)} files could not be read", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
