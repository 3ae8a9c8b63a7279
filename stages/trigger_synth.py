"""Stage `trigger_synth`: the trigger-word task's clips, their events and the negative audio.

``trigger.data.name`` picks the source of words and backgrounds: ``synthetic`` (espeak voices,
coloured noise and babble; audioclf.trigger.synthesis) or ``folder`` (a Speech-Commands-like
folder of real recordings; audioclf.trigger.recordings). Either way, the clips are mixed by
audioclf.trigger.synthesis, and data/trigger/synth and data/trigger/mining appear only when
complete.

Reads:  nothing (synthetic), or the folder trigger.data.path (folder)
Writes: data/trigger/synth/info.json            sample rate, clip length, word, clips and
                                                speakers per split, negative_seconds
        data/trigger/synth/<split>/clips.npy    float32 (clips, clip_samples), split =
                                                train / validation / test (disjoint speakers)
        data/trigger/synth/<split>/events.jsonl one line per clip: {"clip", "events": [{"kind",
                                                "word", "speaker", "start", "end", ...}], ...}
        data/trigger/synth/negative.wav, .jsonl trigger-free audio (float32 WAV) and its events
                                                (test speakers and backgrounds: FA/h)
        data/trigger/synth/noise/*.wav          held-out background noise (corrupted conditions)
        data/trigger/synth/report.csv           files skipped (unreadable, silent), and why
        data/trigger/mining/mine.wav, .jsonl    trigger-free audio like negative.wav's from the
                                                training speakers and backgrounds only, and its
                                                events (hard-negative mining: trigger_mine)
        data/trigger/mining/info.json           sample rate, clip length, its speakers, seconds
Params: trigger.data
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np

from audioclf.atomic import atomic_dir
from audioclf.audio_io import write_wav
from audioclf.config import ConfigError, load_params, parse, section
from audioclf.stagetimer import StageTimer
from audioclf.trigger.recordings import FolderConfig, folder_sources
from audioclf.trigger.synthesis import (
    SPLITS,
    SynthesisConfig,
    mine_recording,
    render_clips,
    render_negative,
    synthetic_sources,
)

OUT = Path("data/trigger/synth")
MINING = Path("data/trigger/mining")  # its own output: see write_mining


def write_float_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    """Mono float32 WAV (IEEE float, format 3), header written here: libsndfile adds a PEAK
    chunk with the time of writing, so its files differ from run to run."""
    data = np.asarray(wave, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, 4 * sample_rate, 4, 32)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)


def write(cfg, sources, noise, skipped: list[tuple[str, str]], out: Path, progress: bool) -> dict:
    """Mix every split's clips and the negative audio into ``out``; return info.json's data."""
    triggers = {}
    for split in SPLITS:
        (out / split).mkdir()
        clips = np.lib.format.open_memmap(
            out / split / "clips.npy", "w+", np.float32, (cfg.clips[split], cfg.clip_samples)
        )
        records = render_clips(cfg, sources[split], split, clips, progress)
        clips.flush()
        del clips
        lines = [json.dumps(r) + "\n" for r in records]
        (out / split / "events.jsonl").write_text("".join(lines))
        triggers[split] = sum(e["kind"] == "trigger" for r in records for e in r["events"])
    wave, events = render_negative(cfg, sources["test"])
    write_float_wav(out / "negative.wav", wave, cfg.sample_rate)
    (out / "negative.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (out / "noise").mkdir()
    for name, recording in noise:
        level = min(0.1, 0.99 / float(np.max(np.abs(recording))))  # RMS -20 dB FS, no clipping
        write_wav(out / "noise" / name, recording * np.float32(level), cfg.sample_rate)
    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "reason"])
        writer.writerows(skipped)
    return {
        "sample_rate": cfg.sample_rate,
        "clip_seconds": cfg.clip_seconds,
        "word": cfg.word,
        "source": cfg.name,
        "splits": dict(cfg.clips),
        "triggers": triggers,
        "speakers": {split: sources[split].speakers for split in SPLITS},
        "negative_seconds": wave.size / cfg.sample_rate,
        "negative_words": len(events),
        "noise": [name for name, _ in noise],
        "skipped": len(skipped),
    }


def write_mining(cfg, train, out: Path) -> dict:
    """mine.wav and mine.jsonl from the train split's ``Sources`` into ``out``; its
    info.json's data. Apart from data/trigger/synth, so that changing ``mine_minutes`` leaves
    that folder, hence round 0's training and the evaluation data, as they were."""
    mine, events = mine_recording(cfg, train)
    write_float_wav(out / "mine.wav", mine, cfg.sample_rate)
    (out / "mine.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return {
        "sample_rate": cfg.sample_rate,
        "clip_seconds": cfg.clip_seconds,
        "split": "train",
        "speakers": train.speakers,
        "mine_seconds": mine.size / cfg.sample_rate,
        "mine_words": len(events),
    }


def main() -> None:
    timer = StageTimer("trigger_synth")
    data = section(load_params(), "trigger.data")
    name = data.get("name") if isinstance(data, dict) else None
    schemas = {"synthetic": SynthesisConfig, "folder": FolderConfig}
    if name not in schemas:
        raise ConfigError(f"trigger.data.name: unknown source {name!r}. Allowed: synthetic, folder")
    cfg = parse(schemas[name], data, "trigger.data")
    if name == "synthetic":
        sources, noise = synthetic_sources(cfg)
        skipped, read = [], "nothing (espeak voices, generated noise and babble)"
    else:
        sources, noise, skipped = folder_sources(cfg)
        read = f"{cfg.path}"
    with atomic_dir(OUT) as tmp, atomic_dir(MINING) as tmp_mining:
        info = write(cfg, sources, noise, skipped, tmp, progress=True)
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        mining = write_mining(cfg, sources["train"], tmp_mining)
        (tmp_mining / "info.json").write_text(json.dumps(mining, indent=2) + "\n")
    clips = ", ".join(f"{info['splits'][s]} {s}" for s in SPLITS)
    timer.summary(
        read,
        f"{clips} clips of {cfg.clip_seconds:g} s and {info['negative_seconds'] / 60:g} min of "
        f"negative audio (test speakers) to {OUT}; {mining['mine_seconds'] / 60:g} min of mining "
        f"audio (training speakers) to {MINING}",
        f"triggers {info['triggers']}, speakers "
        f"{ {s: len(v) for s, v in info['speakers'].items()} }, {len(skipped)} files skipped",
    )


if __name__ == "__main__":
    main()
