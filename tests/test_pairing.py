"""Every model against every dataset (issue 19, item 1): a pair that does not fit is refused
before anything is built, in one dlrun line that names what fits instead."""
from __future__ import annotations

import pytest

from dlrun.runner.pairing import DATASETS, MODELS, group_targets, mismatch

IMAGES = {"lenet", "mlp", "inception", "zoo", "gan_mlp", "dcgan", "softmax_regression", "fizzbuzz"}
# dataset option -> the model options that read it (the truth the tables must give)
FITS = {
    "digits": IMAGES, "mnist": IMAGES, "fashion_mnist": IMAGES, "cifar10": IMAGES,
    "fizzbuzz": {"mlp", "softmax_regression", "fizzbuzz"},
    "separable": {"perceptron", "logistic_regression"},
    "linear_synthetic": {"linear_regression"},
    "pydoc": {"lstm_lm"}, "ptb": {"lstm_lm"}, "text": {"lstm_lm"},
    "listops": {"treelstm"}, "sst": {"treelstm"},
}


def node(group: str, option: str, **extra: str) -> dict:
    return {"_target_": group_targets(group)[option], **extra}


def test_every_option_of_dlrun_is_in_the_tables():
    assert set(group_targets("dataset")) == set(FITS)
    assert set(group_targets("dataset").values()) <= set(DATASETS)
    assert set(group_targets("model").values()) <= set(MODELS)


@pytest.mark.parametrize("dataset", sorted(FITS))
def test_every_model_against_the_dataset_fits_or_says_why_in_one_line(dataset):
    for model in group_targets("model"):
        choices = {"model": model, "dataset": dataset}
        said = mismatch(node("model", model, name="resnet18_v1"), node("dataset", dataset), choices)
        if model in FITS[dataset]:
            assert said is None, said
            continue
        assert said is not None and "\n" not in said, (model, dataset)
        assert said.startswith(f"model={model} does not fit dataset={dataset}: ")
        fitting = sorted(d for d, models in FITS.items() if model in models)
        assert f"datasets that fit model={model}: {', '.join(fitting)};" in said
        assert said.endswith(f"models that fit dataset={dataset}: {', '.join(sorted(FITS[dataset]))}")


def test_a_zoo_model_needs_its_image_size():
    digits, cifar = node("dataset", "digits"), node("dataset", "cifar10")
    said = mismatch(node("model", "zoo", name="inceptionv3"), digits, {"model": "zoo"})
    assert "model=zoo model.name=inceptionv3" in said and "299x299" in said and "28x28" in said
    assert mismatch(node("model", "zoo", name="vgg11"), cifar) is None
    assert "datasets that fit model=zoo model.name=vgg11: cifar10;" in mismatch(
        node("model", "zoo", name="vgg11"), digits, {"model": "zoo"})
    assert mismatch(node("model", "zoo", name="resnet18_v1"), digits) is None


def test_classes_of_ones_own_are_left_to_their_own_checks():
    mine = {"_target_": "mypkg.models.Net"}
    assert mismatch(mine, node("dataset", "pydoc")) is None
    assert mismatch(node("model", "lenet"), {"_target_": "mypkg.data.corpus"}) is None


def test_the_command_refuses_a_pair_before_reading_data(run_dlrun):
    done = run_dlrun("model=lenet", "dataset=pydoc", "logger=none")
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.output, done
    assert "model=lenet does not fit dataset=pydoc" in errors[0]
    assert not list((done.cwd / "outputs" / "runs").glob("*/*/config.yaml"))  # nothing started


def test_a_grid_of_models_and_datasets_trains_or_says_why(run_dlrun):
    import json

    models, datasets = ["lenet", "mlp", "lstm_lm", "perceptron", "linear_regression"], \
        ["digits", "pydoc", "separable", "linear_synthetic"]
    done = run_dlrun("-m", f"model={','.join(models)}", f"dataset={','.join(datasets)}",
                     "trainer.fast_dev_run=true", "logger=none", timeout=600)
    assert "Traceback" not in done.output, done
    trials = [json.loads(p.read_text()) for p in
              (done.cwd / "outputs" / "multirun").glob("*/*/*/trial.json")]
    assert len(trials) == len(models) * len(datasets), done
    for trial in trials:
        pair = dict(o.split("=", 1) for o in trial["overrides"] if o.startswith(("model=", "dataset=")))
        fits = pair["model"] in FITS[pair["dataset"]]
        assert trial["status"] == ("FINISHED" if fits else "FAILED"), trial
        assert fits or trial["error"].startswith(f"model={pair['model']} does not fit"), trial
