"""Stage `trigger_mine`: the round-0 detector's false accepts on the training speakers'
trigger-free audio, cut into hard-negative training clips (audioclf.trigger.mining).

The detector runs as ``audioclf detect`` runs it (the same reading, streaming and detection
code), at ``trigger.mine.threshold`` with ``trigger.detect``'s smoothing and refractory
period. With mining off (``trigger.mine.epochs`` 0, ``trigger/mine=none``) nothing is
scored and TensorFlow is not imported: the outputs say so, with no clip.

Reads:  data/trigger/round0/detector.keras, detector.json (trigger_train's detector)
        data/trigger/mining/mine.wav, mine.jsonl, info.json (trigger_synth's mining audio)
Writes: data/trigger/mined/clips.npy     float32 (clips, clip_samples): one window of mine.wav
                                         per kept false accept, in time order
        data/trigger/mined/mined.jsonl   one line per clip: {"clip", "false_accept" (its index
                                         among all), "time" (s in mine.wav),
                                         "score" (smoothed), "start" (s, the window's),
                                         "offset" (s, the false accept in the clip),
                                         "source", "word" (mine.jsonl's word just before)}
        data/trigger/mined/summary.json  enabled, false accepts, FA/h on mine.wav, clips kept,
                                         threshold, mine_seconds
        (the folder appears whole, or not at)
Params: trigger.mine, trigger.detect (smoothing, refractory period)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audioclf.atomic import atomic_dir
from audioclf.config import load_params, parse, section
from audioclf.stagetimer import StageTimer
from audioclf.trigger.detection import DetectConfig
from audioclf.trigger.mining import (
    MineConfig,
    false_accepts,
    keep,
    mining_detect_config,
    nearest_word,
    place_windows,
)

MINING = Path("data/trigger/mining")
ROUND0 = Path("data/trigger/round0")
OUT = Path("data/trigger/mined")
SOURCE = "mine.wav"
BLOCK_SECONDS = 1.0  # read and scored block by block, as `audioclf detect` does by default


def mine(detector, cfg: MineConfig, detect: DetectConfig, wav: Path, words: list[dict]):
    """(clips float32 (n, clip_samples), one record per clip, summary, seconds spent
    scoring) of ``wav``. The time is printed, not written: same params, same bytes."""
    from audioclf.trigger.listen import audio_blocks

    info, blocks = audio_blocks(wav, detector.sample_rate, BLOCK_SECONDS)
    if info.samplerate != detector.sample_rate or info.channels != 1:
        raise ValueError(f"{wav}: expected mono at {detector.sample_rate} Hz; re-run trigger_synth")
    start = time.perf_counter()
    events = false_accepts(detector, blocks, mining_detect_config(detect, cfg))
    seconds = info.frames / info.samplerate
    indices = keep(events, cfg.max_clips)
    kept = [events[i] for i in indices]
    clip = detector.clip_samples
    starts = place_windows(
        [e.time for e in kept], indices, info.frames, clip, info.samplerate, cfg.seed
    )
    clips = np.zeros((len(kept), clip), np.float32)
    records = []
    for i, (event, first) in enumerate(zip(kept, starts)):
        clips[i] = sf.read(wav, start=first, stop=first + clip, dtype="float32")[0]
        records.append(
            {
                "clip": i,
                "false_accept": indices[i],  # its index among all, in time order
                "time": event.time,
                "score": event.score,
                "start": first / info.samplerate,
                "offset": event.time - first / info.samplerate,
                "source": SOURCE,
                "word": nearest_word(words, event.time),
            }
        )
    summary = {
        "enabled": True,
        "threshold": cfg.threshold,
        "false_accepts": len(events),
        "fa_per_hour": len(events) * 3600.0 / seconds,
        "clips": len(kept),
        "mine_seconds": seconds,
    }
    return clips, records, summary, time.perf_counter() - start


def write(out: Path, clips: np.ndarray, records: list[dict], summary: dict) -> None:
    np.save(out / "clips.npy", clips)
    (out / "mined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    timer = StageTimer("trigger_mine")
    params = load_params()
    cfg = parse(MineConfig, section(params, "trigger.mine"), "trigger.mine")
    detect = parse(DetectConfig, section(params, "trigger.detect"), "trigger.detect")
    info = json.loads((MINING / "info.json").read_text())
    if not cfg.enabled:
        clip = int(round(info["clip_seconds"] * info["sample_rate"]))
        summary = {"enabled": False, "threshold": cfg.threshold, "false_accepts": 0,
                   "fa_per_hour": None, "clips": 0}  # fmt: skip
        with atomic_dir(OUT) as tmp:
            write(tmp, np.zeros((0, clip), np.float32), [], summary)
        timer.summary("nothing", f"{OUT}: no clip", "mining off (trigger.mine.epochs 0)")
        return
    from audioclf.trigger.export import load_detector

    detector = load_detector(ROUND0)
    words = [json.loads(line) for line in (MINING / "mine.jsonl").read_text().splitlines() if line]
    clips, records, summary, scored = mine(detector, cfg, detect, MINING / SOURCE, words)
    with atomic_dir(OUT) as tmp:
        write(tmp, clips, records, summary)
    causes = {}
    for r in records:
        causes[r["word"]] = causes.get(r["word"], 0) + 1
    top = ", ".join(f"{w} {n}" for w, n in sorted(causes.items(), key=lambda x: -x[1])[:5])
    timer.summary(
        f"{MINING / SOURCE} ({summary['mine_seconds']:.0f} s, training speakers), {ROUND0}",
        f"{summary['clips']} hard-negative clips to {OUT}",
        f"{summary['false_accepts']} false accepts at threshold {cfg.threshold:g} = "
        f"{summary['fa_per_hour']:.1f} FA/h (scored in {scored:.1f} s); "
        f"words before them: {top or 'none'}",
    )


if __name__ == "__main__":
    main()
