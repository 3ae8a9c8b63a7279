"""Dataset layer: every dataset module through the real `download` and `prepare` stages.

Each test builds a tiny copy of a dataset in its real layout in tmp_path (archives served by
tests/httpserver.py on 127.0.0.1, local folders for folder/TIMIT), runs the stage mains in
this process in a temporary working folder, and checks the split lists, labels and counts
exactly. Nothing touches the network beyond loopback.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import shutil
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from audioclf.audio_io import read_wav, write_wav
from audioclf.clips import chop
from audioclf.config import ConfigError
from audioclf.datasets import fsdd
from audioclf.download import DownloadError
from audioclf.layout import SILENCE, SPLITS, UNKNOWN
from audioclf.splits import (
    class_names,
    extra_count,
    listed_set,
    read_list,
    speaker_of,
    which_set,
)
from tests.helpers import tone_clip
from tests.httpserver import LoopbackServer
from tests.test_config import write_params

RATE = 16000  # Hz of the generated Speech Commands / folder / TIMIT clips

# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty repository folder, the working directory of the stages."""
    folder = tmp_path / "repo"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("DVC_ROOT", raising=False)  # relative paths start at the cwd
    monkeypatch.delenv("AUDIOCLF_CACHE", raising=False)
    return folder


def run(stage: str) -> None:
    importlib.import_module(f"stages.{stage}").main()


def manifest(work: Path) -> list[dict[str, str]]:
    with (work / "data/prepared/manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def report(work: Path) -> dict[str, tuple[str, str]]:
    """report.csv as {path: (action, reason)}."""
    with (work / "data/prepared/report.csv").open(newline="") as f:
        return {r["path"]: (r["action"], r["reason"]) for r in csv.DictReader(f)}


def labels(work: Path) -> list[str]:
    return json.loads((work / "data/prepared/labels.json").read_text())["classes"]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary siblings an interrupted atomic write would leave."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def check_arrays(work: Path, rows: list[dict[str, str]], n_samples: int) -> None:
    """x and y of each split agree with the manifest: shapes, dtypes and label ids."""
    classes = labels(work)
    for split in SPLITS:
        mine = [r for r in rows if r["split"] == split]
        x = np.load(work / f"data/prepared/{split}_x.npy")
        y = np.load(work / f"data/prepared/{split}_y.npy")
        assert x.dtype == np.float32 and x.shape == (len(mine), n_samples)
        assert y.dtype == np.int32
        assert y.tolist() == [classes.index(r["label"]) for r in mine]
        assert [int(r["index"]) for r in mine] == list(range(len(mine)))


def tar_gz(source: Path, archive: Path, arcname: str) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return archive


# --- Speech Commands ---------------------------------------------------------------------

SC_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SC_OTHERS = ("bed", "cat", "dog")
# Speakers by official list. The first train speaker has no "go" clip, so train has 29
# command clips and ceil(10 % of 29) = 3 silence / unknown clips (the ceil matters).
SC_SPEAKERS = {
    "train": ("0a7c2a8d", "0b09edd3", "0c40e715"),
    "validation": ("1a673010", "1b4c9b89"),
    "test": ("2aca1e72",),
}
SC_NOISE_SECONDS = 10.0  # the validation/test tenths of a recording must hold a 1 s window


def speech_commands_tree(root: Path, lists: tuple[str, ...] = ("validation", "test")) -> Path:
    """The v0.02 layout: word folders, _background_noise_/ (+ README.md), split lists."""
    rng = np.random.default_rng(1)
    listed: dict[str, list[str]] = {"validation": [], "test": []}
    for i, word in enumerate(SC_COMMANDS + SC_OTHERS):
        (root / word).mkdir(parents=True)
        for split, speakers in SC_SPEAKERS.items():
            for speaker in speakers:
                if word == "go" and speaker == SC_SPEAKERS["train"][0]:
                    continue
                rel = f"{word}/{speaker}_nohash_0.wav"
                write_wav(root / rel, tone_clip(300.0 + 90 * i, RATE, 1.0, rng), RATE)
                if split != "train":
                    listed[split].append(rel)
    noise = root / "_background_noise_"
    noise.mkdir()
    n = int(SC_NOISE_SECONDS * RATE)
    write_wav(noise / "white_noise.wav", 0.1 * rng.standard_normal(n), RATE)
    write_wav(noise / "running_tap.wav", 0.1 * np.sin(np.arange(n) * 0.05), RATE)
    (noise / "README.md").write_text("Background noise recordings.\n")
    names = {"validation": "validation_list.txt", "test": "testing_list.txt"}
    for split in lists:
        (root / names[split]).write_text("".join(f"{p}\n" for p in sorted(listed[split])))
    (root / "LICENSE").write_text("CC BY 4.0\n")
    (root / "README.md").write_text("Speech Commands\n")
    return root


@pytest.fixture(scope="module")
def sc_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Served folders: the archive as Google serves it (members ./word/...), and one
    without testing_list.txt."""
    base = tmp_path_factory.mktemp("speech_commands")
    out = {}
    for kind, lists in (("full", ("validation", "test")), ("no_test_list", ("validation",))):
        tree = speech_commands_tree(base / f"tree_{kind}", lists)
        served = base / f"served_{kind}"
        served.mkdir()
        tar_gz(tree, served / "speech_commands_v0.02.tar.gz", ".")
        out[kind] = served
    return out


def sc_params(work: Path, server: LoopbackServer, data: str = "speech_commands", **values):
    archive = server.root / "speech_commands_v0.02.tar.gz"
    return write_params(
        work,
        [f"data={data}"],
        data__download__url=server.url("speech_commands_v0.02.tar.gz"),
        data__download__sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        data__download__size=archive.stat().st_size,
        data__download__cache_dir=str(work.parent / "cache"),
        **values,
    )


def sc_lists(raw: Path) -> dict[str, set[str]]:
    return {
        "validation": read_list(raw / "validation_list.txt"),
        "test": read_list(raw / "testing_list.txt"),
    }


def test_speech_commands_download_and_prepare_follow_the_official_lists(
    work: Path, sc_archives: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cache = work.parent / "cache"
    with LoopbackServer(sc_archives["full"]) as server:
        sc_params(work, server)
        run("download")
        assert [r.method for r in server.requests] == ["GET"]
        assert sorted(p.name for p in cache.iterdir()) == ["speech_commands_v0.02.tar.gz"]
        raw = work / "data/raw"
        first = files_under(raw)
        # The archive's ./ entries land directly in data/raw, nothing else is left.
        assert {p.name for p in raw.iterdir()} == {
            *SC_COMMANDS,
            *SC_OTHERS,
            "_background_noise_",
            "validation_list.txt",
            "testing_list.txt",
            "LICENSE",
            "README.md",
        }
        assert leftovers(work / "data") == []
        out = capsys.readouterr().out
        assert "77 clips of 13 words" in out and "verified" in out

        run("download")  # the cached archive is reused: no request at all
        assert len(server.requests) == 1
        assert files_under(raw) == first

    run("prepare")
    lists = sc_lists(raw)
    rows = manifest(work)
    assert labels(work) == [SILENCE, UNKNOWN, *SC_COMMANDS]
    for r in rows:
        if r["label"] == SILENCE:
            assert r["path"].startswith("_background_noise_/") and r["speaker"] == ""
        else:  # source is the folder word; commands keep it, other words are _unknown_
            assert r["path"].split("/")[0] == r["source"]
            assert r["label"] == (r["source"] if r["source"] in SC_COMMANDS else UNKNOWN)
            assert r["speaker"] == r["path"].split("/")[1].split("_nohash_")[0]

    all_commands = {p for p in first if p.split("/")[0] in SC_COMMANDS}
    all_others = {p for p in first if p.split("/")[0] in SC_OTHERS}
    listed = lists["validation"] | lists["test"]
    expected_commands = {
        "train": all_commands - listed,
        "validation": all_commands & lists["validation"],
        "test": all_commands & lists["test"],
    }
    candidates = {
        "train": all_others - listed,
        "validation": all_others & lists["validation"],
        "test": all_others & lists["test"],
    }
    for split in SPLITS:
        mine = [r for r in rows if r["split"] == split]
        commands = [r["path"] for r in mine if r["label"] in SC_COMMANDS]
        unknown = [r["path"] for r in mine if r["label"] == UNKNOWN]
        silence = [r for r in mine if r["label"] == SILENCE]
        assert len(commands) == len(set(commands))
        assert set(commands) == expected_commands[split]
        want = extra_count(len(commands), 10.0)
        assert len(unknown) == len(set(unknown)) == want
        assert set(unknown) <= candidates[split]
        assert len(silence) == want
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    # 29 / 20 / 10 command clips, + ceil(10 %) unknown and silence each.
    assert counts == {"train": 29 + 3 + 3, "validation": 20 + 2 + 2, "test": 10 + 1 + 1}
    check_arrays(work, rows, RATE)
    assert report(work)["_background_noise_/README.md"] == ("skipped", "not an audio file (.md)")
    # Each noise recording's split parts: 8 s train, 1 s validation, 1 s test.
    for split, seconds in (("train", 8.0), ("validation", 1.0), ("test", 1.0)):
        with np.load(work / f"data/prepared/noise_{split}.npz") as noise:
            assert sorted(noise) == ["running_tap", "white_noise"]
            assert {k: len(v) for k, v in noise.items()} == {
                "running_tap": int(seconds * RATE),
                "white_noise": int(seconds * RATE),
            }


def test_speech_commands_35_makes_every_word_folder_a_class(
    work: Path, sc_archives: dict[str, Path]
) -> None:
    with LoopbackServer(sc_archives["full"]) as server:
        sc_params(work, server, data="speech_commands_35")
        run("download")
    run("prepare")

    raw = work / "data/raw"
    lists = sc_lists(raw)
    rows = manifest(work)
    words = sorted(SC_COMMANDS + SC_OTHERS)
    assert labels(work) == words
    clips = {p for p in files_under(raw) if p.split("/")[0] in words}
    assert len(clips) == 13 * 6 - 1
    assert sorted(r["path"] for r in rows) == sorted(clips)  # every clip, once
    for r in rows:
        assert r["label"] == r["source"] == r["path"].split("/")[0]
        assert r["split"] == listed_set(r["path"], lists["validation"], lists["test"])
    check_arrays(work, rows, RATE)


def test_split_lists_missing_from_the_archive_ask_for_a_hash_split(
    work: Path, sc_archives: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer(sc_archives["no_test_list"]) as server:
        sc_params(work, server)
        run("download")
    assert "the archive has no testing_list.txt (use data.prepare.split: hash)" in (
        capsys.readouterr().out
    )

    with pytest.raises(FileNotFoundError) as info:
        run("prepare")
    message = str(info.value)
    assert "data/raw/testing_list.txt: missing" in message
    assert "data.prepare.split: hash" in message
    assert not (work / "data/prepared").exists()

    # The advice works: a hash split of the same data/raw by speaker (30 % / 30 %, so
    # that each split gets one of the six speakers at least).
    write_params(
        work,
        [
            "data=speech_commands",
            "data.prepare.split=hash",
            "data.prepare.validation_percentage=30",
            "data.prepare.testing_percentage=30",
        ],
    )
    run("prepare")
    rows = [r for r in manifest(work) if r["label"] != SILENCE]
    assert {r["split"] for r in rows} == set(SPLITS)
    for r in rows:
        assert r["split"] == which_set(r["path"], 30.0, 30.0)


def test_checksum_mismatch_in_the_download_stage_leaves_nothing(
    work: Path, sc_archives: dict[str, Path]
) -> None:
    wrong = "0" * 64
    with LoopbackServer(sc_archives["full"]) as server:
        params = sc_params(work, server, data__download__retries=2)
        right = params["data"]["download"]["sha256"]
        params["data"]["download"]["sha256"] = wrong
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        with pytest.raises(DownloadError) as info:
            run("download")
        assert len(server.requests) == 1  # the same bytes cannot match: not fetched twice
        url = server.url("speech_commands_v0.02.tar.gz")

    message = str(info.value)
    assert url in message and wrong in message and right in message
    assert not (work / "data/raw").exists()
    assert leftovers(work / "data") == []
    assert list((work.parent / "cache").iterdir()) == []


# --- folder --------------------------------------------------------------------------------

SPEAKER = "^([a-z]+)-"  # alice-1.wav -> alice
# With 25 % / 25 %: bob, carol, dave train; alice, heidi validation; frank, rupert test.
FOLDER_SPLIT = {"alice": "validation", "heidi": "validation", "frank": "test", "rupert": "test"}


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def folder_tree(root: Path) -> Path:
    """Class folders cat/ and dog/ with every kind of file a user's folder may hold."""
    (root / "cat").mkdir(parents=True)
    (root / "dog" / "nested").mkdir(parents=True)
    (root / "bird").mkdir()  # an empty class folder
    stereo = np.stack([tone(1.0, 44100), tone(1.0, 44100, 660.0)], axis=1)
    sf.write(root / "cat/alice-1.wav", stereo, 44100, subtype="PCM_16")
    write_wav(root / "cat/bob-1.wav", tone(1.0, 8000), 8000)
    write_wav(root / "cat/carol-1.wav", tone(0.3, RATE), RATE)
    write_wav(root / "cat/frank-1.wav", tone(1.0, RATE), RATE)
    write_wav(root / "cat/heidi-2.wav", tone(1.0, RATE), RATE)
    (root / "cat/notes.txt").write_text("recorded in the kitchen\n")
    rng = np.random.default_rng(3)
    write_wav(root / "dog/carol-2.wav", 0.3 * rng.standard_normal(int(3.5 * RATE)), RATE)
    write_wav(root / "dog/bob-2.wav", tone(1.0, RATE, 330.0), RATE)
    write_wav(root / "dog/heidi-1.wav", tone(1.0, RATE, 330.0), RATE)
    write_wav(root / "dog/rupert-1.wav", tone(1.0, RATE, 330.0), RATE)
    (root / "dog/dave-1.wav").write_bytes(b"\x13\x37 definitely not a wave file" * 10)
    write_wav(root / "dog/nested/erin-1.wav", tone(1.0, RATE), RATE)
    (root / "README.txt").write_text("my recordings\n")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


FOLDER_COPIED = {
    "cat/alice-1.wav",
    "cat/bob-1.wav",
    "cat/carol-1.wav",
    "cat/frank-1.wav",
    "cat/heidi-2.wav",
    "dog/bob-2.wav",
    "dog/carol-2.wav",
    "dog/dave-1.wav",
    "dog/heidi-1.wav",
    "dog/rupert-1.wav",
}


def folder_params(work: Path, path: object, *overrides: str) -> dict:
    return write_params(
        work,
        [
            "data=folder",
            f"data.prepare.speaker_pattern='{SPEAKER}'",
            "data.prepare.validation_percentage=25",
            "data.prepare.testing_percentage=25",
            *overrides,
        ],
        data__download__path=str(path),
    )


def test_folder_download_copies_the_audio_and_reports_every_skip(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = folder_tree(tmp_path / "mine")
    folder_params(work, source)
    run("download")

    raw = work / "data/raw"
    assert files_under(raw) == FOLDER_COPIED
    for rel in FOLDER_COPIED:
        assert (raw / rel).read_bytes() == (source / rel).read_bytes()
    out = capsys.readouterr().out.splitlines()
    skipped = [line for line in out if line.startswith("[download] skipped")]
    assert sorted(skipped) == sorted(
        [
            f"[download] skipped {source}/README.txt: a file outside any class folder",
            f"[download] skipped {source}/bird: empty class folder (no audio files), "
            "class left out",
            f"[download] skipped {source}/cat/notes.txt: not an audio file (.txt)",
            f"[download] skipped {source}/dog/nested: nested folder (only files directly "
            "in a class folder count)",
        ]
    )
    assert "10 files of 2 classes" in out[-1] and "4 entries skipped" in out[-1]


@pytest.mark.parametrize("mode", ["crop", "chop"])
def test_folder_prepare_converts_skips_and_splits_by_speaker(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    source = folder_tree(tmp_path / "mine")
    folder_params(work, source, f"data.prepare.long_clips={mode}")
    run("download")
    run("prepare")

    long = "chopped 3.500 s into 4 clips" if mode == "chop" else "cropped 3.500 s to 1.000 s"
    got = report(work)
    assert got.pop("dog/dave-1.wav")[0] == "skipped"
    assert got == {
        "cat/alice-1.wav": ("converted", "mixed down from 2 channels; resampled 44100->16000 Hz"),
        "cat/bob-1.wav": ("converted", "resampled 8000->16000 Hz"),
        "cat/carol-1.wav": ("converted", "padded 0.300 s to 1.000 s"),
        "dog/carol-2.wav": ("converted", long),
    }
    assert report(work)["dog/dave-1.wav"][1].startswith("not readable as audio (")
    out = capsys.readouterr().out
    assert "[prepare] skipped data/raw/dog/dave-1.wav: not readable as audio (" in out
    assert "generated white, pink, brown noise" in out

    rows = manifest(work)
    assert labels(work) == ["cat", "dog"]  # every class folder; no silence, no unknown
    usable = sorted(FOLDER_COPIED - {"dog/dave-1.wav"})
    windows = 4 if mode == "chop" else 1
    assert sorted(r["path"] for r in rows) == sorted(usable + ["dog/carol-2.wav"] * (windows - 1))
    for r in rows:
        speaker = r["path"].split("/")[1].split("-")[0]
        assert r["speaker"] == speaker
        assert r["split"] == FOLDER_SPLIT.get(speaker, "train")
        assert r["label"] == r["path"].split("/")[0]
    by_speaker = defaultdict(set)
    for r in rows:
        by_speaker[r["speaker"]].add(r["split"])
    assert all(len(splits) == 1 for splits in by_speaker.values())
    assert set(by_speaker) == {"alice", "bob", "carol", "frank", "heidi", "rupert"}
    check_arrays(work, rows, RATE)

    long_rows = [r for r in rows if r["path"] == "dog/carol-2.wav"]
    x = np.load(work / "data/prepared/train_x.npy")
    wave = read_wav(work / "data/raw/dog/carol-2.wav")[0][:, 0]
    got_x = x[[int(r["index"]) for r in long_rows]]
    if mode == "chop":
        assert [r["source"] for r in long_rows] == [f"dog@{k}.000s" for k in range(4)]
        assert {r["split"] for r in long_rows} == {"train"}
        np.testing.assert_array_equal(got_x, chop(wave, RATE))
        np.testing.assert_array_equal(got_x[3, : RATE // 2], wave[3 * RATE :])
        assert not got_x[3, RATE // 2 :].any()  # the last half window is zero padding
    else:
        assert [r["source"] for r in long_rows] == ["dog"]
        start = (len(wave) - RATE) // 2  # the centre second
        np.testing.assert_array_equal(got_x[0], wave[start : start + RATE])


def test_folder_chop_keeps_unknown_at_its_percentage(work: Path, tmp_path: Path) -> None:
    source = tmp_path / "mine"
    (source / "cat").mkdir(parents=True)
    (source / "dog").mkdir()
    for speaker in ("alice", "bob", "carol", "dave", "frank", "heidi", "rupert"):
        write_wav(source / "cat" / f"{speaker}-1.wav", tone(1.0, RATE), RATE)
        write_wav(source / "dog" / f"{speaker}-1.wav", tone(3.5, RATE, 330.0), RATE)
    folder_params(
        work,
        source,
        "data.prepare.commands=[cat]",
        "data.prepare.unknown_percentage=10",
        "data.prepare.long_clips=chop",
    )
    run("download")
    run("prepare")

    rows = manifest(work)
    counts = Counter((r["split"], r["label"]) for r in rows)
    assert {s: counts[s, "cat"] for s in SPLITS} == {"train": 3, "validation": 2, "test": 2}
    # ceil(10 % of 3 or 2 command clips) = 1 unknown clip per split; got 4 (one chopped file)
    assert {s: counts[s, UNKNOWN] for s in SPLITS} == {"train": 1, "validation": 1, "test": 1}


def test_folder_bad_paths_are_named(work: Path, tmp_path: Path) -> None:
    folder_params(work, tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"data\.download\.path: .*nowhere.* does not"):
        run("download")

    a_file = tmp_path / "recording.wav"
    write_wav(a_file, tone(0.5, RATE), RATE)
    folder_params(work, a_file)
    with pytest.raises(NotADirectoryError) as info:
        run("download")
    assert str(info.value) == (
        f"data.download.path: {str(a_file)!r} ({a_file}) is a file, not a folder"
    )

    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "cat" / "notes.txt").write_text("no audio here")
    folder_params(work, empty)
    with pytest.raises(FileNotFoundError, match="holds no class folder with audio files"):
        run("download")

    folder_params(work, "???")  # conf/data/folder.yaml's "required" marker, never set
    with pytest.raises(ConfigError) as error:
        run("download")
    assert str(error.value) == (
        "data.download.path: required; set it with "
        "`dvc exp run -S data.download.path=<folder of class folders>`"
    )
    assert not (work / "data/raw").exists()
    assert leftovers(work / "data") == []


def test_folder_noise_path_becomes_background_noise(work: Path, tmp_path: Path) -> None:
    source = folder_tree(tmp_path / "mine")
    noise = tmp_path / "noise"
    noise.mkdir()
    write_wav(noise / "fan.wav", tone(10.0, RATE, 120.0), RATE)
    (noise / "fan.txt").write_text("a desk fan")
    folder_params(work, source, "data.prepare.silence_percentage=10")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["download"]["noise_path"] = str(noise)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run("download")
    assert files_under(work / "data/raw") == FOLDER_COPIED | {"_background_noise_/fan.wav"}

    run("prepare")  # the noise makes a _silence_ class possible
    rows = manifest(work)
    assert labels(work) == [SILENCE, "cat", "dog"]
    for split in SPLITS:
        words = sum(r["split"] == split and r["label"] != SILENCE for r in rows)
        silence = [r for r in rows if r["split"] == split and r["label"] == SILENCE]
        assert len(silence) == extra_count(words, 10.0)
        assert {r["path"] for r in silence} == {"_background_noise_/fan.wav"}
    with np.load(work / "data/prepared/noise_test.npz") as parts:
        assert {k: v.shape for k, v in parts.items()} == {"fan": (int(2.5 * RATE),)}


def test_folder_unset_path_from_the_composed_config_is_a_config_error(work: Path) -> None:
    write_params(work, ["data=folder"])  # path: ??? exactly as composed
    with pytest.raises(ConfigError, match=r"^data\.download\.path: required"):
        run("download")


# --- folder: nothing dropped, every class in every split, your own split -----------------

SEVEN = ("alice", "bob", "carol", "dave", "frank", "heidi", "rupert")  # 3 / 2 / 2 at 25 % / 25 %


def seven_speaker_tree(root: Path, folders: tuple[str, ...]) -> Path:
    """One 1-s clip per speaker of SEVEN in each folder (a tone per folder)."""
    for k, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for speaker in SEVEN:
            write_wav(root / folder / f"{speaker}-1.wav", tone(1.0, RATE, 220.0 * (k + 1)), RATE)
    return root


def per_split_labels(work: Path) -> dict[str, Counter]:
    rows = manifest(work)
    return {s: Counter(r["label"] for r in rows if r["split"] == s) for s in SPLITS}


def test_folder_silence_and_unknown_folders_are_those_classes_with_all_their_clips(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = seven_speaker_tree(tmp_path / "mine", ("cat", "dog", SILENCE, UNKNOWN))
    folder_params(work, source)  # commands: null, silence/unknown_percentage 0
    run("download")
    run("prepare")

    assert labels(work) == [SILENCE, UNKNOWN, "cat", "dog"]  # ids 0, 1 as in TensorFlow's
    expected = {"train": 3, "validation": 2, "test": 2}  # clips per class: all of them
    for split, counts in per_split_labels(work).items():
        assert counts == {c: expected[split] for c in (SILENCE, UNKNOWN, "cat", "dog")}
    assert all(a != "ignored" for a, _ in report(work).values())
    out = capsys.readouterr().out
    assert (
        "[prepare] clips per class (train/validation/test): _silence_ 3/2/2, _unknown_ 3/2/2, "
        "cat 3/2/2, dog 3/2/2"
    ) in out
    check_arrays(work, manifest(work), RATE)


def test_folder_not_a_class_is_reported_with_the_key_that_changes_it(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = seven_speaker_tree(tmp_path / "mine", ("bird", "cat", "dog", SILENCE, UNKNOWN))
    folder_params(work, source, "data.prepare.commands=[cat,dog]")  # unknown_percentage 0
    run("download")
    run("prepare")

    assert labels(work) == [SILENCE, "cat", "dog"]  # _silence_/ is silence, never unknown
    why = (
        "7 clips not used: the folder is not in data.prepare.commands and "
        "data.prepare.unknown_percentage is 0. List it in commands to make it a class, set "
        "unknown_percentage > 0 to pick _unknown_ clips from it, or commands: null to make "
        "every folder a class"
    )
    got = report(work)
    assert got["bird/"] == ("ignored", why) and got["_unknown_/"] == ("ignored", why)
    out = capsys.readouterr().out
    assert f"[prepare] ignored data/raw/bird/: {why}" in out
    assert "14 clips of non-class folders ignored" in out

    folder_params(work, source, "data.prepare.commands=[cat,_unknown_]")
    with pytest.raises(ConfigError, match=r"^data\.prepare\.commands: lists _unknown_, which"):
        run("prepare")

    # An _unknown_ class with nothing to pick it from is an error, not an empty class.
    only = seven_speaker_tree(tmp_path / "only", ("cat", "dog"))
    folder_params(
        work, only, "data.prepare.commands=[cat,dog]", "data.prepare.unknown_percentage=10"
    )
    shutil.rmtree(work / "data/raw")
    run("download")
    with pytest.raises(ConfigError, match=r"^data\.prepare\.unknown_percentage: 10.0 asks for _"):
        run("prepare")


# Ten speakers, two classes (tests/test_splits.py): the plain hash puts m3 alone in
# validation; f3 is the female speaker nearest the validation range.
TEN = {"female": ("f0", "f1", "f2", "f3", "f4"), "male": ("m0", "m1", "m2", "m3", "m5")}


def ten_speaker_corpus(root: Path) -> Path:
    for k, (label, speakers) in enumerate(TEN.items()):
        (root / label).mkdir(parents=True)
        for speaker in speakers:
            for n in range(2):
                write_wav(root / label / f"{speaker}_{n}.wav", tone(0.5, RATE, 200.0 + k), RATE)
    return root


def ten_params(work: Path, source: Path, *overrides: str) -> dict:
    return write_params(
        work,
        ["data=folder", "data.prepare.speaker_pattern='^([a-z][0-9])_'", *overrides],
        data__download__path=str(source),
    )


def test_ten_speakers_every_split_holds_both_classes(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ten_speaker_corpus(tmp_path / "voices")
    assert [
        s
        for ss in TEN.values()
        for s in ss
        if which_set(s + "_0", 10, 10, "^(..)_") == "validation"
    ] == ["m3"]
    ten_params(work, source)
    run("download")
    run("prepare")

    rows = manifest(work)
    speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in SPLITS}
    assert speakers == {
        "train": {"f0", "f1", "f2", "m0", "m1", "m2"},
        "validation": {"f3", "m3"},
        "test": {"f4", "m5"},
    }
    assert per_split_labels(work) == {
        "train": {"female": 6, "male": 6},
        "validation": {"female": 2, "male": 2},
        "test": {"female": 2, "male": 2},
    }
    why = "hash split train, moved to validation so that validation holds class female"
    assert report(work)["speaker f3"] == ("moved", why)
    out = capsys.readouterr().out
    assert f"[prepare] moved speaker f3: {why}" in out
    assert "1 speakers moved so that every split holds every class" in out


def test_a_class_with_too_few_speakers_stops_prepare_naming_class_split_and_counts(
    work: Path, tmp_path: Path
) -> None:
    source = ten_speaker_corpus(tmp_path / "voices")
    for speaker in ("f0", "f1", "f2", "f3"):
        for n in range(2):
            (source / "female" / f"{speaker}_{n}.wav").unlink()
    ten_params(work, source)
    run("download")
    with pytest.raises(ValueError) as info:
        run("prepare")
    assert str(info.value).startswith(
        "class 'female' cannot be in split 'train': it has 1 speaker(s) (train 0, validation "
        "0, test 1) and no speaker can move to 'train' without leaving a class out of its own "
        "split. A speaker-disjoint split needs at least 3 speakers of each class"
    )
    assert not (work / "data/prepared").exists()


def test_train_refuses_a_validation_set_without_a_class_unless_told(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The user's own lists are taken as given: validation holds m3 only.
    source = ten_speaker_corpus(tmp_path / "voices")
    (source / "validation_list.txt").write_text("male/m3_0.wav\nmale/m3_1.wav\n")
    (source / "testing_list.txt").write_text("female/f4_0.wav\nmale/m5_0.wav\n")
    ten_params(work, source, "data.prepare.split=lists")
    run("download")
    run("prepare")
    assert per_split_labels(work)["validation"] == {"male": 2}
    why = "no clips of class(es) female (the split lists put none there)"
    assert report(work)["validation"] == ("incomplete", why)
    assert f"[prepare] incomplete validation: {why}" in capsys.readouterr().out

    with pytest.raises(ValueError) as info:
        run("train")
    message = str(info.value)
    assert message.startswith("the validation set has no clips of class(es) female (2 clips")
    assert "train.allow_incomplete_validation: true" in message

    ten_params(work, source, "data.prepare.split=lists", "train.allow_incomplete_validation=true")
    with pytest.raises(FileNotFoundError, match="data/features/info.json"):
        run("train")  # past the check: on to the features, which this test did not make
    assert "[train] validation has no clips of female (allowed by the config)" in (
        capsys.readouterr().out
    )


# Twenty speakers whose plain hash (30 % / 30 %) all falls in test: a folder that is itself
# the test split of a dataset split by this rule.
ONE_SPLIT = [
    f"spk{i}" for i in (0, 2, 4, 6, 8, 9, 12, 14, 17, 20, 26, 27, 33, 46, 47, 53, 54, 58, 60, 62)
]


def one_split_folder(root: Path) -> Path:
    for k, label in enumerate(("cat", "dog")):
        (root / label).mkdir(parents=True)
        for speaker in ONE_SPLIT:
            write_wav(root / label / f"{speaker}_0.wav", tone(0.25, RATE, 300.0 + k), RATE)
    return root


def one_split_params(work: Path, source: Path, *overrides: str) -> dict:
    return write_params(
        work,
        [
            "data=folder",
            "data.prepare.speaker_pattern='^(spk[0-9]+)_'",
            "data.prepare.validation_percentage=30",
            "data.prepare.testing_percentage=30",
            *overrides,
        ],
        data__download__path=str(source),
    )


def test_a_folder_that_is_one_split_says_why_and_is_re_split_by_salt_or_lists(
    work: Path, tmp_path: Path
) -> None:
    assert {which_set(f"{s}_0", 30, 30, "^(spk[0-9]+)_") for s in ONE_SPLIT} == {"test"}
    source = one_split_folder(tmp_path / "test_set")
    one_split_params(work, source)
    run("download")
    with pytest.raises(ValueError) as info:
        run("prepare")
    assert str(info.value) == (
        "the speaker hash puts 0 of 20 speakers in 'train' (train 0, validation 0, test 20), "
        "where about 8 were expected: the speakers' ids are not spread by the hash. If the "
        "folder is itself one split of a dataset split by this hash (Speech Commands' test "
        "set is exactly the speakers hashing into one range), re-split it with "
        "data.prepare.split_salt (any text, e.g. `-S data.prepare.split_salt=1`), or give "
        "your own split: validation_list.txt / testing_list.txt at the folder's root and "
        "data.prepare.split: lists"
    )

    one_split_params(work, source, "data.prepare.split_salt=a")
    run("prepare")
    rows = manifest(work)
    assert all(
        which_set(f"{r['speaker']}_0", 30, 30, "^(spk[0-9]+)_", salt="a") == r["split"]
        for r in rows
    )
    speakers = Counter(r["split"] for r in rows if r["label"] == "cat")
    assert speakers == {"train": 10, "validation": 5, "test": 5}
    assert per_split_labels(work) == {s: {"cat": n, "dog": n} for s, n in speakers.items()}

    (source / "validation_list.txt").write_text(
        "".join(f"{c}/{s}_0.wav\n" for c in ("cat", "dog") for s in ONE_SPLIT[:4])
    )
    (source / "testing_list.txt").write_text(
        "".join(f"{c}/{s}_0.wav\n" for c in ("cat", "dog") for s in ONE_SPLIT[4:8])
    )
    one_split_params(work, source, "data.prepare.split=lists")
    shutil.rmtree(work / "data/raw")
    run("download")  # brings the lists into data/raw
    assert (work / "data/raw/testing_list.txt").read_bytes() == (
        source / "testing_list.txt"
    ).read_bytes()
    run("prepare")
    assert per_split_labels(work) == {
        "train": {"cat": 12, "dog": 12},
        "validation": {"cat": 4, "dog": 4},
        "test": {"cat": 4, "dog": 4},
    }


def test_folder_background_noise_inside_the_folder_and_beyond_full_scale_samples(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = seven_speaker_tree(tmp_path / "mine", ("cat", "dog"))
    (source / "_background_noise_").mkdir()
    write_wav(source / "_background_noise_/fan.wav", tone(10.0, RATE, 120.0), RATE)
    loud = 40.0 * tone(1.0, RATE, 500.0) / 0.3  # peak 40: a float WAV far beyond full scale
    sf.write(source / "cat/zoe-1.wav", loud, RATE, subtype="FLOAT")
    folder_params(work, source, "data.prepare.silence_percentage=10")  # no noise_path
    run("download")
    assert "_background_noise_/fan.wav" in files_under(work / "data/raw")
    run("prepare")

    out = capsys.readouterr().out
    assert "generated" not in out and "1 noise recordings" in out
    rows = manifest(work)
    silence = {r["path"] for r in rows if r["label"] == SILENCE}
    assert silence == {"_background_noise_/fan.wav"}
    assert {
        s for s in SPLITS if any(r["split"] == s and r["label"] == SILENCE for r in rows)
    } == set(SPLITS)

    assert report(work)["cat/zoe-1.wav"] == (
        "converted",
        "samples beyond full scale (peak 40.000): scaled by 1/40.000",
    )
    (row,) = [r for r in rows if r["path"] == "cat/zoe-1.wav"]
    x = np.load(work / f"data/prepared/{row['split']}_x.npy")[int(row["index"])]
    assert abs(float(np.abs(x).max()) - 1.0) < 1e-6

    # A noise_path given wins over the folder's own, which is reported.
    noise = tmp_path / "noise"
    noise.mkdir()
    write_wav(noise / "hum.wav", tone(10.0, RATE, 50.0), RATE)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["download"]["noise_path"] = str(noise)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(work / "data/raw")
    run("download")
    assert {p for p in files_under(work / "data/raw") if p.startswith("_back")} == {
        "_background_noise_/hum.wav"
    }
    assert (
        f"[download] skipped {source}/_background_noise_: data.download.noise_path is set "
        "and used instead"
    ) in capsys.readouterr().out


# --- FSDD ----------------------------------------------------------------------------------

FSDD_INDICES = (0, 4, 5, 9, 10)  # the edges of test 0-4 / validation 5-9 / train 10-
FSDD_TOP = f"free-spoken-digit-dataset-{fsdd.COMMIT}"


def fsdd_tree(root: Path) -> list[Path]:
    """20 recordings (digits 0-1, 2 speakers, 5 indices) in the repository's layout."""
    rng = np.random.default_rng(4)
    rec = root / FSDD_TOP / "recordings"
    rec.mkdir(parents=True)
    files = []
    for digit in (0, 1):
        for speaker in ("jackson", "theo"):
            for index in FSDD_INDICES:
                path = rec / f"{digit}_{speaker}_{index}.wav"
                seconds = 0.3 + 0.02 * index
                write_wav(path, tone_clip(500.0 + 400 * digit, 8000, seconds, rng), 8000)
                files.append(path)
    (root / FSDD_TOP / "utils").mkdir()
    write_wav(root / FSDD_TOP / "utils" / "example.wav", tone(0.2, 8000), 8000)
    (root / FSDD_TOP / "README.md").write_text("FSDD\n")
    return files


@pytest.fixture
def fsdd_served(tmp_path: Path) -> Iterator[tuple[LoopbackServer, str, Path]]:
    """(server, recordings_sha256 of the 20 files, unpacked source folder)."""
    source = tmp_path / "fsdd_source"
    files = fsdd_tree(source)
    served = tmp_path / "served" / "archive"
    served.mkdir(parents=True)
    tar_gz(source / FSDD_TOP, served / f"{fsdd.COMMIT}.tar.gz", FSDD_TOP)
    with LoopbackServer(tmp_path / "served") as server:
        yield server, fsdd.content_sha256(files), source


def fsdd_params(work: Path, server: LoopbackServer, **values: object) -> dict:
    return write_params(
        work,
        ["data=fsdd", "data.prepare.commands=['0','1']"],
        data__download__url=server.url(f"archive/{fsdd.COMMIT}.tar.gz"),
        data__download__cache_dir=str(work.parent / "cache"),
        **values,
    )


FSDD_EXPECTED = {
    "test": {f"{d}/{d}_{s}_{i}.wav" for d in "01" for s in ("jackson", "theo") for i in (0, 4)},
    "validation": {
        f"{d}/{d}_{s}_{i}.wav" for d in "01" for s in ("jackson", "theo") for i in (5, 9)
    },
}


def test_fsdd_download_lists_by_index_and_prepare_follows(
    work: Path, fsdd_served: tuple[LoopbackServer, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, content, source = fsdd_served
    fsdd_params(work, server, data__download__recordings_sha256=content)
    run("download")

    assert [r.path for r in server.requests] == [f"archive/{fsdd.COMMIT}.tar.gz"]
    assert sorted(p.name for p in (work.parent / "cache").iterdir()) == [
        f"fsdd-{fsdd.COMMIT}.tar.gz"
    ]
    raw = work / "data/raw"
    assert sc_lists(raw) == FSDD_EXPECTED
    assert files_under(raw) == {
        f"{p.name.split('_')[0]}/{p.name}" for p in (source / FSDD_TOP / "recordings").iterdir()
    } | {"validation_list.txt", "testing_list.txt"}
    out = capsys.readouterr().out
    assert "utils/example.wav: not named <digit>_<speaker>_<index>.wav" in out
    assert "20 recordings of 2 digits by 2 speakers; test 8 / validation 8 listed" in out
    assert "recordings verified; 1 other .wav files skipped" in out

    run("prepare")
    rows = manifest(work)
    assert labels(work) == ["0", "1"]
    got = {s: {r["path"] for r in rows if r["split"] == s} for s in SPLITS}
    assert got["test"] == FSDD_EXPECTED["test"]
    assert got["validation"] == FSDD_EXPECTED["validation"]
    assert got["train"] == {f"{d}/{d}_{s}_10.wav" for d in "01" for s in ("jackson", "theo")}
    assert Counter(r["speaker"] for r in rows) == {"jackson": 10, "theo": 10}
    assert all(r["label"] == r["path"][0] for r in rows)
    check_arrays(work, rows, 8000)


def test_fsdd_local_copy_makes_no_request(
    work: Path, fsdd_served: tuple[LoopbackServer, str, Path]
) -> None:
    server, content, source = fsdd_served
    relative = Path("..") / source.relative_to(work.parent)  # from the repository root
    fsdd_params(
        work,
        server,
        data__download__path=str(relative),
        data__download__recordings_sha256=content,
    )
    run("download")

    assert server.requests == []
    assert not (work.parent / "cache").exists()
    assert sc_lists(work / "data/raw") == FSDD_EXPECTED


def test_fsdd_modified_recordings_are_refused_and_old_raw_stays(
    work: Path, fsdd_served: tuple[LoopbackServer, str, Path]
) -> None:
    server, content, _ = fsdd_served
    old = work / "data/raw"
    (old / "yes").mkdir(parents=True)
    (old / "yes" / "keep_nohash_0.wav").write_bytes(b"the previous dataset")
    wrong = "f" * 64
    fsdd_params(work, server, data__download__recordings_sha256=wrong)

    with pytest.raises(ValueError) as info:
        run("download")
    message = str(info.value)
    assert f"content sha256 {content}, expected {wrong}" in message
    assert "set data.download.recordings_sha256: null to accept these" in message
    assert files_under(old) == {"yes/keep_nohash_0.wav"}
    assert (old / "yes" / "keep_nohash_0.wav").read_bytes() == b"the previous dataset"
    assert leftovers(work / "data") == []


# --- TIMIT -----------------------------------------------------------------------------------

# folder name (sex letter + SPKRINFO id) -> Use. With validation_percentage 10, MGHI0 and
# FJKL0 hash into validation; MZZZ0 is not in SPKRINFO.TXT.
TIMIT_SPEAKERS = {
    "MABC0": "TRN",
    "FDEF0": "TRN",
    "MGHI0": "TRN",
    "FJKL0": "TRN",
    "FPQR0": "TRN",
    "MTST0": "TST",
    "FTST1": "TST",
}
UTTERANCES = ("SA1", "SX10")
SPKRINFO_HEAD = """\
; SPKRINFO.TXT: speaker information for TIMIT
;
;  ID  Sex DR Use  RecDate   BirthDate  Ht     Race Edu  Comments
;
"""


def timit_tree(root: Path, lower: bool = False, bad_line: bool = False) -> Path:
    """A TIMIT copy: DOC/SPKRINFO.TXT, {TRAIN,TEST}/DR<n>/<speaker>/<utt>.WAV in SPHERE."""
    case = str.lower if lower else str
    rng = np.random.default_rng(5)
    rows = [
        f"{s[1:]}  {s[0]}  {i % 8 + 1}  {use}  03/03/86  06/17/60  5'11\"  WHT  BS"
        for i, (s, use) in enumerate(TIMIT_SPEAKERS.items())
    ]
    if bad_line:
        rows.insert(2, "XYZ0  Q  1  TRN  03/03/86")
    (root / case("DOC")).mkdir(parents=True)
    (root / case("DOC") / case("SPKRINFO.TXT")).write_text(SPKRINFO_HEAD + "\n".join(rows) + "\n")
    for i, (spk, use) in enumerate({**TIMIT_SPEAKERS, "MZZZ0": "TRN"}.items()):
        part = "TRAIN" if use == "TRN" else "TEST"
        folder = root / case(part) / case(f"DR{i % 8 + 1}") / case(spk)
        folder.mkdir(parents=True)
        for utt in UTTERANCES:
            wave = tone_clip(150.0 if spk[0] == "M" else 250.0, RATE, 0.6, rng)
            sf.write(folder / case(f"{utt}.WAV"), wave, RATE, format="NIST", subtype="PCM_16")
    # A broken utterance of a test speaker: reported, and left out of testing_list.txt.
    (root / case("TEST") / case("DR6") / case("MTST0") / case("SX99.WAV")).write_bytes(b"NIST?")
    return root


def timit_expected() -> dict[str, set[str]]:
    def rel(spk: str, utt: str) -> str:
        return f"{'female' if spk[0] == 'F' else 'male'}/{spk}_nohash_{utt}.wav"

    return {
        "test": {
            rel(s, u) for s, use in TIMIT_SPEAKERS.items() if use == "TST" for u in UTTERANCES
        },
        "validation": {rel(s, u) for s in ("MGHI0", "FJKL0") for u in UTTERANCES},
    }


def test_timit_gender_labels_lists_and_speaker_disjoint_prepare(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = timit_tree(tmp_path / "TIMIT")
    write_params(
        work, ["data=timit_gender", "data.prepare.clip_seconds=1.0"], data__download__path=str(root)
    )
    run("download")

    raw = work / "data/raw"
    expected = timit_expected()
    assert sc_lists(raw) == expected
    clips = files_under(raw) - {"validation_list.txt", "testing_list.txt"}
    assert clips == {
        f"{'female' if s[0] == 'F' else 'male'}/{s}_nohash_{u}.wav"
        for s in TIMIT_SPEAKERS
        for u in UTTERANCES
    }
    frames, rate = read_wav(raw / "male/MABC0_nohash_SA1.wav")
    assert rate == RATE and frames.shape == (int(0.6 * RATE), 1)
    assert sf.info(raw / "male/MABC0_nohash_SA1.wav").format == "WAV"  # converted from SPHERE
    out = capsys.readouterr().out
    assert (
        f"[download] skipped {root}/TRAIN/DR8/MZZZ0/SA1.WAV: speaker MZZZ0 is not in "
        "SPKRINFO.TXT" in out
    )
    assert f"[download] skipped {root}/TEST/DR6/MTST0/SX99.WAV: " in out
    assert "14 utterances of 7 speakers (4 F / 3 M listed); test 4 / validation 4 listed" in out

    run("prepare")
    rows = manifest(work)
    assert labels(work) == ["female", "male"]
    assert {r["path"] for r in rows} == clips
    splits_of = defaultdict(set)
    for r in rows:
        splits_of[r["speaker"]].add(r["split"])
        assert r["label"] == ("female" if r["speaker"][0] == "F" else "male")
        assert r["speaker"] == speaker_of(r["path"])
    assert {s: sorted(v) for s, v in splits_of.items()} == {
        "MABC0": ["train"],
        "FDEF0": ["train"],
        "FPQR0": ["train"],
        "MGHI0": ["validation"],
        "FJKL0": ["validation"],
        "MTST0": ["test"],
        "FTST1": ["test"],
    }
    check_arrays(work, rows, RATE)


def test_timit_lowercase_copy_gives_the_same_data(work: Path, tmp_path: Path) -> None:
    upper = timit_tree(tmp_path / "upper")
    lower = timit_tree(tmp_path / "lower", lower=True)
    raw = work / "data/raw"
    got = []
    for root in (upper, lower):
        write_params(work, ["data=timit_gender"], data__download__path=str(root))
        run("download")
        got.append({p: (raw / p).read_bytes() for p in files_under(raw)})
    assert got[0] == got[1]
    assert len(got[0]) == 2 * len(TIMIT_SPEAKERS) + 2


def test_timit_broken_spkrinfo_line_leaves_no_raw(work: Path, tmp_path: Path) -> None:
    root = timit_tree(tmp_path / "TIMIT", bad_line=True)
    write_params(work, ["data=timit_gender"], data__download__path=str(root))
    with pytest.raises(ValueError) as info:
        run("download")
    assert str(info.value) == (
        f"{root}/DOC/SPKRINFO.TXT:7: expected 'ID Sex(M/F) DR Use(TRN/TST) ...', "
        "got 'XYZ0  Q  1  TRN  03/03/86'"
    )
    assert not (work / "data/raw").exists()
    assert leftovers(work / "data") == []


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "pattern", "speaker"),
    [
        ("7_george_12.wav", r"^\d+_([A-Za-z]+)_", "george"),
        ("7/7_george_12.wav", r"^\d+_([A-Za-z]+)_", "george"),
        ("cat/alice-1.wav", SPEAKER, "alice"),
        ("cat/Alice-1.wav", SPEAKER, "Alice-1"),  # no match: the stem is its own speaker
        ("yes/3c4aa5ef_nohash_0.wav", r"^(.+?)_nohash_", "3c4aa5ef"),
        ("noext", SPEAKER, "noext"),
    ],
)
def test_speaker_of_custom_pattern(filename: str, pattern: str, speaker: str) -> None:
    assert speaker_of(filename, pattern) == speaker


def test_listed_set_prefers_test_and_defaults_to_train() -> None:
    validation, testing = {"a/1.wav", "b/2.wav"}, {"b/2.wav", "c/3.wav"}
    assert [listed_set(p, validation, testing) for p in ("a/1.wav", "b/2.wav", "c/3.wav")] == [
        "validation",
        "test",
        "test",
    ]
    assert listed_set("d/4.wav", validation, testing) == "train"
    assert listed_set("a/1.wav", set(), set()) == "train"


def test_read_list_strips_blank_lines_and_backslashes(tmp_path: Path) -> None:
    path = tmp_path / "testing_list.txt"
    path.write_bytes(b"yes/a_nohash_0.wav\r\n\nno\\b_nohash_1.wav\n  \n")
    assert read_list(path) == {"yes/a_nohash_0.wav", "no/b_nohash_1.wav"}


def test_class_names_with_silence_and_unknown_off() -> None:
    words = ("b", "a")
    assert class_names(words) == [SILENCE, UNKNOWN, "b", "a"]
    assert class_names(words, silence=False, unknown=False) == ["b", "a"]
    assert class_names(list(words), silence=True, unknown=False) == [SILENCE, "b", "a"]
    assert class_names(words, silence=False, unknown=True) == [UNKNOWN, "b", "a"]


def test_extra_count_rounds_up() -> None:
    assert [extra_count(n, 10.0) for n in (0, 1, 10, 29, 30, 31)] == [0, 1, 1, 3, 3, 4]
    assert extra_count(29, 0.0) == 0


@pytest.mark.parametrize(
    ("length", "windows"),
    [(0, 1), (3, 1), (10, 1), (14, 1), (15, 2), (20, 2), (35, 4), (34, 3), (25, 3)],
)
def test_chop_shapes_and_padding(length: int, windows: int) -> None:
    n = 10
    wave = np.arange(1, length + 1, dtype=np.float32)
    out = chop(wave, n)
    assert out.dtype == np.float32 and out.shape == (windows, n)
    kept = min(length, windows * n)
    np.testing.assert_array_equal(out.reshape(-1)[:kept], wave[:kept])
    assert not out.reshape(-1)[kept:].any()  # zero padding after the recording


def test_chop_odd_window_keeps_a_last_part_of_at_least_half() -> None:
    n = 3  # half a window is 1.5 samples: a 2-sample rest is kept, a 1-sample rest dropped
    assert chop(np.ones(4, np.float32), n).shape == (1, 3)
    assert chop(np.ones(5, np.float32), n).tolist() == [[1, 1, 1], [1, 1, 0]]


def test_write_list_sorts_relative_paths(tmp_path: Path) -> None:
    from audioclf.datasets import write_list

    assert write_list(tmp_path, "test", ["b/2.wav", "a/1.wav"]) == 2
    assert (tmp_path / "testing_list.txt").read_text() == "a/1.wav\nb/2.wav\n"
    assert write_list(tmp_path, "validation", []) == 0
    assert (tmp_path / "validation_list.txt").read_text() == ""


def test_unknown_dataset_name_lists_the_available_ones() -> None:
    from audioclf.datasets import module

    with pytest.raises(ConfigError, match=r"data\.name: unknown dataset 'timit'\. Available: "):
        module("timit")


def test_sc_archive_members_are_dot_prefixed(sc_archives: dict[str, Path]) -> None:
    # The fixture reproduces Google's archive, whose members start with "./".
    with tarfile.open(sc_archives["full"] / "speech_commands_v0.02.tar.gz") as tar:
        names = tar.getnames()
    assert "./_background_noise_/README.md" in names and "./testing_list.txt" in names
    assert all(n == "." or n.startswith("./") for n in names)
