"""A small ctypes binding to libespeak-ng, as shipped by the `espeakng-loader` wheel.

Only what the synthetic dataset needs: speak one piece of text with a given voice and
prosody and get the samples back as a float32 array. No system package is used: the shared
library and its data folder (phoneme tables, dictionaries, voices) both come from the wheel.

Voices are named the espeak way, ``"<accent>+<variant>"``: the accent is a language voice
(``en-us``, ``en-gb-scotland``, ``de`` ...) and the optional variant changes the speaker
(``m1``..``m8``, ``f1``..``f5``, ``klatt``, ``whisper`` ...). :func:`accents` and
:func:`variants` list what the shipped data holds; an unknown name fails listing them.

Synthesis is deterministic: the same arguments give the same samples, whatever was spoken
before. espeak-ng keeps synthesis state in C globals that no API call resets, so every call
loads the library afresh, initialises it, speaks and unloads it again (see
:func:`_fresh_engine`); nothing happens at import. Calls are serialised with a lock; use
separate processes for parallel work.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Iterator

import numpy as np

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_Synth returns when all audio went to the callback
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7

# Accepted parameter ranges (espeak clamps silently outside them; we refuse instead).
RATE_WPM = (80, 450)  # words per minute
PITCH = (0, 100)  # base pitch, espeak units (50 = the voice's normal pitch)
PITCH_RANGE = (0, 100)  # intonation range, 0 = monotone, 50 = normal
VOLUME = (0, 200)  # amplitude, 100 = normal
WORD_GAP = (0, 100)  # extra pause between words, units of 10 ms


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or refused a request; the message says what to do."""


class _Voice(ctypes.Structure):
    # espeak_VOICE from speak_lib.h; `languages` is a list of (priority byte, name, NUL).
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to continue.
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


_lock = threading.Lock()  # espeak-ng is one global state: one call at a time per process


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakError(
            "espeakng_loader is not installed; it ships libespeak-ng. "
            "Install the project dependencies (`python3 -m uv sync`)."
        ) from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def _declare(lib: ctypes.CDLL) -> None:
    """Give ctypes the C signatures (from speak_lib.h / espeak_ng.h) of what we call."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None


@contextlib.contextmanager
def _fresh_engine() -> Iterator[tuple[ctypes.CDLL, int]]:
    """Load libespeak-ng, initialise it, yield (library, sample rate in Hz), then unload it.

    Why not load once: espeak-ng keeps synthesis state in C statics (pitch-flutter phase,
    wave phase, filter memories ...) that carry over from one utterance to the next and that
    no API call resets, so the same text would come out slightly different depending on what
    was spoken before. Loading the library afresh for every call (dlopen + initialise +
    dlclose, about 0.5 ms on top of a few ms of synthesis) starts every utterance from the same
    state. This needs nobody else in the process to hold the library open.
    """
    lib_path, data_path = _paths()
    with _lock:
        try:
            ctypes.CDLL(lib_path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        except OSError:
            pass  # not resident: good, this load starts from pristine statics
        else:
            raise EspeakError(
                f"{lib_path} is already loaded by other code in this process, so its state "
                "cannot be reset and synthesis would not be reproducible. Call "
                "audioclf.espeak from a process that does not load libespeak-ng otherwise."
            )
        try:
            lib = ctypes.CDLL(lib_path, mode=os.RTLD_LOCAL)
        except OSError as err:
            raise EspeakError(f"{lib_path}: cannot load libespeak-ng ({err})") from None
        try:
            _declare(lib)
            # buflength 0 = default 200 ms chunks; options 0 = no phoneme events.
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
            if rate <= 0:
                raise EspeakError(
                    f"espeak_Initialize failed (returned {rate}) with data at {data_path}"
                )
            try:
                yield lib, int(rate)
            finally:
                lib.espeak_Terminate()
        finally:
            handle = lib._handle
            del lib
            _ctypes.dlclose(handle)


@functools.cache
def sample_rate() -> int:
    """The rate (Hz) at which espeak-ng produces audio (22050 for the shipped voices)."""
    with _fresh_engine() as (_, rate):
        return rate


@functools.cache
def accents() -> tuple[str, ...]:
    """Every language voice in the shipped data (e.g. ``en-us``, ``en-gb-scotland``), sorted.

    These are the voice file names, lower-cased (``gmw/en-GB-scotland`` -> ``en-gb-scotland``),
    which is what espeak_SetVoiceByName resolves; British English is plain ``en``.
    """
    names: set[str] = set()
    with _fresh_engine() as (lib, _):
        voices = lib.espeak_ListVoices(None)  # NULL-terminated array of espeak_VOICE*
        i = 0
        while voices[i]:
            identifier = voices[i].contents.identifier.decode()  # e.g. "gmw/en-US"
            names.add(identifier.rsplit("/", 1)[-1].lower())
            i += 1
    return tuple(sorted(names))


@functools.cache
def variants() -> tuple[str, ...]:
    """Every voice variant in the shipped data (``m1``, ``f3``, ``klatt2`` ...), sorted.

    Names with spaces are left out: they cannot be written as ``accent+variant``.
    """
    folder = os.path.join(_paths()[1], "voices", "!v")
    return tuple(sorted(n for n in os.listdir(folder) if " " not in n))


def check_voice(voice: str) -> None:
    """Raise ValueError unless ``voice`` is ``accent`` or ``accent+variant`` from the data."""
    accent, _, variant = voice.partition("+")
    if accent not in accents():
        raise ValueError(
            f"unknown espeak accent {accent!r} in voice {voice!r}. "
            f"Allowed accents: {', '.join(accents())}"
        )
    if variant and variant not in variants():
        raise ValueError(
            f"unknown espeak variant {variant!r} in voice {voice!r}. "
            f"Allowed variants: {', '.join(variants())}"
        )


def _check_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name}: {value} is out of range, allowed {bounds[0]}..{bounds[1]}")


def synthesize(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    word_gap: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """Speak ``text``; return (samples float32 of shape (n,) in [-1, 1], sample rate in Hz).

    ``voice`` is ``"accent"`` or ``"accent+variant"`` (see :func:`accents`, :func:`variants`);
    ``rate_wpm`` in words per minute, ``pitch`` and ``pitch_range`` in espeak units 0..100
    (50 = the voice's own), ``volume`` 0..200 (100 = normal), ``word_gap`` in units of 10 ms.
    ``seed`` seeds the noise generators (breathy, whispered and Klatt voices). The output
    keeps espeak's short leading/trailing silence. Same arguments -> identical samples.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text: expected a non-empty string, got {text!r}")
    check_voice(voice)
    _check_range("rate_wpm", rate_wpm, RATE_WPM)
    _check_range("pitch", pitch, PITCH)
    _check_range("pitch_range", pitch_range, PITCH_RANGE)
    _check_range("volume", volume, VOLUME)
    _check_range("word_gap", word_gap, WORD_GAP)

    chunks: list[np.ndarray] = []

    def collect(wav, n, _events):  # espeak hands over int16 samples; wav is NULL at the end
        if wav and n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    callback = _CALLBACK(collect)  # referenced until the engine is unloaded
    with _fresh_engine() as (lib, rate):
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise EspeakError(f"espeak-ng refused voice {voice!r}")
        for param, value in (
            (_RATE, rate_wpm),
            (_PITCH, pitch),
            (_RANGE, pitch_range),
            (_VOLUME, volume),
            (_WORDGAP, word_gap),
        ):
            if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise EspeakError(f"espeak-ng refused parameter {param} = {value}")
        # Noise sources: espeak's own generator (breath, whisper) and, in the Klatt
        # synthesiser, the C library's rand(); seed both. (This reseeds libc's rand() for the
        # whole process, which nothing else here uses.)
        lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        ctypes.CDLL(None).srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        status = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
            raise EspeakError(f"espeak_Synth failed (status {status}) for text {text!r}")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    # int16 -> [-1, 1): divide by 32768 so that -32768 maps exactly to -1.
    return pcm.astype(np.float32) / np.float32(32768.0), rate
