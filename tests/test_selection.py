"""Model selection (issue 18): the validation split, early stopping, the best checkpoints,
weight averaging, gradient accumulation and callbacks, each against a reference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from dlrun.data import ArrayDataset
from dlrun.data.split import carve_val, holdout, val_count
from dlrun.engine import array, autograd, cpu
from dlrun.loss import SoftmaxCrossEntropyLoss
from dlrun.nn import Dense, Sequential
from dlrun.optim import Trainer
from dlrun.runner.build import ConfigError
from dlrun.data.vision import Splits
from dlrun.runner.callbacks import (BestCheckpoint, Callback, EarlyStopping, LearningRateMonitor,
                                    LoopState, WeightAverage, make_callbacks)
from dlrun.runner.checkpoint import CheckpointStore, RunCheckpoints, load_checkpoint
from dlrun.runner.loop import Loop
from dlrun.runner.tasks.base import Setup
from dlrun.runner.tasks.classify import ClassifyTask
from dlrun.runner.updates import Accumulator, Guard

PRIMARY = ("val/accuracy", "max")


# --- the validation split -----------------------------------------------------------------
def test_the_validation_split_is_stratified_disjoint_and_fixed_by_its_seed():
    labels = np.repeat([0, 1, 2], [600, 300, 100])  # imbalanced classes
    keep, held = holdout(len(labels), 100, seed=0, labels=labels)
    assert len(held) == 100 and len(keep) == 900
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(1000))
    assert np.bincount(labels[held]).tolist() == [60, 30, 10]  # each class its share
    again = holdout(len(labels), 100, seed=0, labels=labels)
    other = holdout(len(labels), 100, seed=1, labels=labels)
    assert np.array_equal(again[1], held) and not np.array_equal(other[1], held)


def test_mnist_sized_defaults_and_no_validation():
    data = ArrayDataset(np.arange(60000, dtype=np.float32)[:, None], np.arange(60000) % 10)
    train, val = carve_val(data, val_size=5000)  # MNIST's and Fashion-MNIST's default
    assert (len(train), len(val)) == (55000, 5000)
    assert np.bincount(val.label).tolist() == [500] * 10
    assert not set(train.data[:, 0]) & set(val.data[:, 0])
    assert carve_val(data, val_fraction=0.0) == (data, None)  # val_fraction=0: none


@pytest.mark.parametrize("fraction, size, words", [
    (0.1, 100, "both set"), (1.0, None, "[0, 1)"), (None, 10, "from 0 to 9")])
def test_a_bad_validation_size_names_the_value_and_the_fix(fraction, size, words):
    with pytest.raises(ValueError) as info:
        val_count(10, fraction, size)
    assert words in str(info.value)


# --- early stopping ---------------------------------------------------------------------------
def _state(tmp_path: Path, net=None) -> LoopState:
    return LoopState(net=net, trainers={}, tracker=None, run_dir=tmp_path)


def _feed(callback, state: LoopState, values, start: int = 1) -> int | None:
    """Validations of ``values`` from epoch ``start`` on; the epoch the run stopped at."""
    for epoch, value in enumerate(values, start=start):
        state.epoch, state.metrics = epoch, {"val/accuracy": value, "val/loss": -value}
        callback.on_validation_end(state)
        if state.stop_reason:
            return epoch
    return None


def test_early_stopping_stops_at_the_right_epoch_also_from_its_saved_state(tmp_path):
    scripted = [0.50, 0.60, 0.605, 0.59, 0.70, 0.80]  # +0.005 is no improvement (min_delta)
    stopper = EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01)
    state = _state(tmp_path)
    assert _feed(stopper, state, scripted) == 4
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (0.60, 2, 4)
    assert "early stopping at epoch 4" in state.stop_reason

    first = EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01)  # "killed" after 3
    assert _feed(first, _state(tmp_path), scripted[:3]) is None
    saved = json.loads(json.dumps(first.state()[0]))  # as a checkpoint keeps it
    resumed = EarlyStopping("val/accuracy", "max", patience=2, min_delta=0.01)
    resumed.load_state(saved, {})
    assert _feed(resumed, _state(tmp_path), scripted[3:], start=4) == 4

    lower = EarlyStopping("val/loss", "min", patience=1)  # mode=min on the same sequence
    assert _feed(lower, _state(tmp_path), scripted) == 4  # -0.59 > -0.605: worse


# --- the best checkpoints -------------------------------------------------------------------
def _net() -> Sequential:
    net = Sequential()
    net.add(Dense(3, in_units=4))
    net.initialize(ctx=cpu())
    return net


def _weights(net) -> dict[str, np.ndarray]:
    return {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}


def test_keep_best_keeps_the_k_best_files_and_restore_best_the_best_parameters(tmp_path):
    net = _net()
    best = BestCheckpoint("val/accuracy", "max", keep_best=2)
    state, seen = _state(tmp_path, net), {}
    rng = np.random.default_rng(0)
    for epoch, value in enumerate([0.3, 0.8, 0.5, 0.9, 0.1], start=1):
        for p in net.collect_params().values():
            p.set_data(rng.standard_normal(p.shape).astype(np.float32))
        seen[epoch] = _weights(net)
        state.epoch, state.metrics = epoch, {"val/accuracy": value}
        best.on_validation_end(state)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("best-*.npz")) == ["best-epoch0002.npz",
                                                                 "best-epoch0004.npz"]
    listed = json.loads((folder / "best.json").read_text())["best"]
    assert [(e["epoch"], e["val/accuracy"]) for e in listed] == [(4, 0.9), (2, 0.8)]
    with np.load(folder / "best-epoch0002.npz") as f:
        for k, v in seen[2].items():
            np.testing.assert_array_equal(f[k], v)
    assert best.summary() == {"best/epoch": 4, "best/val/accuracy": 0.9}
    best.on_fit_end(state)  # restore_best
    for k, v in _weights(net).items():
        np.testing.assert_array_equal(v, seen[4][k])


# --- weight averaging -------------------------------------------------------------------------
def test_the_weight_average_follows_the_numpy_reference_and_is_what_validation_sees(tmp_path):
    net, decay = _net(), 0.9
    ema = WeightAverage(decay)
    state = _state(tmp_path, net)
    ema.on_fit_start(state)
    reference = _weights(net)
    rng = np.random.default_rng(1)
    for _ in range(5):  # five updates
        for k, p in net.collect_params().items():
            p.set_data(rng.standard_normal(p.shape).astype(np.float32))
        ema.on_step_end(state)
        reference = {k: decay * reference[k] + (1 - decay) * v for k, v in _weights(net).items()}
    trained = _weights(net)
    ema.on_validation_start(state)
    for k, v in _weights(net).items():
        np.testing.assert_allclose(v, reference[k], rtol=1e-6, atol=1e-7)
    ema.on_validation_model_train(state)  # the training weights back
    for k, v in _weights(net).items():
        np.testing.assert_array_equal(v, trained[k])
    saved = ema.state()[1]
    again = WeightAverage(decay)  # resumed: the average comes from the checkpoint
    again.load_state({}, saved)
    again.on_fit_start(state)
    again.on_fit_end(state)
    for k, v in _weights(net).items():
        np.testing.assert_allclose(v, reference[k], rtol=1e-6, atol=1e-7)


# --- gradient accumulation -------------------------------------------------------------------
def _train(batches: list[tuple[np.ndarray, np.ndarray]], accumulate: int) -> dict[str, np.ndarray]:
    net = Sequential()
    net.add(Dense(8, in_units=6, activation="tanh"), Dense(3, in_units=8))
    net.initialize(ctx=cpu())
    for k, p in net.collect_params().items():  # the same start for both
        p.set_data(np.random.default_rng(len(k)).standard_normal(p.shape).astype(np.float32) * 0.3)
        if accumulate > 1:
            p.grad_req = "add"
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    loss = SoftmaxCrossEntropyLoss()
    acc = Accumulator(accumulate, Guard(OmegaConf.create({})))
    for step, (x, y) in enumerate(batches, start=1):
        with autograd.record():
            out = loss(net(array(x)), array(y))
        out.backward()
        acc.update(trainer, x.shape[0])
        acc.due(step, len(batches))
    return _weights(net)


def test_n_batches_accumulated_train_as_one_batch_n_times_larger():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64).astype(np.float32)
    large = _train([(x[:32], y[:32]), (x[32:], y[32:])], accumulate=1)  # 2 updates of 32
    small = _train([(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)], accumulate=4)  # 8 x 8
    for k in large:
        np.testing.assert_allclose(small[k], large[k], rtol=1e-5, atol=1e-6, err_msg=k)
    plain = _train([(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)], accumulate=1)
    assert not np.allclose(plain["0.weight"], large["0.weight"], atol=1e-4)  # it matters


# --- what may monitor what ---------------------------------------------------------------------
def _cfg(**settings: object) -> object:
    """A config with the trainer's selection keys at their defaults, ``settings`` (dotted
    keys under trainer) changed."""
    cfg = OmegaConf.create({"callbacks": {}, "trainer": {
        "monitor": None, "mode": None, "restore_best": True, "ema_decay": None,
        "checkpoint": {"keep_best": 0},
        "early_stopping": {"patience": None, "min_delta": 0.0, "monitor": None, "mode": None}}})
    for key, value in settings.items():
        OmegaConf.update(cfg, f"trainer.{key}", value)
    return cfg


@pytest.mark.parametrize("setting, has_val, words", [
    ({"early_stopping.patience": 2}, False, "no validation split"),
    ({"checkpoint.keep_best": 1}, False, "no validation split"),
    ({"monitor": "test/accuracy"}, True, "never on test"),
    ({"monitor": "val/loss"}, True, "trainer.mode=max or trainer.mode=min"),
    ({"early_stopping.patience": 1, "early_stopping.monitor": "train/loss"}, True, "never on test"),
])
def test_monitoring_is_on_validation_only(setting, has_val, words):
    with pytest.raises(ConfigError) as info:
        make_callbacks(_cfg(**setting), PRIMARY, has_val)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_the_runner_callbacks_in_order():
    made = make_callbacks(_cfg(**{"ema_decay": 0.99, "early_stopping.patience": 3,
                                  "monitor": "val/loss", "mode": "min"}), PRIMARY, True)
    assert [c.name for c in made] == ["ema", "early_stopping", "best"]
    assert (made[1].monitor, made[1].mode, made[2].monitor) == ("val/loss", "min", "val/loss")
    assert [c.name for c in make_callbacks(_cfg(), PRIMARY, False)] == []  # nothing to select on


def test_the_learning_rate_monitor_logs_each_trainer(tmp_path):
    logged = []

    class Tracker:
        def log_metrics(self, metrics, step):
            logged.append((dict(metrics), step))

    class Rate:
        def __init__(self, lr):
            self.learning_rate = lr

    state = LoopState(None, {"d": Rate(0.1), "g": Rate(0.2)}, Tracker(), tmp_path, step=7)
    LearningRateMonitor("step").on_step_end(state)
    LearningRateMonitor("epoch").on_epoch_end(state)
    assert logged == [({"lr/d": 0.1, "lr/g": 0.2}, 7)] * 2


# --- validation every N steps, across a crash ---------------------------------------------------
class _Reporter:
    """A reporter that keeps each validation (its step and metrics) and the steps of the
    epochs' ends."""

    def __init__(self):
        self.validations, self.epoch_ends = [], []

    def start(self, epochs, steps_per_epoch, columns=()): pass
    def epoch_start(self, epoch): pass
    def step(self, epoch, step, samples, loss=None): pass
    def train_losses(self, values): pass
    def note(self, text): pass

    def validation(self, global_step, metrics):
        self.validations.append((global_step, dict(metrics)))

    def epoch_end(self, epoch, global_step, metrics):
        self.epoch_ends.append(global_step)


class _Crash(Exception):
    pass


class _CrashAt(Callback):
    """Fails the run after step ``at``: what a kill -9 leaves is the checkpoints before it."""

    name = "crash"

    def __init__(self, at: int | None):
        self.at = at

    def on_step_end(self, state):
        if state.step == self.at:
            raise _Crash


class _Counted:
    """A loader that counts the batches taken from it."""

    def __init__(self, loader):
        self.loader, self.taken = loader, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.taken += 1
            yield batch


def _blobs() -> Splits:
    rng = np.random.default_rng(0)

    def part(n: int) -> ArrayDataset:
        y = np.arange(n) % 3
        x = rng.standard_normal((n, 4)).astype(np.float32) + 2 * np.eye(3, 4, dtype=np.float32)[y]
        return ArrayDataset(x, y.astype(np.float32))
    return Splits(part(96), part(30), 3, (4,), val=part(40))  # 6 steps of 16 an epoch


def _fit(tmp_path: Path, crash_at: int | None = None, resume: bool = False):
    """A classifier trained by the loop with validations every 5 steps (2 of the 5 val batches
    each), early stopping and a checkpoint every 3 steps: (metrics, reporter, task, net)."""
    cfg = _cfg(**{"early_stopping.patience": 2, "early_stopping.min_delta": 0.5,
                  "checkpoint.keep_best": 1})
    cfg.trainer.update({"epochs": 6, "batch_size": 16, "eval_batch_size": 8, "log_every": 4,
                        "val_every": 1, "val_every_steps": 5, "limit_val_batches": 2})
    net = _net()
    for k, p in net.collect_params().items():
        p.set_data(np.random.default_rng(len(k)).standard_normal(p.shape).astype(np.float32))
    store = CheckpointStore(tmp_path / "checkpoints")
    report = _Reporter()
    setup = Setup(cfg=cfg, ctx=cpu(), data=_blobs(), net=net, loss=SoftmaxCrossEntropyLoss(),
                  trainer=Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05}), seed=0,
                  report=report, run_dir=tmp_path,
                  checkpoints=RunCheckpoints(store, 3, net, "test", lambda: None),
                  resume_from=load_checkpoint(store.latest()) if resume else None)
    task = ClassifyTask(setup)
    task.loaders["val"] = _Counted(task.loaders["val"])
    setup.callbacks = [*make_callbacks(cfg, task.primary, task.has_val), _CrashAt(crash_at)]
    return Loop(setup, task).run(), report, task, net


def test_validation_every_n_steps_decides_and_resumes_at_the_same_steps(tmp_path):
    metrics, whole, task, net = _fit(tmp_path / "whole")
    # validations at steps 5, 10, 15 (across the epochs' ends, at steps 6 and 12); patience 2
    # counts validations: the third ends the run right after its step, in epoch 3
    assert [step for step, _ in whole.validations] == [5, 10, 15]
    assert whole.epoch_ends == [6, 12, 15]
    assert (metrics["steps"], metrics["epoch"], metrics["best/step"]) == (15, 3, 10)
    assert task.loaders["val"].taken == 3 * 2  # trainer.limit_val_batches=2 of 5
    assert len(task.loaders["test"]) == 4 and "test/accuracy" in metrics  # the test: all of it
    assert [p.name for p in (tmp_path / "whole" / "checkpoints").glob("best-*.npz")] == [
        "best-step00000010.npz"]

    with pytest.raises(_Crash):  # killed after step 11: its newest checkpoint is step 9's
        _fit(tmp_path / "killed", crash_at=11)
    again, resumed, _, net_again = _fit(tmp_path / "killed", resume=True)
    assert resumed.validations == whole.validations[1:]  # 10 (again) and 15, the same figures
    for key in ("steps", "epoch", "best/step", "val/accuracy", "test/accuracy", "test/loss"):
        assert again[key] == metrics[key], key
    for k, v in _weights(net).items():  # the selected model, bit for bit
        np.testing.assert_array_equal(_weights(net_again)[k], v, err_msg=k)
