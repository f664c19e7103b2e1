"""Which models fit which datasets, checked before anything is built.

A model reads one kind of data (images, feature vectors, a text corpus, parse trees...) and
each dataset gives one; ``model=lenet dataset=pydoc`` would otherwise end in Python's words
(``'LeNet' object has no attribute 'begin_state'``) after the data was read. The tables
below know dlrun's own models and datasets by their ``_target_``; a class of the user's own
(``allowed_targets``) is not in them and is left to its own checks.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

# what a kind of data is, in a user's words
KINDS = {
    "images": "images with class labels",
    "vectors": "feature vectors with class labels",
    "binary": "feature vectors with two classes labelled -1/+1",
    "regression": "feature vectors with real-valued targets",
    "text": "a text corpus (language modelling)",
    "trees": "parse trees with labelled nodes (tree sentiment)",
}

# dataset builder -> (the kind of data it gives, the side of its images)
DATASETS: dict[str, tuple[str, int | None]] = {
    "dlrun.data.vision.digits": ("images", 28),
    "dlrun.data.vision.mnist": ("images", 28),
    "dlrun.data.vision.fashion_mnist": ("images", 28),
    "dlrun.data.cifar.cifar10": ("images", 32),
    "dlrun.data.synthetic.fizzbuzz": ("vectors", None),
    "dlrun.data.synthetic.separable": ("binary", None),
    "dlrun.data.synthetic.linear_synthetic": ("regression", None),
    "dlrun.data.text.pydoc_corpus": ("text", None),
    "dlrun.data.text.ptb": ("text", None),
    "dlrun.data.text.text": ("text", None),
    "dlrun.data.listops.listops": ("trees", None),
    "dlrun.data.trees.sst": ("trees", None),
}

# model class -> the kinds of data it reads
MODELS: dict[str, tuple[str, ...]] = {
    "dlrun.models.lenet.LeNet": ("images",),
    "dlrun.models.inception.Inception": ("images",),
    "dlrun.models.zoo.get_model": ("images",),
    "dlrun.models.gan.GANMLP": ("images",),
    "dlrun.models.gan.DCGAN": ("images",),
    "dlrun.models.mlp.MLP": ("images", "vectors"),
    "dlrun.models.classic.SoftmaxRegression": ("images", "vectors"),
    "dlrun.models.classic.FizzBuzz": ("images", "vectors"),
    "dlrun.models.classic.Perceptron": ("binary",),
    "dlrun.models.classic.LogisticRegression": ("binary",),
    "dlrun.models.classic.LinearRegression": ("regression",),
    "dlrun.models.lstm_lm.LSTMLM": ("text",),
    "dlrun.models.treelstm.TreeLSTM": ("trees",),
}

# zoo models (by name prefix) and the least side of the images they take
ZOO_MIN_SIDE = {"alexnet": 63, "vgg": 32, "densenet": 32, "inceptionv3": 299}


def zoo_min_side(name: str) -> int:
    """The least image side the zoo model ``name`` takes (1: any dlrun dataset's)."""
    return next((side for prefix, side in ZOO_MIN_SIDE.items() if name.startswith(prefix)), 1)


@lru_cache(maxsize=None)
def group_targets(group: str) -> dict[str, str]:
    """{option: its _target_} of the config group ``group`` in dlrun's own conf folder."""
    folder = Path(__file__).resolve().parent.parent / "conf" / group
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        target = (yaml.safe_load(path.read_text()) or {}).get("_target_")
        if target:
            found[path.stem] = str(target)
    return found


def _fits(model_target: str, model: Mapping[str, Any], dataset_target: str) -> bool:
    kind, side = DATASETS[dataset_target]
    if kind not in MODELS[model_target]:
        return False
    if model_target == "dlrun.models.zoo.get_model" and side is not None:
        return side >= zoo_min_side(str(model.get("name") or ""))
    return True


def _needs(model_target: str, model: Mapping[str, Any]) -> str:
    kinds = " or ".join(KINDS[k] for k in MODELS[model_target])
    if model_target == "dlrun.models.zoo.get_model":
        side = zoo_min_side(str(model.get("name") or ""))
        if side > 1:
            return f"{kinds} of at least {side}x{side} pixels"
    return kinds


def _gives(dataset_target: str) -> str:
    kind, side = DATASETS[dataset_target]
    return KINDS[kind] + (f" of {side}x{side} pixels" if side else "")


def mismatch(model: Mapping[str, Any], dataset: Mapping[str, Any],
             choices: Mapping[str, str] | None = None) -> str | None:
    """What to say when the ``model`` node cannot read what the ``dataset`` node gives
    (one line: what each needs and gives, the datasets that fit the model and the models
    that fit the dataset); None when they fit, or when either is not dlrun's own."""
    model_target, dataset_target = str(model.get("_target_")), str(dataset.get("_target_"))
    if model_target not in MODELS or dataset_target not in DATASETS:
        return None
    if _fits(model_target, model, dataset_target):
        return None
    choices = choices or {}
    model_name = choices.get("model") or model_target.rsplit(".", 1)[-1]
    if model_target == "dlrun.models.zoo.get_model" and zoo_min_side(str(model.get("name"))) > 1:
        model_name += f" model.name={model.get('name')}"  # its image size is the reason
    dataset_name = choices.get("dataset") or dataset_target.rsplit(".", 1)[-1]
    datasets = [name for name, target in group_targets("dataset").items()
                if target in DATASETS and _fits(model_target, model, target)]
    models = [name for name, target in group_targets("model").items()
              if target in MODELS and _fits(target, {"name": "resnet18_v1"}, dataset_target)]
    advice = (f"datasets that fit model={model_name}: {', '.join(datasets)}" if datasets else
              f"no dataset of dlrun's fits model={model_name}")
    return (f"model={model_name} does not fit dataset={dataset_name}: the model reads "
            f"{_needs(model_target, model)}, the dataset gives {_gives(dataset_target)}; "
            f"{advice}; models that fit dataset={dataset_name}: {', '.join(models) or 'none'}")
