"""Dataset ``synthetic``, the default: spoken commands made with espeak-ng voices, offline.

It stands in for Speech Commands when there is no network: same folder layout, same clip
format, a similar (if smaller and easier) task. Each *speaker* is an espeak accent
(``en-us``, ``en-gb-scotland`` ...) with a voice variant (``m3``, ``f2``, ``klatt4`` ...), a
base speaking rate, pitch, intonation range and loudness. Every speaker says every command
word ``repetitions`` times and every unknown (filler) word ``unknown_repetitions`` times,
each repetition with a little rate/pitch jitter. To keep the task from being trivial each clip
is then degraded (all of it switched off by ``degrade: false``):

    word (22.05 kHz) -> resample to sample_rate -> trim silence -> peak level gain_dbfs + jitter
      -> random place in a clip_seconds clip (crop if longer)
      -> + background noise at a random SNR (coloured noise, or babble from voices in other
           languages, so never a command word) with probability noise_probability
      -> random band-pass "microphone" (2nd-order high-pass + low-pass) with
           probability channel_probability -> 16-bit WAV

Written layout (``audioclf.layout``, what the `prepare` stage reads, as for Speech Commands):

    out_dir/<word>/<speaker>_nohash_<n>.wav       one folder per command and unknown word
    out_dir/_background_noise_/<kind>_noise.wav   long noise recordings, for the silence class

Reproducible: every random draw comes from ``np.random.default_rng([seed, stream, ...])`` keyed
by what it is for (speaker index, word, repetition), never from shared state, and espeak-ng
output is itself deterministic (see audioclf.espeak). So the same config gives byte-identical
files whatever the number of worker processes or the order in which they finish.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import signal

from audioclf import espeak
from audioclf.audio_io import write_wav
from audioclf.clips import resample
from audioclf.config import check
from audioclf.datasets import Materialised
from audioclf.layout import NOISE_DIR
from audioclf.mixing import colored_noise, mix_at_snr
from audioclf.parallel import ordered_map

NoiseKind = Literal["white", "pink", "brown", "blue", "violet", "babble"]

# Random-stream tags: the first key after the seed, so that no two purposes share draws.
_SPEAKERS, _CLIPS, _BACKGROUND, _BABBLE_BANK = 0, 1, 2, 3

# espeak amplitude used for every utterance: below 100 so that loud variants do not clip
# inside espeak's int16 output (we set the level ourselves afterwards).
_ESPEAK_VOLUME = 60

# Pseudo-word syllables for babble: spoken by non-English voices they sound like speech but
# never form one of the dataset's words.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "au", "ei")


@dataclass(frozen=True)
class SyntheticConfig:
    """Schema of ``data.download`` for the ``synthetic`` dataset; defaults in the YAML too."""

    seed: int = 1337
    sample_rate: int = 16000  # Hz of the written WAVs
    clip_seconds: float = 1.0  # length of every word clip; longer words are cropped
    commands: tuple[str, ...] = (
        "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    )  # fmt: skip
    # Filler words for the "unknown" class: the Speech Commands auxiliary words plus some
    # that sound close to a command (dune/down, lift/left, upper/up, goal/go, stock/stop,
    # yet/yes). No homophones of commands (e.g. "know"): espeak says them identically.
    unknown_words: tuple[str, ...] = (
        "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
        "dune", "lift", "upper", "goal", "stock", "yet",
    )  # fmt: skip
    speakers: int = 100  # number of synthetic speakers
    repetitions: int = 2  # clips per command word per speaker
    unknown_repetitions: int = 1  # clips per unknown word per speaker
    # espeak language voices a speaker's accent is drawn from (see audioclf.espeak.accents()).
    accents: tuple[str, ...] = (
        "en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
        "en-gb-x-gbcwmd", "en-029",
    )  # fmt: skip
    # espeak voice variants a speaker's voice is drawn from (see audioclf.espeak.variants()).
    variants: tuple[str, ...] = (
        "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
        "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "Annie", "Lee", "Michael", "adam",
        "anika", "aunty", "belinda", "benjamin", "boris", "david", "edward", "grandma",
        "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul", "quincy",
        "robert", "steph", "travis", "victor", "zac", "Alicia", "Andrea", "Denis", "Gene",
        "Mario", "Reed", "announcer", "gustave", "shelby", "whisper", "whisperf", "croak",
    )  # fmt: skip
    rate_wpm: tuple[int, int] = (90, 230)  # speaker's base speaking rate, words per minute
    pitch: tuple[int, int] = (15, 85)  # speaker's base pitch, espeak units (50 = voice's own)
    pitch_range: tuple[int, int] = (15, 90)  # speaker's intonation range, espeak units
    gain_dbfs: tuple[float, float] = (-26.0, -3.0)  # speaker's word peak level, dB full scale
    rate_jitter_wpm: int = 20  # per-clip rate change, uniform +-, words per minute
    pitch_jitter: int = 8  # per-clip pitch and intonation-range change, uniform +-
    gain_jitter_db: float = 3.0  # per-clip level change, uniform +-, dB
    degrade: bool = True  # false: word centred, no noise, no channel filter, no gain jitter
    noise_probability: float = 0.85  # chance that a clip gets background noise
    snr_db: tuple[float, float] = (0.0, 30.0)  # speech-to-noise ratio, uniform, dB
    noise_kinds: tuple[NoiseKind, ...] = ("white", "pink", "brown", "blue", "babble", "babble")
    channel_probability: float = 0.5  # chance that a clip goes through a band-pass channel
    highpass_hz: tuple[float, float] = (60.0, 400.0)  # channel high-pass corner, uniform, Hz
    lowpass_hz: tuple[float, float] = (2500.0, 7000.0)  # channel low-pass corner, uniform, Hz
    # Background recordings written to _background_noise_ (used for the silence class).
    background_kinds: tuple[NoiseKind, ...] = ("white", "pink", "brown", "babble", "babble")
    background_seconds: float = 45.0  # length of each background recording, s
    background_rms_dbfs: float = -20.0  # RMS level of each background recording, dB FS
    # Babble = several talkers overlapped, in languages other than the dataset's accents.
    babble_accents: tuple[str, ...] = ("de", "fr", "es", "it", "nl", "pl", "pt", "sv", "fi")
    babble_talkers: tuple[int, int] = (4, 8)  # talkers overlapped in one babble, uniform
    babble_bank_seconds: float = 20.0  # babble cut into clips as per-clip noise, s

    def __post_init__(self) -> None:
        check(
            self.sample_rate >= 8000, "sample_rate", f"must be >= 8000 Hz, got {self.sample_rate}"
        )
        check(
            0.1 <= self.clip_seconds <= 10,
            "clip_seconds",
            f"must be in [0.1, 10] s, got {self.clip_seconds}",
        )
        words = self.commands + self.unknown_words
        check(len(self.commands) >= 1, "commands", "list at least one command word")
        for name in ("commands", "unknown_words"):
            values = getattr(self, name)
            bad = [w for w in values if not w or not all(c.isalpha() or c in "-'" for c in w)]
            check(
                not bad,
                name,
                f"words must be letters only (quote yes/no/on/off in YAML), got {bad}",
            )
        dupes = sorted({w for w in words if words.count(w) > 1})
        check(not dupes, "unknown_words", f"words listed twice (commands included): {dupes}")
        check(self.speakers >= 1, "speakers", f"must be >= 1, got {self.speakers}")
        check(self.repetitions >= 1, "repetitions", f"must be >= 1, got {self.repetitions}")
        check(
            self.unknown_repetitions >= 0,
            "unknown_repetitions",
            f"must be >= 0, got {self.unknown_repetitions}",
        )
        _check_names(self.accents, espeak.accents(), "accents", "accents")
        _check_names(self.variants, espeak.variants(), "variants", "variants")
        _check_names(self.babble_accents, espeak.accents(), "babble_accents", "accents")
        overlap = sorted(set(self.babble_accents) & set(self.accents))
        check(
            not overlap,
            "babble_accents",
            f"must not share accents with `accents` (babble would sound like speakers): {overlap}",
        )
        _check_span(self.rate_wpm, espeak.RATE_WPM, "rate_wpm", "words per minute")
        _check_span(self.pitch, espeak.PITCH, "pitch", "espeak units")
        _check_span(self.pitch_range, espeak.PITCH_RANGE, "pitch_range", "espeak units")
        _check_span(self.gain_dbfs, (-60.0, 0.0), "gain_dbfs", "dB FS")
        _check_span(self.snr_db, (-20.0, 100.0), "snr_db", "dB")
        nyquist = self.sample_rate / 2
        _check_span(self.highpass_hz, (1.0, nyquist * 0.9), "highpass_hz", "Hz")
        _check_span(self.lowpass_hz, (1.0, nyquist * 0.99), "lowpass_hz", "Hz")
        check(
            self.highpass_hz[1] < self.lowpass_hz[0],
            "lowpass_hz",
            f"lowest low-pass corner must be above the highest high-pass corner "
            f"({self.highpass_hz[1]} Hz), got {self.lowpass_hz[0]} Hz",
        )
        for name, top in (("rate_jitter_wpm", 100), ("pitch_jitter", 50), ("gain_jitter_db", 20)):
            value = getattr(self, name)
            check(0 <= value <= top, name, f"must be in [0, {top}], got {value}")
        for name in ("noise_probability", "channel_probability"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, name, f"must be a probability in [0, 1], got {value}")
        check(
            not self.degrade or self.noise_probability == 0 or len(self.noise_kinds) >= 1,
            "noise_kinds",
            "list at least one kind (white, pink, brown, blue, violet, babble)",
        )
        check(
            0.5 <= self.background_seconds <= 600,
            "background_seconds",
            f"must be in [0.5, 600] s, got {self.background_seconds}",
        )
        check(
            -60 <= self.background_rms_dbfs <= -3,
            "background_rms_dbfs",
            f"must be in [-60, -3] dB FS, got {self.background_rms_dbfs}",
        )
        check(
            1 <= self.babble_talkers[0] <= self.babble_talkers[1] <= 32,
            "babble_talkers",
            f"must be [low, high] with 1 <= low <= high <= 32, got {list(self.babble_talkers)}",
        )
        check(
            2 * self.clip_seconds <= self.babble_bank_seconds <= 600,
            "babble_bank_seconds",
            f"must be in [2 * clip_seconds, 600] s, got {self.babble_bank_seconds}",
        )

    @property
    def words(self) -> tuple[str, ...]:
        return self.commands + self.unknown_words


def _check_names(values: tuple[str, ...], allowed: tuple[str, ...], key: str, what: str) -> None:
    check(len(values) >= 1, key, f"list at least one; allowed {what}: {', '.join(allowed)}")
    bad = [v for v in values if v not in allowed]
    check(not bad, key, f"unknown {what} {bad}. Allowed {what}: {', '.join(allowed)}")


def _check_span(span: tuple, bounds: tuple, key: str, unit: str) -> None:
    lo, hi = span
    check(
        bounds[0] <= lo <= hi <= bounds[1],
        key,
        f"must be [low, high] with {bounds[0]} <= low <= high <= {bounds[1]} {unit}, "
        f"got [{lo}, {hi}]",
    )


# -------------------------------------------------------------------------------- speakers


@dataclass(frozen=True)
class Speaker:
    index: int  # position in the speaker list; keys this speaker's random streams
    id: str  # 8 lowercase hex chars, the part of the file name before "_nohash_"
    accent: str  # espeak language voice, e.g. "en-gb-scotland"
    variant: str  # espeak voice variant, e.g. "f2"
    rate_wpm: int  # base speaking rate, words per minute
    pitch: int  # base pitch, espeak units 0..100
    pitch_range: int  # base intonation range, espeak units 0..100
    gain_dbfs: float  # base word peak level, dB full scale

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def speaker_id(seed: int, index: int) -> str:
    """8 hex chars from (seed, index), like the hashed speaker ids of Speech Commands."""
    return hashlib.sha256(f"synthetic-speaker:{seed}:{index}".encode()).hexdigest()[:8]


def speakers(cfg: SyntheticConfig) -> list[Speaker]:
    """The cfg.speakers speakers; each speaker's draws depend only on (seed, index)."""
    out = []
    for index in range(cfg.speakers):
        rng = np.random.default_rng([cfg.seed, _SPEAKERS, index])
        out.append(
            Speaker(
                index=index,
                id=speaker_id(cfg.seed, index),
                accent=cfg.accents[rng.integers(len(cfg.accents))],
                variant=cfg.variants[rng.integers(len(cfg.variants))],
                rate_wpm=int(rng.integers(cfg.rate_wpm[0], cfg.rate_wpm[1] + 1)),
                pitch=int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1)),
                pitch_range=int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
                gain_dbfs=float(rng.uniform(*cfg.gain_dbfs)),
            )
        )
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):  # 32-bit ids: ~1e-6 chance for 100 speakers
        raise ValueError(f"speaker id collision for seed {cfg.seed}; choose another data seed")
    return out


# ------------------------------------------------------------------------- signal helpers


def trim_silence(wave: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold`` x the peak (the word's extent)."""
    loud = np.flatnonzero(np.abs(wave) > threshold * np.max(np.abs(wave), initial=0.0))
    return wave[loud[0] : loud[-1] + 1] if loud.size else wave[:0]


def speak(
    text: str,
    voice: str,
    rate_wpm: int,
    pitch: int,
    pitch_range: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """espeak ``text`` and resample to ``sample_rate``; float32 (n,), not trimmed or levelled."""
    wave, rate = espeak.synthesize(
        text,
        voice,
        rate_wpm=int(np.clip(rate_wpm, *espeak.RATE_WPM)),
        pitch=int(np.clip(pitch, *espeak.PITCH)),
        pitch_range=int(np.clip(pitch_range, *espeak.PITCH_RANGE)),
        volume=_ESPEAK_VOLUME,
        seed=int(rng.integers(2**31)),
    )
    return resample(wave, rate, sample_rate)


def _pseudo_sentence(rng: np.random.Generator) -> str:
    words = []
    for _ in range(rng.integers(3, 9)):
        n = rng.integers(2, 4)  # syllables per word; never one, so no "no" or "go"
        syllables = [
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            for _ in range(n)
        ]
        words.append("".join(syllables))
    return " ".join(words)


def babble(cfg: SyntheticConfig, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Overlapped talkers speaking pseudo-words: float32 (n_samples,), RMS 1.

    Each talker is a voice from cfg.babble_accents (languages the dataset's speakers do not
    use) with a random variant, rate and pitch, reading random sentences back to back with
    short pauses, starting at a random point; talkers are summed with random gains (+-6 dB).
    """
    n_talkers = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
    mix = np.zeros(n_samples, dtype=np.float64)
    for _ in range(n_talkers):
        voice = (
            f"{cfg.babble_accents[rng.integers(len(cfg.babble_accents))]}"
            f"+{cfg.variants[rng.integers(len(cfg.variants))]}"
        )
        rate = int(rng.integers(130, 230))
        pitch = int(rng.integers(10, 90))
        # Cut from a random point of the stream so the talkers do not all start together.
        lead = int(rng.integers(0, 2 * cfg.sample_rate))
        parts, total = [], 0
        while total < lead + n_samples:
            speech = speak(_pseudo_sentence(rng), voice, rate, pitch, 60, cfg.sample_rate, rng)
            speech = speech / max(float(np.sqrt(np.mean(speech**2))), 1e-9)
            pause = np.zeros(int(rng.uniform(0.05, 0.6) * cfg.sample_rate), dtype=np.float32)
            parts += [speech, pause]
            total += speech.size + pause.size
        talker = np.concatenate(parts)[lead : lead + n_samples]
        mix += talker * 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)
    return (mix / max(float(np.sqrt(np.mean(mix**2))), 1e-12)).astype(np.float32)


def noise(
    cfg: SyntheticConfig,
    kind: str,
    n_samples: int,
    rng: np.random.Generator,
    bank: np.ndarray | None = None,
) -> np.ndarray:
    """RMS-1 float32 noise of shape (n_samples,); babble is cut from ``bank`` if given."""
    if kind != "babble":
        return colored_noise(kind, n_samples, rng)
    if bank is None:
        return babble(cfg, n_samples, rng)
    start = int(rng.integers(0, bank.size - n_samples + 1))
    piece = bank[start : start + n_samples].astype(np.float64)
    rms = float(np.sqrt(np.mean(piece**2)))
    if rms < 1e-4:  # a pause in every talker at once: rare, fall back to white noise
        return colored_noise("white", n_samples, rng)
    return (piece / rms).astype(np.float32)


def channel(
    wave: np.ndarray, sample_rate: int, highpass_hz: float, lowpass_hz: float
) -> np.ndarray:
    """A cheap microphone/line: 2nd-order Butterworth high-pass then low-pass; float32 (n,)."""
    sos = np.concatenate(
        [
            signal.butter(2, highpass_hz, "highpass", fs=sample_rate, output="sos"),
            signal.butter(2, lowpass_hz, "lowpass", fs=sample_rate, output="sos"),
        ]
    )
    return signal.sosfilt(sos, wave).astype(np.float32)


# ------------------------------------------------------------------------------ one clip


def word_key(word: str) -> int:
    """A stable integer for a word (CRC-32): its random stream does not move if lists change."""
    return zlib.crc32(word.encode("utf-8"))


@dataclass(frozen=True)
class ClipInfo:
    speech_seconds: float  # length of the word before placing it in the clip
    noise_kind: str  # "" when no noise was added
    snr_db: float  # nan when no noise was added


def render_utterance(
    cfg: SyntheticConfig,
    speaker: Speaker,
    word: str,
    repetition: int,
    bank: np.ndarray | None = None,
) -> tuple[np.ndarray, ClipInfo]:
    """One finished clip: float32 of shape (round(clip_seconds * sample_rate),) in [-1, 1].

    All draws come from default_rng([seed, clips, speaker.index, word_key(word), repetition]),
    so a clip does not depend on which other clips were made, or where, or in what order.
    ``bank`` is the babble to cut per-clip babble noise from (see :func:`babble_bank`).
    """
    rng = np.random.default_rng([cfg.seed, _CLIPS, speaker.index, word_key(word), repetition])
    n = int(round(cfg.clip_seconds * cfg.sample_rate))
    # Repetitions differ: jitter rate, pitch and intonation range around the speaker's own.
    rate = speaker.rate_wpm + int(rng.integers(-cfg.rate_jitter_wpm, cfg.rate_jitter_wpm + 1))
    pitch = speaker.pitch + int(rng.integers(-cfg.pitch_jitter, cfg.pitch_jitter + 1))
    span = speaker.pitch_range + int(rng.integers(-cfg.pitch_jitter, cfg.pitch_jitter + 1))
    wave = speak(word, speaker.voice, rate, pitch, span, cfg.sample_rate, rng)
    wave = trim_silence(wave)
    if wave.size == 0:
        raise RuntimeError(f"espeak produced silence for {word!r} with voice {speaker.voice}")
    gain_db = speaker.gain_dbfs
    if cfg.degrade:
        gain_db += float(rng.uniform(-cfg.gain_jitter_db, cfg.gain_jitter_db))
    gain_db = min(gain_db, -0.5)  # keep a little headroom below full scale
    wave = wave * np.float32(10.0 ** (gain_db / 20.0) / np.max(np.abs(wave)))
    speech_seconds = wave.size / cfg.sample_rate
    speech_power = float(np.mean(wave.astype(np.float64) ** 2))

    # Place the word: random offset (degrade) or centred; crop a random/central part if long.
    if wave.size > n:
        start = int(rng.integers(0, wave.size - n + 1)) if cfg.degrade else (wave.size - n) // 2
        clip = wave[start : start + n]
    else:
        slack = n - wave.size
        offset = int(rng.integers(0, slack + 1)) if cfg.degrade else slack // 2
        clip = np.zeros(n, dtype=np.float32)
        clip[offset : offset + wave.size] = wave

    kind, snr = "", float("nan")
    if cfg.degrade and rng.random() < cfg.noise_probability:
        kind = cfg.noise_kinds[rng.integers(len(cfg.noise_kinds))]
        snr = float(rng.uniform(*cfg.snr_db))
        clip = mix_at_snr(clip, noise(cfg, kind, n, rng, bank), snr, signal_power=speech_power)
    if cfg.degrade and rng.random() < cfg.channel_probability:
        clip = channel(
            clip, cfg.sample_rate, rng.uniform(*cfg.highpass_hz), rng.uniform(*cfg.lowpass_hz)
        )
    peak = float(np.max(np.abs(clip)))
    if peak > 0.99:  # loud noise on a loud word: scale the whole clip down, SNR unchanged
        clip = clip * np.float32(0.99 / peak)
    return clip.astype(np.float32), ClipInfo(speech_seconds, kind, snr)


def babble_bank(cfg: SyntheticConfig) -> np.ndarray:
    """The babble that per-clip babble noise is cut from: float32, RMS 1.

    Made once (espeak is slow next to slicing) from its own random stream, separate from
    the _background_noise_ recordings, so clip noise and silence clips do not share audio.
    """
    rng = np.random.default_rng([cfg.seed, _BABBLE_BANK])
    return babble(cfg, int(round(cfg.babble_bank_seconds * cfg.sample_rate)), rng)


def background_names(cfg: SyntheticConfig) -> list[str]:
    """File names of the background recordings: <kind>_noise.wav, then <kind>_noise_2.wav ..."""
    names, seen = [], {}
    for kind in cfg.background_kinds:
        seen[kind] = seen.get(kind, 0) + 1
        suffix = "" if seen[kind] == 1 else f"_{seen[kind]}"
        names.append(f"{kind}_noise{suffix}.wav")
    return names


def background(cfg: SyntheticConfig, index: int) -> np.ndarray:
    """Background recording ``index`` (of cfg.background_kinds): float32 at background_rms_dbfs."""
    rng = np.random.default_rng([cfg.seed, _BACKGROUND, index])
    n = int(round(cfg.background_seconds * cfg.sample_rate))
    wave = noise(cfg, cfg.background_kinds[index], n, rng)  # RMS 1
    wave = wave * np.float32(10.0 ** (cfg.background_rms_dbfs / 20.0))
    peak = float(np.max(np.abs(wave)))
    return wave * np.float32(0.99 / peak) if peak > 0.99 else wave


# ---------------------------------------------------------------------------- the dataset


def clip_name(speaker: Speaker, repetition: int) -> str:
    return f"{speaker.id}_nohash_{repetition}.wav"


def _job(args: tuple) -> tuple[str, list[tuple[str, ClipInfo]]]:
    """Write one background recording or every clip of one speaker (in a worker process);
    returns the kind of job and, for a speaker, each clip's (word, info)."""
    kind, cfg, what, out_dir, bank = args
    if kind == "background":
        wave = background(cfg, what)
        write_wav(out_dir / NOISE_DIR / background_names(cfg)[what], wave, cfg.sample_rate)
        return kind, []
    done = []
    for word in cfg.words:
        reps = cfg.repetitions if word in cfg.commands else cfg.unknown_repetitions
        for rep in range(reps):
            clip, info = render_utterance(cfg, what, word, rep, bank)
            write_wav(out_dir / word / clip_name(what, rep), clip, cfg.sample_rate)
            done.append((word, info))
    return kind, done


@dataclass(frozen=True)
class Summary:
    clips_per_word: dict[str, int]
    noise_files: list[str]
    speakers: int
    clips: int
    noisy_fraction: float  # clips with added noise
    snr_db_median: float  # over noisy clips (nan if none)


def generate(
    cfg: SyntheticConfig, out_dir: str | Path, progress: bool = True, workers: int | None = None
) -> Summary:
    """Write the whole dataset under ``out_dir`` (which must be missing or empty).

    ``workers`` processes (default: the cores this process may use) each render whole
    speakers; the files do not depend on it. Returns what was written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir}: not empty; generate into a new or empty folder so no stale clips remain"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    for word in cfg.words:
        (out_dir / word).mkdir(parents=True, exist_ok=True)
    (out_dir / NOISE_DIR).mkdir(parents=True, exist_ok=True)

    people = speakers(cfg)
    bank = babble_bank(cfg) if cfg.degrade and "babble" in cfg.noise_kinds else None
    names = background_names(cfg)
    jobs = [("background", cfg, i, out_dir, None) for i in range(len(names))]
    jobs += [("speaker", cfg, s, out_dir, bank) for s in people]
    # Every job is a whole recording or speaker (a second or more of espeak): worth a worker
    # from two jobs on. Results come back in job order, whatever the number of workers.
    results = ordered_map(
        _job, jobs, "synthetic" if progress else None, workers, min_items=2, unit="job"
    )
    infos = [done for kind, done in results if kind == "speaker" for done in done]
    counts = {w: 0 for w in cfg.words}
    for word, _ in infos:
        counts[word] += 1
    snrs = np.array([i.snr_db for _, i in infos if i.noise_kind])
    return Summary(
        clips_per_word=counts,
        noise_files=names,
        speakers=len(people),
        clips=len(infos),
        noisy_fraction=snrs.size / max(len(infos), 1),
        snr_db_median=float(np.median(snrs)) if snrs.size else float("nan"),
    )


# ------------------------------------------------------------------- the dataset module API

Config = SyntheticConfig  # the schema of data.download


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    s = generate(cfg, out, progress=progress)
    return Materialised(
        "nothing (synthetic dataset, generated offline with espeak-ng)",
        f"{s.clips} clips of {len(s.clips_per_word)} words by {s.speakers} speakers and "
        f"{len(s.noise_files)} background-noise recordings",
        f"{s.noisy_fraction:.0%} of clips noisy, median SNR {s.snr_db_median:.1f} dB",
    )
