"""The seed's classic models (perceptron, linear/logistic/softmax regression, FizzBuzz), their
synthetic datasets, the regression and perceptron tasks, and the recipes that run them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from dlrun import loss as losses
from dlrun.data import ArrayDataset, DataLoader
from dlrun.data.synthetic import (fizzbuzz, fizzbuzz_features, fizzbuzz_label, fizzbuzz_text,
                                  linear_synthetic, separable)
from dlrun.engine import array, autograd
from dlrun.models.classic import (FizzBuzz, LinearRegression, LogisticRegression, Perceptron,
                                  SoftmaxRegression, perceptron_epoch)
from dlrun.optim import SGD, Trainer
from dlrun.runner.config import register_configs
from dlrun.runner.tasks.regression import weight_error

ROOT = Path(__file__).resolve().parents[1]
RECIPE_DIR = ROOT / "dlrun" / "conf" / "recipe"
CLASSIC_RECIPES = ["fizzbuzz", "linear_regression", "perceptron", "softmax_regression"]

# five points and what the seed's rule does with them, worked out by hand:
#   w = (0, 0), b = 0
#   (1, 2), +1:  y f = 0 <= 0   -> mistake: w = (1, 2),   b = 1
#   (2, -1), -1: f = 2 - 2 + 1 = 1, y f = -1 -> mistake: w = (-1, 3), b = 0
#   (-1, 1), +1: f = 1 + 3 = 4 > 0   -> nothing
#   (0, -1), -1: f = -3, y f = 3 > 0 -> nothing
#   (3, 1), +1:  f = -3 + 3 = 0 <= 0 -> mistake: w = (2, 4),   b = 1
HAND_X = np.array([[1, 2], [2, -1], [-1, 1], [0, -1], [3, 1]], dtype=np.float32)
HAND_Y = np.array([1, -1, 1, -1, 1], dtype=np.float32)


def composed(*overrides: str):
    register_configs()
    with initialize_config_module(config_module="dlrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# --- the perceptron rule ----------------------------------------------------------------------
def test_perceptron_rule_matches_the_seed_on_points_worked_by_hand():
    w, b, mistakes, loss = perceptron_epoch(np.zeros(2), 0.0, HAND_X, HAND_Y)
    assert w.tolist() == [2.0, 4.0] and b == 1.0
    assert mistakes == 3
    assert loss == 1.0  # max(0, -y f) before each update: 0 + 1 + 0 + 0 + 0


def test_perceptron_rule_follows_the_given_order_and_leaves_correct_points_alone():
    # reversed: (3,1)+ mistake w=(3,1) b=1; (0,-1)- f=0 mistake w=(3,2) b=0;
    # (-1,1)+ f=-1 mistake w=(2,3) b=1; (2,-1)- f=2 mistake w=(0,4) b=0; (1,2)+ f=8 fine
    w, b, mistakes, _ = perceptron_epoch(np.zeros(2), 0.0, HAND_X, HAND_Y, order=[4, 3, 2, 1, 0])
    assert w.tolist() == [0.0, 4.0] and b == 0.0 and mistakes == 4
    # a separator that classifies every point: nothing changes
    w, b, mistakes, loss = perceptron_epoch(np.array([2.0, 4.0]), 1.0, HAND_X[[0, 2, 3]],
                                            HAND_Y[[0, 2, 3]])
    assert w.tolist() == [2.0, 4.0] and b == 1.0 and mistakes == 0 and loss == 0.0


def test_perceptron_rule_needs_signed_labels():
    with pytest.raises(ValueError, match="-1 and \\+1"):
        perceptron_epoch(np.zeros(2), 0.0, HAND_X, np.array([0, 1, 0, 1, 1]))


def test_perceptron_model_starts_at_zero_and_applies_the_rule_to_its_parameters():
    from dlrun.nn.init import Xavier

    net = Perceptron()
    net.initialize(Xavier())  # the run's initializer does not move the rule's start
    x = array(HAND_X)
    assert np.all(net(x).asnumpy() == 0)
    assert net.task == "perceptron"
    mistakes, loss = net.fit_epoch(HAND_X, HAND_Y)
    assert (mistakes, loss) == (3, 1.0)
    assert net.linear.weight.data().asnumpy().tolist() == [[2.0, 4.0]]
    assert net.linear.bias.data().asnumpy().tolist() == [1.0]
    scores = net(x).asnumpy().reshape(-1)
    np.testing.assert_allclose(scores, HAND_X @ np.array([2.0, 4.0]) + 1.0)


def test_perceptron_reaches_zero_mistakes_on_separable_data():
    data = separable(num_examples=300, features=3, margin=0.1, seed=1, val_fraction=0)
    net = Perceptron()
    net.initialize()
    x, y = data.train.data, data.train.label
    history = [net.fit_epoch(x, y)[0] for _ in range(50)]
    assert history[0] > 0 and 0 in history
    last = history.index(0)
    assert all(m > 0 for m in history[:last])
    scores = net(array(data.test.data)).asnumpy().reshape(-1)
    assert np.all(scores * data.test.label > 0)


# --- every model learns on tiny data ----------------------------------------------------------
def _train(net, loss_fn, x, y, steps=30, lr=0.1, batch=16, momentum=0.9):
    net.initialize()
    trainer = Trainer(net.collect_params(), SGD(lr=lr, momentum=momentum))
    loader = DataLoader(ArrayDataset(x, y), batch, shuffle=True, seed=0)

    def full_loss():
        return float(loss_fn(net(array(x)), array(y)).mean().asscalar())

    net(array(x[:1]))
    before = full_loss()
    done = 0
    while done < steps:
        for xb, yb in loader:
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(xb.shape[0])
            done += 1
            if done == steps:
                break
    return before, full_loss()


def _blobs(n=96, classes=3, features=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, features)) * 3
    label = rng.integers(0, classes, n)
    x = (centres[label] + rng.standard_normal((n, features))).astype(np.float32)
    return x, label.astype(np.int32)


def test_linear_regression_loss_falls_and_coefficients_approach_the_truth():
    data = linear_synthetic(num_examples=200, seed=3)
    net = LinearRegression()
    before, after = _train(net, losses.L2Loss(), data.train.data, data.train.label, steps=60,
                           lr=0.1, momentum=0.0)
    assert after < before / 100
    assert weight_error(net, data) < 0.1


@pytest.mark.parametrize("loss_name, to_binary", [("logistic", False), ("sigmoid_bce", True)])
def test_logistic_regression_loss_falls(loss_name, to_binary):
    data = separable(num_examples=200, features=4, seed=2)
    y = data.train.label
    loss_fn = losses.LogisticLoss() if loss_name == "logistic" else losses.SigmoidBCELoss()
    net = LogisticRegression()
    before, after = _train(net, loss_fn, data.train.data, (y + 1) / 2 if to_binary else y)
    assert after < 0.6 * before
    assert before == pytest.approx(np.log(2), abs=0.3)  # near log 2 at a small random start
    scores = net(array(data.test.data)).asnumpy().reshape(-1)
    assert np.mean(scores * data.test.label > 0) >= 0.9


def test_softmax_regression_loss_falls():
    x, y = _blobs()
    net = SoftmaxRegression(classes=3)
    before, after = _train(net, losses.SoftmaxCELoss(), x, y, lr=0.05)
    assert after < 0.3 * before
    assert net(array(x)).shape == (len(x), 3)


def test_fizzbuzz_model_loss_falls():
    data = fizzbuzz(train_max=400, val_fraction=0)
    net = FizzBuzz(hidden=[32])
    before, after = _train(net, losses.SoftmaxCELoss(), data.train.data, data.train.label,
                           steps=60, lr=0.05, batch=32)
    assert after < 0.5 * before
    assert net(array(data.test.data)).shape == (100, 4)


# --- the data ---------------------------------------------------------------------------------
def test_linear_synthetic_has_the_tutorial_truth_and_is_deterministic():
    a, b = linear_synthetic(seed=5), linear_synthetic(seed=5)
    assert a.true_weight.tolist() == [[2.0, -3.4]] and a.true_bias.tolist() == [4.2]
    assert (len(a.train), len(a.val), len(a.test)) == (640, 160, 200)  # val: 0.2 of training
    assert a.train.data.dtype == np.float32 and a.train.data.shape == (640, 2)
    np.testing.assert_array_equal(a.train.data, b.train.data)
    assert not np.array_equal(a.train.data, linear_synthetic(seed=6).train.data)
    assert a.task == "regression" and a.model_args == {"outputs": 1}
    # the labels are the linear function plus noise of std 0.01
    x, y = a.train.data.astype(np.float64), a.train.label
    residual = y - (x @ np.array([2.0, -3.4]) + 4.2)
    assert 0.005 < residual.std() < 0.015
    noiseless = linear_synthetic(noise=0.0, true_w=[1.0, 2.0, 3.0], true_b=-1.0)
    x = noiseless.test.data.astype(np.float64)
    np.testing.assert_allclose(noiseless.test.label, x @ [1.0, 2.0, 3.0] - 1.0, atol=1e-5)


def test_separable_data_is_separated_with_its_margin():
    data = separable(num_examples=300, features=4, margin=0.2, seed=7)
    x = np.concatenate([data.train.data, data.val.data, data.test.data]).astype(np.float64)
    y = np.concatenate([data.train.label, data.val.label, data.test.label])
    assert set(np.unique(y).tolist()) == {-1.0, 1.0} and len(y) == 300
    assert np.mean(data.val.label == 1) == pytest.approx(np.mean(data.train.label == 1), abs=0.02)
    distance = y * (x @ data.true_weight + data.true_bias)
    assert distance.min() >= 0.2 - 1e-5
    assert np.linalg.norm(data.true_weight) == pytest.approx(1.0)
    np.testing.assert_array_equal(data.train.data, separable(300, 4, 0.2, seed=7).train.data)
    assert data.task == "perceptron"


def test_fizzbuzz_data():
    assert [fizzbuzz_text(n, fizzbuzz_label(n)) for n in range(1, 16)] == [
        "1", "2", "Fizz", "4", "Buzz", "Fizz", "7", "8", "Fizz", "Buzz", "11", "Fizz", "13", "14",
        "FizzBuzz"]
    assert (len(fizzbuzz().train), len(fizzbuzz().val)) == (832, 92)  # val: 0.1, stratified
    data = fizzbuzz(train_max=1024, val_fraction=0)
    assert (len(data.train), len(data.test)) == (924, 100) and data.num_classes == 4
    assert data.model_args == {"classes": 4, "image_shape": [3]} and data.task == "classify"
    assert data.test.data[8].tolist() == [0.0, 4.0, 9.0]          # 9: (0, 4, 9)
    assert data.train.data[0].tolist() == [2.0, 1.0, 11.0]        # 101
    assert data.test.label[[8, 9, 14, 0]].tolist() == [1, 2, 3, 0]
    onehot = fizzbuzz_features(np.array([15, 7]), "onehot")
    assert onehot.shape == (2, 23)
    assert np.flatnonzero(onehot[0]).tolist() == [0, 3, 8]        # 15: residues 0, 0, 0
    assert np.flatnonzero(onehot[1]).tolist() == [1, 3 + 2, 8 + 7]
    with pytest.raises(ValueError, match="encoding"):
        fizzbuzz_features(np.arange(3), "binary")


def test_weight_error_is_the_largest_error_over_weights_and_bias():
    data = linear_synthetic(num_examples=10)
    net = LinearRegression()
    net.initialize()
    net(array(data.train.data[:1]))
    net.linear.weight.set_data(np.array([[2.01, -3.43]]))
    net.linear.bias.set_data(np.array([4.22]))
    assert weight_error(net, data) == pytest.approx(0.03, abs=1e-5)
    assert weight_error(net, linear_synthetic(num_examples=10, true_w=[1.0, 2.0, 3.0])) is None
    assert weight_error(SoftmaxRegression(), data) is None


# --- config: model and dataset files, recipes -------------------------------------------------
@pytest.mark.parametrize("group, option", [
    ("model", "perceptron"), ("model", "linear_regression"), ("model", "logistic_regression"),
    ("model", "softmax_regression"), ("model", "fizzbuzz"),
    ("dataset", "linear_synthetic"), ("dataset", "separable"), ("dataset", "fizzbuzz")])
def test_each_new_option_names_a_class_that_takes_its_arguments_and_builds(group, option):
    from hydra.utils import get_object

    from dlrun.runner.config import check_arguments
    from dlrun.runner.build import build

    node = composed(f"{group}={option}")[group]
    spec = OmegaConf.to_container(node, resolve=True)
    check_arguments(get_object(spec.pop("_target_")), spec, group)
    assert build(node, group) is not None


def test_the_data_fills_the_null_model_arguments():
    from dlrun.runner.build import build, data_model_args

    cfg = composed("model=linear_regression", "dataset=linear_synthetic")
    data = build(cfg.dataset, "dataset")
    assert data_model_args(cfg.model, data) == {"outputs": 1}
    cfg = composed("model=fizzbuzz", "dataset=fizzbuzz")
    assert data_model_args(cfg.model, build(cfg.dataset, "dataset")) == {"classes": 4}


def test_a_model_file_chooses_the_trainer_it_needs_and_the_command_line_still_wins():
    """``dlrun model=NAME`` trains to a recognisable result in minutes (README's table):
    model files choose their optimizer and trainer; trainer=/optimizer=/keys still win."""
    register_configs()
    with initialize_config_module(config_module="dlrun.conf", version_base="1.3"):
        def trainer(*overrides: str) -> tuple:
            cfg = compose(config_name="config", overrides=list(overrides))
            return cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.val_every, cfg.optimizer.lr

        assert trainer("model=gan_mlp") == (40, 32, 5, 0.0002)
        assert trainer("model=gan_mlp", "trainer.epochs=2")[0] == 2
        assert trainer("model=gan_mlp", "trainer=default", "optimizer=sgd") == (10, 64, 1, 0.02)
        assert trainer("+recipe=mnist_gan") == (30, 64, 1, 0.0002)  # a recipe's trainer is its own
        assert [trainer(f"model={m}") for m in ("inception", "zoo", "treelstm", "lstm_lm", "lenet")
                ] == [(5, 64, 1, 0.001)] * 3 + [(3, 64, 1, 0.02), (10, 64, 1, 0.02)]


def test_recipes_folder_is_the_recipe_config_group():
    recipes = ROOT / "recipes"
    assert recipes.is_symlink() and recipes.resolve() == RECIPE_DIR.resolve()
    assert (recipes / "README.md").exists()
    assert {p.stem for p in RECIPE_DIR.glob("*.yaml")} >= set(CLASSIC_RECIPES)


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))
def test_each_recipe_composes_and_states_target_source_and_wall_time(name):
    text = (RECIPE_DIR / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), name
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for field in ("target:", "source:", "wall time on 2 CPU cores:"):
        assert field in comments, f"recipes/{name}.yaml does not state its {field[:-1]}"
    cfg = composed(f"+recipe={name}")
    for group in ("dataset", "model", "loss", "optimizer", "schedule"):
        assert "_target_" in cfg[group], (name, group)


@pytest.mark.parametrize("name, model, dataset, loss, checks", [
    ("linear_regression", "LinearRegression", "linear_synthetic", "L2Loss",
     {"optimizer.lr": 0.03, "optimizer.momentum": 0.0, "trainer.batch_size": 10}),
    ("perceptron", "Perceptron", "separable", "PerceptronLoss",
     {"dataset.features": 10, "dataset.margin": 0.05, "trainer.epochs": 100}),
    ("softmax_regression", "SoftmaxRegression", "digits", "SoftmaxCrossEntropyLoss",
     {"optimizer.lr": 0.01, "trainer.epochs": 10}),
    ("fizzbuzz", "FizzBuzz", "fizzbuzz", "SoftmaxCrossEntropyLoss",
     {"optimizer._target_": "dlrun.optim.Adam", "optimizer.lr": 0.01, "trainer.epochs": 30}),
])
def test_classic_recipes_choose_their_groups_and_values(name, model, dataset, loss, checks):
    cfg = composed(f"+recipe={name}", "seed=3")
    assert cfg.model._target_.endswith("." + model)
    assert cfg.dataset._target_.endswith("." + dataset)
    assert cfg.loss._target_.endswith("." + loss)
    assert cfg.experiment == "recipes" and cfg.seed == 3  # the command line still wins
    for key, value in checks.items():
        assert OmegaConf.select(cfg, key) == value, (name, key)


# --- end to end: the dlrun command --------------------------------------------------------------
def _results(res) -> dict:
    assert res.returncode == 0, res
    dirs = res.run_dirs()
    assert len(dirs) == 1, res
    return json.loads((dirs[0] / "results.json").read_text())


@pytest.mark.slow
def test_linear_regression_recipe_recovers_the_true_weights(run_dlrun):
    res = run_dlrun("+recipe=linear_regression", "logger=none")
    metrics = _results(res)
    assert metrics["test/weight_error"] <= 0.05, res
    assert metrics["test/mse"] < 0.001  # the noise variance is 0.0001
    assert metrics["epoch"] == 5
    assert "LinearRegression" in res.stdout and "true w = [2, -3.4], b = [4.2]" in res.stdout
    learnt = np.load(res.run_dirs()[0] / "model.npz")
    weights = [learnt[k] for k in learnt.files]
    w = next(a for a in weights if a.size == 2).reshape(-1)
    b = next(a for a in weights if a.size == 1).reshape(-1)
    np.testing.assert_allclose(w, [2.0, -3.4], atol=0.05)
    np.testing.assert_allclose(b, [4.2], atol=0.05)


@pytest.mark.slow
def test_perceptron_recipe_ends_with_a_pass_without_mistakes(run_dlrun):
    res = run_dlrun("+recipe=perceptron", "logger=none")
    metrics = _results(res)
    assert metrics["train/mistakes"] == 0 and metrics["val/accuracy"] == 1.0, res
    assert metrics["test/accuracy"] >= 0.99  # the model of the first pass at 100% on val
    assert 1 < metrics["epoch"] < 100  # it needed several passes, and stopped when done
    assert "the perceptron rule" in res.stdout


@pytest.mark.slow
def test_logistic_regression_trains_by_sgd_in_the_binary_task(run_dlrun):
    res = run_dlrun("model=logistic_regression", "loss=logistic", "dataset=separable",
                    "optimizer.lr=0.1", "trainer.epochs=3", "logger=none")
    metrics = _results(res)
    assert metrics["test/accuracy"] >= 0.95, res
    assert metrics["train/loss"] < np.log(2)


@pytest.mark.slow
def test_perceptron_on_non_binary_data_says_what_to_pick(run_dlrun):
    res = run_dlrun("model=perceptron", "dataset=digits", "logger=none")
    assert res.returncode != 0
    # caught before anything is built: one line naming the dataset that fits
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "dataset=digits" in res.stderr and "separable" in res.stderr
