"""Trigger-word training clips: spoken words overlaid on backgrounds at random positions.

As in the reference (the deep-learning course's trigger-word detector), each clip is a
``clip_seconds`` background with some utterances of the trigger word and of negative words
laid over it at random, non-overlapping positions; every clip's events (kind, word, speaker,
start and end in s of the spoken word, silence trimmed) are recorded, and the per-step labels
come from them (audioclf.trigger.labels). A separate long, trigger-free recording (negative
words over backgrounds) measures false accepts per hour.

Where the words and backgrounds come from is a *source* (:class:`Sources`, one per split):

- here, ``synthetic`` (the default): the espeak voices of audioclf.datasets.synthetic. Each
  speaker says the trigger ``trigger_takes`` times and every negative word ``negative_takes``
  times (rate and pitch jittered per take); train, validation and test have their own
  speakers, and the validation and test voices (accent + variant) are held out from the
  splits before them. Backgrounds are coloured noise and babble (non-English voices
  speaking pseudo-words), one bank per split and kind, cut at random.
- audioclf.trigger.recordings: a Speech-Commands-like folder of real recordings.

One clip (float32 (clip_samples,), s = sample_rate):

    k = triggers + negatives utterances (counts uniform in their ranges), shuffled
      -> each at peak level gain_dbfs (uniform), at random offsets with >= gap_seconds
         between words (uniform spacing: sorted uniform draws of the slack)
      -> + a background segment at snr_db (uniform) against the power of the clip's words
         (a clip without words: against the split's median word power at the middle gain)
      -> scaled down as a whole if its peak passes 0.99 (SNR unchanged)

Reproducible: every draw comes from ``np.random.default_rng([seed, stream, ...])`` keyed by
what it is for (split, clip, speaker, word, take), and espeak-ng is deterministic; the
utterances are synthesised in worker processes, one speaker per job, and come back in order,
so the same params give byte-identical outputs whatever the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from audioclf.config import check
from audioclf.datasets import synthetic
from audioclf.mixing import colored_noise, mix_at_snr
from audioclf.parallel import ordered_map

SPLITS = ("train", "validation", "test")
BackgroundKind = Literal["white", "pink", "brown", "blue", "violet", "babble"]

# Random-stream tags: the first key after the seed, so that no two purposes share draws.
_UTTERANCES, _CLIPS, _BANKS, _NEGATIVE, _HELD_OUT, _MINE = 10, 11, 12, 13, 14, 15


def _default_clips() -> dict[str, int]:
    return {"train": 1000, "validation": 200, "test": 200}


@dataclass(frozen=True)
class SceneConfig:
    """How clips are mixed, whatever the source; part of ``trigger.data``."""

    seed: int = 2026
    sample_rate: int = 16000  # Hz of every output
    clip_seconds: float = 10.0  # length of every clip, s
    clips: dict[str, int] = field(default_factory=_default_clips)  # clips per split
    triggers_per_clip: tuple[int, int] = (0, 3)  # trigger utterances per clip, uniform
    negatives_per_clip: tuple[int, int] = (0, 2)  # negative-word utterances per clip, uniform
    gap_seconds: float = 0.2  # least silence between two words of a clip, s
    gain_dbfs: tuple[float, float] = (-20.0, -3.0)  # each word's peak level, uniform, dB FS
    snr_db: tuple[float, float] = (0.0, 30.0)  # words against background, uniform, dB
    label_seconds: float = 0.5  # steps labelled 1 after a trigger's end, s (labels.py)
    negative_minutes: float = 5.0  # length of the trigger-free negative.wav, minutes
    # Length of the trigger-free mine.wav (training speakers and backgrounds), minutes: the
    # audio hard negatives are mined from (audioclf.trigger.mining).
    mine_minutes: float = 10.0

    def __post_init__(self) -> None:
        check(
            self.sample_rate >= 8000, "sample_rate", f"must be >= 8000 Hz, got {self.sample_rate}"
        )
        check(
            1.0 <= self.clip_seconds <= 60.0,
            "clip_seconds",
            f"must be in [1, 60] s, got {self.clip_seconds}",
        )
        check(
            sorted(self.clips) == sorted(SPLITS),
            "clips",
            f"give the clips of exactly {', '.join(SPLITS)}, got {sorted(self.clips)}",
        )
        for split, n in self.clips.items():
            check(n >= 1, f"clips.{split}", f"must be >= 1, got {n}")
        for key in ("triggers_per_clip", "negatives_per_clip"):
            lo, hi = getattr(self, key)
            check(
                0 <= lo <= hi <= 20,
                key,
                f"must be [low, high], 0 <= low <= high <= 20, got [{lo}, {hi}]",
            )
        check(
            self.triggers_per_clip[1] >= 1,
            "triggers_per_clip",
            "the high end must be >= 1, or no clip has a trigger",
        )
        check(
            0.0 <= self.gap_seconds <= 2.0,
            "gap_seconds",
            f"must be in [0, 2] s, got {self.gap_seconds}",
        )
        lo, hi = self.gain_dbfs
        check(
            -60 <= lo <= hi <= 0,
            "gain_dbfs",
            f"must be [low, high] in [-60, 0] dB FS, got [{lo}, {hi}]",
        )
        lo, hi = self.snr_db
        check(
            -20 <= lo <= hi <= 100,
            "snr_db",
            f"must be [low, high] in [-20, 100] dB, got [{lo}, {hi}]",
        )
        check(
            0.0 < self.label_seconds <= 5.0,
            "label_seconds",
            f"must be in (0, 5] s, got {self.label_seconds}",
        )
        check(
            0.0 < self.negative_minutes <= 600.0,
            "negative_minutes",
            f"must be in (0, 600] minutes, got {self.negative_minutes}",
        )
        check(
            self.clip_seconds / 60.0 <= self.mine_minutes <= 600.0,
            "mine_minutes",
            f"must be in [clip_seconds / 60, 600] minutes (at least one clip to mine from), "
            f"got {self.mine_minutes}",
        )

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


def _default_negative_words() -> tuple[str, ...]:
    # Some sound close to "activate" (the hard negatives), the rest are ordinary words.
    return (
        "activity", "active", "motivate", "captivate", "cultivate", "elevate", "alligator",
        "actor", "vacate", "evaporate", "basket", "window", "computer", "banana", "yesterday",
        "garden", "music", "travel", "coffee", "morning",
    )  # fmt: skip


@dataclass(frozen=True)
class SynthesisConfig(SceneConfig):
    """Schema of ``trigger.data`` for ``name: synthetic``; defaults in the YAML too."""

    name: Literal["synthetic"] = "synthetic"
    word: str = "activate"  # the trigger word
    negative_words: tuple[str, ...] = field(default_factory=_default_negative_words)
    speakers: dict[str, int] = field(
        default_factory=lambda: {"train": 40, "validation": 10, "test": 10}
    )  # speakers per split; disjoint, validation and test voices held out
    trigger_takes: int = 10  # utterances of the trigger per speaker
    negative_takes: int = 1  # utterances of each negative word per speaker
    rate_jitter_wpm: int = 20  # per-take rate change, uniform +-, words per minute
    pitch_jitter: int = 8  # per-take pitch and intonation-range change, uniform +-
    background_kinds: tuple[BackgroundKind, ...] = ("white", "pink", "brown", "babble", "babble")
    bank_seconds: float = 30.0  # per split and kind: the background bank clips are cut from, s
    noise_kinds: tuple[BackgroundKind, ...] = ("white", "pink", "brown", "babble")  # noise/
    noise_seconds: float = 30.0  # length of each held-out noise file, s

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("word",):
            check(_is_word(self.word), key, f"letters only, got {self.word!r}")
        bad = [w for w in self.negative_words if not _is_word(w)]
        check(not bad, "negative_words", f"letters only (quote yes/no/on/off in YAML), got {bad}")
        check(len(self.negative_words) >= 1, "negative_words", "list at least one word")
        check(
            self.word not in self.negative_words,
            "negative_words",
            f"must not hold the trigger word {self.word!r}",
        )
        check(
            sorted(self.speakers) == sorted(SPLITS),
            "speakers",
            f"give the speakers of exactly {', '.join(SPLITS)}, got {sorted(self.speakers)}",
        )
        for split, n in self.speakers.items():
            check(n >= 1, f"speakers.{split}", f"must be >= 1, got {n}")
        check(self.trigger_takes >= 1, "trigger_takes", f"must be >= 1, got {self.trigger_takes}")
        check(
            self.negative_takes >= 1, "negative_takes", f"must be >= 1, got {self.negative_takes}"
        )
        check(len(self.background_kinds) >= 1, "background_kinds", "list at least one kind")
        check(len(self.noise_kinds) >= 1, "noise_kinds", "list at least one kind")
        for key in ("bank_seconds", "noise_seconds"):
            value = getattr(self, key)
            check(1.0 <= value <= 600, key, f"must be in [1, 600] s, got {value}")
        self.voices()  # the espeak settings validate too (ranges, names)

    def voices(self) -> synthetic.SyntheticConfig:
        """The settings of audioclf.datasets.synthetic that make speakers and babble."""
        return synthetic.SyntheticConfig(
            seed=self.seed,
            sample_rate=self.sample_rate,
            rate_jitter_wpm=self.rate_jitter_wpm,
            pitch_jitter=self.pitch_jitter,
            babble_bank_seconds=max(20.0, 2 * self.clip_seconds),
        )


def _is_word(word: str) -> bool:
    return bool(word) and all(c.isalpha() or c in "-' " for c in word)


# ------------------------------------------------------------------------ the clips' parts


@dataclass(frozen=True)
class Utterance:
    kind: str  # "trigger" or "negative"
    word: str
    speaker: str  # speaker id
    wave: np.ndarray  # float32 (n,), silence trimmed, peak 1


@dataclass(frozen=True)
class Sources:
    """What one split's clips are made of."""

    triggers: list[Utterance]
    negatives: list[Utterance]
    backgrounds: list[tuple[str, np.ndarray]]  # (name, float32 (n,) RMS 1): cut at random
    speakers: list[str]  # the split's speaker ids, sorted

    @property
    def word_power(self) -> float:
        """Median mean-square of the utterances (peak 1): the level of a clip without words."""
        return float(np.median([np.mean(u.wave.astype(np.float64) ** 2) for u in self.all]))

    @property
    def all(self) -> list[Utterance]:
        return self.triggers + self.negatives


def place(lengths: list[int], n_samples: int, gap: int, rng: np.random.Generator) -> list[int]:
    """Offsets (samples) of words of ``lengths`` samples, in this order, in ``n_samples``:
    inside the clip, >= ``gap`` samples apart; the free room spread by sorted uniform draws.
    ValueError when they do not fit."""
    slack = n_samples - sum(lengths) - gap * max(len(lengths) - 1, 0)
    if slack < 0:
        raise ValueError(
            f"{len(lengths)} words of {sum(lengths)} samples do not fit in {n_samples}"
        )
    cuts = np.sort(rng.integers(0, slack + 1, size=len(lengths)))
    offsets, used = [], 0
    for i, (cut, length) in enumerate(zip(cuts, lengths)):
        offsets.append(int(cut) + used + gap * i)
        used += length
    return offsets


def render_clip(
    cfg: SceneConfig,
    sources: Sources,
    n_triggers: int,
    n_negatives: int,
    n_samples: int,
    rng: np.random.Generator,
    word_power: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One scene: float32 (n_samples,) and its record {"events": [...], "background",
    "snr_db", "scale"}; events sorted by start, never overlapping, times in s."""
    picked = [sources.triggers[i] for i in rng.integers(len(sources.triggers), size=n_triggers)]
    if n_negatives:
        picked += [
            sources.negatives[i] for i in rng.integers(len(sources.negatives), size=n_negatives)
        ]
    picked = [picked[i] for i in rng.permutation(len(picked))]
    gap = int(round(cfg.gap_seconds * cfg.sample_rate))
    try:
        offsets = place([u.wave.size for u in picked], n_samples, gap, rng)
    except ValueError:
        raise ValueError(
            f"trigger.data: {n_triggers} triggers and {n_negatives} negative words "
            f"({sum(u.wave.size for u in picked) / cfg.sample_rate:.1f} s of speech) do not fit "
            f"in {n_samples / cfg.sample_rate:.1f} s with gap_seconds {cfg.gap_seconds}: lower "
            "triggers_per_clip / negatives_per_clip or raise clip_seconds"
        ) from None

    speech = np.zeros(n_samples, dtype=np.float64)
    events, power, spoken = [], 0.0, 0
    for utterance, offset in zip(picked, offsets):
        gain_db = float(rng.uniform(*cfg.gain_dbfs))
        wave = utterance.wave.astype(np.float64) * 10.0 ** (gain_db / 20.0)
        speech[offset : offset + wave.size] = wave
        power += float(np.sum(wave**2))
        spoken += wave.size
        events.append(
            {
                "kind": utterance.kind,
                "word": utterance.word,
                "speaker": utterance.speaker,
                "start": offset / cfg.sample_rate,
                "end": (offset + wave.size) / cfg.sample_rate,
                "gain_dbfs": gain_db,
            }
        )
    if spoken:
        power /= spoken
    else:  # no words: hold the SNR against a typical word at the middle gain
        power = word_power * 10.0 ** (float(np.mean(cfg.gain_dbfs)) / 10.0)

    name, bank = sources.backgrounds[int(rng.integers(len(sources.backgrounds)))]
    start = int(rng.integers(bank.size))
    segment = bank[(start + np.arange(n_samples)) % bank.size]  # wraps round a short bank
    snr = float(rng.uniform(*cfg.snr_db))
    clip = mix_at_snr(speech, segment, snr, signal_power=power)
    peak = float(np.max(np.abs(clip)))
    scale = min(1.0, 0.99 / peak) if peak > 0 else 1.0
    if scale < 1.0:
        clip = clip * np.float32(scale)
        for e in events:
            e["gain_dbfs"] += 20.0 * math.log10(scale)
    return clip.astype(np.float32), {
        "events": events,
        "background": name,
        "snr_db": snr,
        "scale": scale,
    }


def render_clips(
    cfg: SceneConfig, sources: Sources, split: str, out: np.ndarray, progress: bool = True
) -> list[dict[str, Any]]:
    """Fill ``out`` (n_clips, clip_samples) float32 (a memory map, say) with the split's
    clips; return each clip's record, {"clip": i, "events": [...], ...}, in clip order."""
    from tqdm import tqdm

    key = SPLITS.index(split)
    power = sources.word_power
    records = []
    for i in tqdm(range(out.shape[0]), desc=split, unit="clip", disable=not progress or None):
        rng = np.random.default_rng([cfg.seed, _CLIPS, key, i])
        n_triggers = int(rng.integers(cfg.triggers_per_clip[0], cfg.triggers_per_clip[1] + 1))
        n_negatives = int(rng.integers(cfg.negatives_per_clip[0], cfg.negatives_per_clip[1] + 1))
        out[i], record = render_clip(
            cfg, sources, n_triggers, n_negatives, out.shape[1], rng, power
        )
        records.append({"clip": i, **record})
    return records


def render_negative(
    cfg: SceneConfig, sources: Sources, minutes: float | None = None, stream: int = _NEGATIVE
) -> tuple[np.ndarray, list[dict]]:
    """A trigger-free long recording: float32 (minutes * 60 * sample_rate,) and its events
    (times from its start, kind "negative" only).

    Made of clip_seconds segments mixed like clips but with no trigger and as many words as a
    clip holds (negatives_per_clip's range widened by triggers_per_clip's high end), from
    the given split's speakers and backgrounds. The last segment is shorter, and holds the
    words that fit. negative.wav: ``negative_minutes`` of the test split (held out from
    training); mine.wav: ``mine_minutes`` of the train split, from its own random ``stream``
    (``mine_recording``).
    """
    minutes = cfg.negative_minutes if minutes is None else minutes
    total = int(round(minutes * 60 * cfg.sample_rate))
    wave = np.zeros(total, dtype=np.float32)
    power = sources.word_power
    events = []
    lo, hi = cfg.negatives_per_clip[0], cfg.negatives_per_clip[1] + cfg.triggers_per_clip[1]
    for segment, start in enumerate(range(0, total, cfg.clip_samples)):
        n = min(cfg.clip_samples, total - start)
        rng = np.random.default_rng([cfg.seed, stream, segment])
        n_words = int(rng.integers(lo, hi + 1))
        # Shorter last segment: as many words as fit (typical word ~ 0.6 s).
        fits = int(n / cfg.sample_rate / (0.9 + cfg.gap_seconds))
        n_words = min(n_words, fits) if n < cfg.clip_samples else n_words
        part, record = render_clip(cfg, sources, 0, n_words, n, rng, power)
        wave[start : start + n] = part
        offset = start / cfg.sample_rate
        for e in record["events"]:
            events.append({**e, "start": e["start"] + offset, "end": e["end"] + offset})
    return wave, events


def mine_recording(cfg: SceneConfig, train: Sources) -> tuple[np.ndarray, list[dict]]:
    """mine.wav and its events: ``mine_minutes`` of trigger-free audio made like the negative
    audio but from the *training* split's speakers and backgrounds only (hard-negative mining
    must never see a validation or test voice, or the test noise), from its own random
    stream."""
    return render_negative(cfg, train, cfg.mine_minutes, _MINE)


# ------------------------------------------------------------------- the synthetic source


def split_speakers(cfg: SynthesisConfig) -> dict[str, list[synthetic.Speaker]]:
    """Disjoint speakers per split, in index order. A validation or test speaker's voice
    (accent + variant) is one that no earlier split uses: held-out voices, not only held-out
    prosody."""
    wanted = sum(cfg.speakers.values())
    pool = synthetic.speakers(replace(cfg.voices(), speakers=8 * wanted))
    out: dict[str, list[synthetic.Speaker]] = {s: [] for s in SPLITS}
    used: set[str] = set()
    rest = iter(pool)
    for split in SPLITS:
        taken = set()
        for speaker in rest:
            if split != "train" and speaker.voice in used:
                continue
            out[split].append(speaker)
            taken.add(speaker.voice)
            if len(out[split]) == cfg.speakers[split]:
                break
        check(
            len(out[split]) == cfg.speakers[split],
            f"speakers.{split}",
            f"not enough distinct espeak voices left for {cfg.speakers[split]} speakers "
            f"(found {len(out[split])}); use fewer speakers",
        )
        used |= taken
    return out


def speak_all(cfg: SynthesisConfig, speaker: synthetic.Speaker) -> list[Utterance]:
    """Every take of the trigger and of each negative word by one speaker (peak 1, trimmed)."""
    voices = cfg.voices()
    out = []
    words = [("trigger", cfg.word, cfg.trigger_takes)]
    words += [("negative", w, cfg.negative_takes) for w in cfg.negative_words]
    for kind, word, takes in words:
        for take in range(takes):
            key = [cfg.seed, _UTTERANCES, speaker.index, synthetic.word_key(word), take]
            rng = np.random.default_rng(key)
            jitter = voices.rate_jitter_wpm, voices.pitch_jitter
            rate = speaker.rate_wpm + int(rng.integers(-jitter[0], jitter[0] + 1))
            pitch = speaker.pitch + int(rng.integers(-jitter[1], jitter[1] + 1))
            span = speaker.pitch_range + int(rng.integers(-jitter[1], jitter[1] + 1))
            wave = synthetic.trim_silence(
                synthetic.speak(word, speaker.voice, rate, pitch, span, cfg.sample_rate, rng)
            )
            if wave.size == 0:
                raise RuntimeError(f"espeak produced silence for {word!r} by {speaker.voice}")
            wave = (wave / np.max(np.abs(wave))).astype(np.float32)
            out.append(Utterance(kind, word, speaker.id, wave))
    return out


def bank(cfg: SynthesisConfig, kind: str, n_samples: int, key: list[int]) -> np.ndarray:
    """RMS-1 float32 background of ``kind``, from the random stream ``key``."""
    rng = np.random.default_rng([cfg.seed, *key])
    if kind == "babble":
        return synthetic.babble(cfg.voices(), n_samples, rng)
    return colored_noise(kind, n_samples, rng)


def _job(args: tuple) -> Any:
    """One speaker's utterances, or one background bank (in a worker process)."""
    what, cfg, item = args
    if what == "speaker":
        return speak_all(cfg, item)
    kind, n_samples, key = item
    return bank(cfg, kind, n_samples, key)


def synthetic_sources(
    cfg: SynthesisConfig, progress: bool = True, workers: int | None = None
) -> tuple[dict[str, Sources], list[tuple[str, np.ndarray]]]:
    """Each split's Sources, and the held-out noise recordings ([(file name, float32 RMS 1)]);
    speech and babble are synthesised in ``workers`` processes (default: every core)."""
    people = split_speakers(cfg)
    kinds = sorted(set(cfg.background_kinds), key=cfg.background_kinds.index)
    bank_n = int(round(cfg.bank_seconds * cfg.sample_rate))
    noise_n = int(round(cfg.noise_seconds * cfg.sample_rate))
    jobs: list[tuple] = [("speaker", cfg, s) for split in SPLITS for s in people[split]]
    banks = [
        (split, k, (k, bank_n, [_BANKS, SPLITS.index(split), synthetic.word_key(k)]))
        for split in SPLITS
        for k in kinds
    ]
    held_out = [
        (f"{k}_{i}.wav", (k, noise_n, [_HELD_OUT, i, synthetic.word_key(k)]))
        for i, k in enumerate(cfg.noise_kinds)
    ]
    jobs += [("bank", cfg, item) for _, _, item in banks]
    jobs += [("bank", cfg, item) for _, item in held_out]
    # Babble first: the longest jobs, so that they do not end the run on one core.
    order = sorted(range(len(jobs)), key=lambda j: (jobs[j][0] == "speaker", j))
    done = dict(
        zip(
            order,
            ordered_map(
                _job,
                [jobs[j] for j in order],
                "trigger_synth" if progress else None,
                workers,
                min_items=2,
                unit="job",
            ),
        )
    )
    results = [done[j] for j in range(len(jobs))]
    n_speakers = sum(len(people[s]) for s in SPLITS)
    utterances = iter(results[:n_speakers])
    bank_waves = iter(results[n_speakers : n_speakers + len(banks)])
    noise = [(name, w) for (name, _), w in zip(held_out, results[n_speakers + len(banks) :])]
    sources = {}
    backgrounds = {(split, k): next(bank_waves) for split, k, _ in banks}
    for split in SPLITS:
        said = [u for _ in people[split] for u in next(utterances)]
        sources[split] = Sources(
            triggers=[u for u in said if u.kind == "trigger"],
            negatives=[u for u in said if u.kind == "negative"],
            # A kind listed twice is picked twice as often (from the same bank).
            backgrounds=[(k, backgrounds[(split, k)]) for k in cfg.background_kinds],
            speakers=sorted(s.id for s in people[split]),
        )
    return sources, noise
