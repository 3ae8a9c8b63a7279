"""Config layer: every option in conf/ composes and validates; dvc.yaml matches the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from audioclf import datasets
from audioclf.augment import AugmentConfig
from audioclf.config import ConfigError, parse, section
from audioclf.corruption import parse_corruptions
from audioclf.evaluation import EvaluateConfig
from audioclf.features import FEATURE_TYPES, parse_features
from audioclf.manifest import PrepareConfig
from audioclf.models import available, check_input, parse_model
from audioclf.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = ("data", "features", "augment", "model", "train", "evaluate")


def composed(overrides: list[str] | None = None) -> dict:
    """Compose conf/ exactly as DVC's Hydra integration does for `dvc exp run`."""
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def write_params(workdir: Path, overrides: list[str], **values: object) -> dict:
    """Write ``workdir``/params.yaml: conf/ composed with ``overrides``, then ``values`` set by
    dotted key written with ``__`` (URLs, hashes and paths go in as exact strings, never
    re-parsed by Hydra's override grammar)."""
    params = composed(overrides)
    for key, value in values.items():
        node = params
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def validate(params: dict) -> None:
    """Build every stage's schema, as the stages do before any work."""
    dataset = datasets.module(section(params, "data.name"))
    parse(dataset.Config, section(params, "data.download"), "data.download")
    parse(PrepareConfig, section(params, "data.prepare"), "data.prepare")
    parse_features(section(params, "features"))
    parse(AugmentConfig, section(params, "augment"), "augment")
    check_input(parse_model(section(params, "model")), section(params, "features.type"), CONF)
    parse(TrainConfig, section(params, "train"), "train")
    parse(EvaluateConfig, section(params, "evaluate"), "evaluate")
    parse_corruptions(section(params, "evaluate.corruptions"))


def options() -> list[str]:
    return [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("override", options())
def test_every_option_composes_and_validates(override: str) -> None:
    overrides = [override]
    # The default model takes a spectrogram; other features get a model written for them.
    fitting = {"wave": "model=wave_cnn1d", "embedding": "model=mlp"}
    if override.startswith("features="):
        kind = FEATURE_TYPES[composed(overrides)["features"]["type"]].input_kind
        overrides += [fitting[kind]] if kind in fitting else []
    validate(composed(overrides))


@pytest.mark.parametrize(
    ("model", "features"),
    [
        ("wave_cnn1d", "wave8k"),
        ("light_cnn", "logspec8k"),
        ("spec_cnn2d", "logmel"),
        ("mlp", "choi2017"),
    ],
)
def test_choosing_a_model_chooses_its_features(model: str, features: str) -> None:
    params = composed([f"model={model}"])
    assert params["features"] == composed([f"features={features}"])["features"]
    assert params["model"]["name"] == model


def test_an_explicit_features_choice_wins_over_the_models() -> None:
    assert composed(["model=crnn", "features=mfcc"])["features"]["type"] == "mfcc"
    assert composed(["features=mfcc", "model=crnn"])["features"]["type"] == "mfcc"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=wave_cnn1d", "features=logmel"],
            r"features.type: model 'wave_cnn1d' takes a raw waveform but features.type is "
            r"'logmel'. Pick `-S features=wave8k`",
        ),
        (
            ["model=spec_cnn2d", "features=wave8k"],
            r"model 'spec_cnn2d' takes a spectrogram but features.type is 'wave'. Pick "
            r"`-S features=logmel` or `-S features=logspec` or `-S features=logspec8k`",
        ),
    ],
)
def test_a_model_given_the_wrong_input_says_which_features_to_pick(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(composed(overrides))


def test_committed_params_yaml_is_the_default_composition() -> None:
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == composed(), (
        "params.yaml is stale: recompose it from conf/ (`dvc exp run`, or see README)"
    )


def test_every_model_module_has_a_yaml() -> None:
    names = {
        yaml.safe_load(p.read_text())["model"]["name"] for p in (CONF / "model").glob("*.yaml")
    }
    assert names == set(available())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.name=resnet9000",
            r"model.name: unknown model 'resnet9000'. Available models: bc_resnet, crnn",
        ),
        (
            "+model.depth=3",
            r"model.depth: unknown hyperparameter for model 'spec_cnn2d'. Allowed: filters",
        ),
        (
            "features.type=mel",
            r"features.type: unknown feature type 'mel'. Allowed: wave, stft, logspec",
        ),
        (
            "train.optimizer=adagrad",
            r"train.optimizer: unknown value 'adagrad'. Allowed: adam, adamw",
        ),
        (
            "+train.epoch=3",
            r"train.epoch: unknown option. Allowed options: allow_incomplete_validation, batch_",
        ),
        ("data.prepare.testing_percentage=95", r"data.prepare.testing_percentage: validation_perc"),
        ("augment.chain=[shift,warp]", r"augment.chain: unknown transform 'warp'. Known: time"),
        (
            "+augment.transforms.gain.max_db=3",
            r"augment.transforms.gain.max_db: not an argument of audiomentations.Gain. "
            r"Allowed: min_gain_db, max_gain_db, p",
        ),
        ("augment.transforms.gain.p=1.5", r"augment.transforms.gain.p: must be in \[0, 1\]"),
        ("augment.copies=0", r"augment.copies: is 0, so the chain \['shift', 'gain'"),
        ("augment.spec_augment.time_masks=-1", r"augment.spec_augment.time_masks: must be >= 0"),
        (
            "+evaluate.corruptions.noise.snr10.snr=10",
            r"evaluate.corruptions.noise.snr10.snr: unknown argument. Allowed: snr_db",
        ),
        (
            "+evaluate.corruptions.blur={mild:{}}",
            r"evaluate.corruptions.blur: unknown corruption. Known: noise, speed",
        ),
        (
            "evaluate.corruptions.speed.slow.factor=slow",
            r"evaluate.corruptions.speed.slow.factor: expected a number",
        ),
    ],
)
def test_bad_values_fail_naming_key_and_allowed_values(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(composed([override]))


# --- dvc.yaml never drifts from the code --------------------------------------------------

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def package_imports(path: Path, seen: set[Path] | None = None) -> set[Path]:
    """Files of the audioclf package that ``path`` imports, transitively."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if not name.startswith("audioclf."):
                continue
            base = ROOT / "src" / Path(*name.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file() and candidate not in seen:
                    seen.add(candidate)
                    package_imports(candidate, seen)
    return {p for p in seen if p.read_text().strip()}  # empty __init__ files carry no code


def sections_read(path: Path) -> set[str]:
    """Params keys a stage reads: ``section(params, "key")`` literals; ``flatten(...)`` means
    the sections of the module's ``*_SECTIONS`` tuple, else every top-level section."""
    keys = set()
    tree = ast.parse(path.read_text())
    logged = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id.endswith("_SECTIONS"):
            logged = {e.value for e in node.value.elts}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "section" and isinstance(node.args[1], ast.Constant):
                keys.add(node.args[1].value)
            if node.func.id == "flatten":
                keys |= logged
            if node.func.id == "parse_features":
                keys.add("features")
    return keys


@pytest.mark.parametrize("stage", list(DVC))
def test_dvc_yaml_lists_exactly_the_code_each_stage_imports(stage: str) -> None:
    module = ROOT / "stages" / f"{stage}.py"
    assert DVC[stage]["cmd"] == f"python -m stages.{stage}"
    declared = {d for d in DVC[stage]["deps"] if d.startswith(("src/", "stages/"))}
    expected = {p.relative_to(ROOT).as_posix() for p in package_imports(module)}
    expected.add(f"stages/{stage}.py")
    if "src/audioclf/datasets/__init__.py" in expected:
        # The dataset module is chosen by params (templated as ${data.name}); what any of
        # them imports is listed.
        expected.add("src/audioclf/datasets/${data.name}.py")
        for name in datasets.available():
            path = ROOT / "src/audioclf/datasets" / f"{name}.py"
            expected |= {p.relative_to(ROOT).as_posix() for p in package_imports(path)}
    if "src/audioclf/models/__init__.py" in expected:
        # The model module is chosen by params: templated as ${model.name}; each model's own
        # imports must already be listed.
        expected.add("src/audioclf/models/${model.name}.py")
        for name in available():
            path = ROOT / "src/audioclf/models" / f"{name}.py"
            assert {p.relative_to(ROOT).as_posix() for p in package_imports(path)} <= expected
    assert declared == expected


@pytest.mark.parametrize("stage", list(DVC))
def test_dvc_yaml_lists_exactly_the_params_each_stage_reads(stage: str) -> None:
    declared = set(DVC[stage].get("params", []))
    read = sections_read(ROOT / "stages" / f"{stage}.py")
    # A key is covered by itself or by its section: "data" covers "data.prepare".
    covered = {k for k in read if not any(k.startswith(f"{d}.") for d in read - {k})}
    assert declared == covered


# The trigger-word task's pipeline (trigger/dvc.yaml, every stage run from the root): the
# same checks. Its stages read the root params.yaml's `trigger:` section.
TRIGGER_DVC = yaml.safe_load((ROOT / "trigger" / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", list(TRIGGER_DVC))
def test_trigger_dvc_yaml_lists_exactly_the_code_each_stage_imports(stage: str) -> None:
    module = ROOT / "stages" / f"{stage}.py"
    assert TRIGGER_DVC[stage]["cmd"] == f"python -m stages.{stage}"
    assert TRIGGER_DVC[stage]["wdir"] == ".."  # paths below are from the repository root
    declared = {d for d in TRIGGER_DVC[stage]["deps"] if d.startswith(("src/", "stages/"))}
    expected = {p.relative_to(ROOT).as_posix() for p in package_imports(module)}
    expected.add(f"stages/{stage}.py")
    assert declared == expected


@pytest.mark.parametrize("stage", list(TRIGGER_DVC))
def test_trigger_dvc_yaml_lists_exactly_the_params_each_stage_reads(stage: str) -> None:
    declared = set(TRIGGER_DVC[stage].get("params", []))
    read = sections_read(ROOT / "stages" / f"{stage}.py")
    covered = {k for k in read if not any(k.startswith(f"{d}.") for d in read - {k})}
    assert declared == covered


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "trigger/data").glob("*.yaml")))
def test_every_trigger_data_option_composes_and_validates(option: str) -> None:
    from audioclf.trigger.recordings import FolderConfig
    from audioclf.trigger.synthesis import SynthesisConfig

    overrides = [f"trigger/data={option}"]
    if option == "folder":
        overrides.append("trigger.data.path=some/folder")  # required: no default folder
    data = composed(overrides)["trigger"]["data"]
    schema = {"synthetic": SynthesisConfig, "folder": FolderConfig}[data["name"]]
    assert data["name"] == option
    parse(schema, data, "trigger.data")


def test_an_unknown_model_option_is_refused_listing_the_models() -> None:
    """`dvc exp run -S model=resnet` fails in composition, before any stage runs."""
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as err:
        composed(["model=resnet"])
    message = str(err.value)
    assert "Could not find 'model/resnet'" in message
    assert all(name in message for name in available())


def out_paths(stage: dict) -> list[str]:
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_no_stage_depends_on_a_file_inside_another_stages_folder_output() -> None:
    """A dependency (or a top-level plot) inside a folder output is resolved through that
    folder's listing (.dir) in the cache. A fresh clone lacks it whenever dvc.lock names results
    that were never pushed (another dataset's, say), and DVC 3 then fails experiments whose
    stages are restored from the run cache ("failed to load directory ('data', 'prepared')").
    So stages whose outputs are read file by file declare each file as an output."""
    outs = {path: name for name, stage in DVC.items() for path in out_paths(stage)}
    # The top-level plots too: `dvc exp run` resolves them after every run (a stage target
    # in a fresh clone failed on data/model/history.csv inside train's folder output).
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text()).get("plots", [])
    reads = [(name, dep) for name, stage in DVC.items() for dep in stage.get("deps", [])]
    reads += [("plots", p if isinstance(p, str) else next(iter(p))) for p in plots]
    for name, dep in reads:
        inside = [o for o in outs if dep.startswith(f"{o}/")]
        assert not inside, f"{name} reads {dep}, inside {outs[inside[0]]}'s output {inside[0]}"


@pytest.mark.parametrize(
    ("preset", "same_as"),
    [
        ("kaggle_light_cnn", ["data=speech_commands", "model=light_cnn", "augment=none"]),
        ("wave_cnn1d", ["data=speech_commands", "model=wave_cnn1d", "augment=none"]),
        (
            "gender",
            [
                "data=folder",
                "features=logspec",
                "data.prepare.clip_seconds=2.0",
                "data.prepare.commands=[female,male]",
                "features.window_ms=64.0",
                "features.hop_ms=16.0",
            ],
        ),
    ],
)
def test_a_preset_states_only_what_differs_and_validates(preset: str, same_as: list) -> None:
    """`-S experiment=<preset>` (conf/experiment/) composes to the same params as the group
    choices and keys it names, and those validate; it adds no key of its own."""
    params = composed([f"experiment={preset}"])
    assert params == composed(same_as)
    assert "experiment" not in params
    validate(params)


def test_every_preset_is_tested() -> None:
    presets = {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    tested = test_a_preset_states_only_what_differs_and_validates.pytestmark[0].args[1]
    assert presets == {preset for preset, _ in tested}
