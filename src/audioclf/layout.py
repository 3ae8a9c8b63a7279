"""The raw-data layout: the one contract between the datasets (``download``) and ``prepare``.

Every dataset is brought into this layout under ``data/raw`` (the Speech Commands one)::

    <class>/<file>.wav                 clips of one class, any rate, channel count and length
    _background_noise_/<file>.wav      optional long noise recordings (silence, augmentation)
    validation_list.txt                optional: the dataset's own split, one clip path
    testing_list.txt                   relative to data/raw per line; unlisted clips train

A class folder named ``_silence_`` or ``_unknown_`` holds clips of those two special classes.
"""

from __future__ import annotations

NOISE_DIR = "_background_noise_"
# The dataset's own split lists, by split they name.
LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
# What libsndfile reads; anything else in a dataset folder is reported and skipped.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")
SILENCE = "_silence_"  # the class of noise-only clips
UNKNOWN = "_unknown_"  # the class of words that are not commands
SPLITS = ("train", "validation", "test")
