"""A network trained by this pipeline as a frozen backbone (``features=trained``).

``features.model`` names an exported model (``audioclf.export``: ``inference.keras`` with
``inference.json`` beside it): a path to that file or to its folder, relative to the
repository root, or an MLflow run (``runs:/<run id>``, whose ``model/`` artifact folder the
evaluate stage logged, or ``runs:/<run id>/<artifact path>``). ``features.layer`` picks the
layer whose output is the embedding: a name, or an index into ``layer_names`` (every layer of
the network, nested models flattened, in order; -2 = the one before the output). An output
with more than one value per clip and channel ((clips, frames, bins, channels) of a conv
layer) is averaged over all but the last axis, as Choi et al. average their ELU outputs.

The embedding network takes the raw wave, as the exported model does: its own feature layer
(e.g. log-mel) is inside. Keras is imported by the functions that need it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from audioclf.config import ConfigError, repo_root

RUN_URI = re.compile(r"runs:/([0-9a-f]{32})(/.+)?")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(model: str, key: str = "features.model") -> Path:
    """The folder holding the backbone's ``inference.keras`` and ``inference.json``."""
    match = RUN_URI.fullmatch(model)
    if match:
        import mlflow

        from audioclf.config import tracking_uri

        uri = model if match.group(2) else f"{model}/model"
        try:
            path = Path(mlflow.artifacts.download_artifacts(uri, tracking_uri=tracking_uri()))
        except Exception as err:  # noqa: BLE001  (MlflowException, OSError: both mean "not there")
            raise ConfigError(
                f"{key}: {model!r}: no such MLflow run artifact in {tracking_uri()} ({err}). "
                "Copy a run id from the MLflow UI or reports/comparison.csv"
            ) from None
    elif model.startswith("runs:/"):
        raise ConfigError(f"{key}: {model!r}: an MLflow run is runs:/<32-hex run id>[/path]")
    else:
        path = Path(model).expanduser()
        path = path if path.is_absolute() else repo_root() / path
    folder = path.parent if path.suffix == ".keras" else path
    for name in ("inference.keras", "inference.json"):
        if not (folder / name).is_file():
            raise ConfigError(
                f"{key}: {model!r}: {folder / name} does not exist. Name a model trained by "
                "this pipeline: its data/model/ folder (or a copy), or runs:/<run id>"
            )
    return folder


def layer_names(model) -> list[str]:
    """Every layer of ``model`` in order, nested models flattened, input layers left out."""
    import keras

    names = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names += layer_names(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            names.append(layer.name)
    return names


def truncated(model, name: str):  # -> keras.Model: model's input -> layer ``name``'s output
    """``model`` cut after the layer ``name``, which may sit inside a nested model; it shares
    the layers (and weights) of ``model``."""
    import keras

    for layer in model.layers:
        if layer.name == name and not isinstance(layer, keras.Model):
            return keras.Model(model.inputs, layer.output)
    for layer in model.layers:
        if isinstance(layer, keras.Model) and name in layer_names(layer):
            inner = truncated(layer, name)
            # The tensor this nested model is called on in ``model``'s graph (its first call:
            # an exported model calls each nested model once).
            node = layer._inbound_nodes[0]
            return keras.Model(model.inputs, inner(node.input_tensors[0]))
    raise KeyError(name)


@functools.cache
def load(model: str, layer: str | int) -> tuple[Any, dict]:
    """(the embedding network: (clips, samples) -> (clips, ...) with the trained weights,
    the backbone's inference.json + its file's sha256 and the chosen layer's name)."""
    from audioclf import export

    folder = resolve(model)
    exported = export.load(folder)
    names = layer_names(exported.model)
    if isinstance(layer, int):
        if not -len(names) <= layer < len(names):
            raise ConfigError(
                f"features.layer: {layer} is out of range: {folder / export.MODEL_FILE} has "
                f"{len(names)} layers: {', '.join(names)}"
            )
        layer = names[layer]
    if layer not in names:
        raise ConfigError(
            f"features.layer: {folder / export.MODEL_FILE} has no layer {layer!r}. "
            f"Its layers: {', '.join(names)} (or give an index, -2 = before the output)"
        )
    network = truncated(exported.model, layer)
    network.trainable = False
    meta = json.loads((folder / export.META_FILE).read_text())
    meta |= {"sha256": sha256(folder / export.MODEL_FILE), "layer": layer, "folder": str(folder)}
    return network, meta
