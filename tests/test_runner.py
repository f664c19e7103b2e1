"""The ``dlrun`` command: config composition and validation, end-to-end runs, error messages."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from .conftest import clean_env
from dlrun.runner.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "dlrun" / "conf"
# every option file of every group, as dlrun --help must list them
GROUPS = {group.name: sorted(f.stem for f in group.glob("*.yaml"))
          for group in sorted(CONF.iterdir()) if group.is_dir() and list(group.glob("*.yaml"))}
BUILDING_GROUPS = ["dataset", "model", "loss", "optimizer", "schedule", "init"]


def composed(*overrides: str):
    register_configs()
    with initialize_config_module(config_module="dlrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# --- config ---------------------------------------------------------------------------------
def test_defaults_are_the_seed_models_and_digits():
    cfg = composed()
    assert cfg.dataset._target_ == "dlrun.data.vision.digits"
    assert cfg.model._target_ == "dlrun.models.lenet.LeNet"
    assert list(cfg.model.channels) == [20, 50] and cfg.model.kernel_size == 5
    assert cfg.model.hidden == 500 and cfg.model.activation == "tanh" and cfg.model.pool == "avg"
    assert cfg.optimizer._target_ == "dlrun.optim.SGD" and cfg.optimizer.momentum == 0.9
    assert cfg.logger.backend.value == "mlflow" and cfg.device.type.value == "cpu"
    assert cfg.experiment == "dlrun" and cfg.debug is False and isinstance(cfg.seed, int)
    mlp = composed("model=mlp").model
    assert list(mlp.hidden) == [128, 64] and mlp.activation == "relu" and mlp.dropout == 0.5
    adam = composed("optimizer=adam").optimizer
    assert adam._target_ == "dlrun.optim.Adam" and adam.lr == 0.001


DEFAULT_GROUPS = ["dataset", "device", "init", "logger", "loss", "model", "optimizer", "schedule", "trainer"]


@pytest.mark.parametrize("group", DEFAULT_GROUPS)
def test_every_option_of_every_group_composes(group):
    for option in GROUPS[group]:
        cfg = composed(f"{group}={option}")
        node = cfg[group]
        assert OmegaConf.is_dict(node) and len(node) > 0, (group, option)


def test_real_datasets_read_dataset_root_from_dlrun_data(monkeypatch):
    monkeypatch.setenv("DLRUN_DATA", "/data/somewhere")
    assert composed("dataset=mnist").dataset.root == "/data/somewhere"
    monkeypatch.delenv("DLRUN_DATA")
    monkeypatch.setenv("HOME", "/home/someone")
    assert composed("dataset=fashion_mnist").dataset.root == "/home/someone/.cache/dlrun"


@pytest.mark.parametrize("group", BUILDING_GROUPS)
def test_every_option_names_a_class_that_takes_its_arguments(group):
    """The YAML of each option lists arguments its _target_ accepts, with values of the right
    types, and (for everything that reads no data) builds."""
    from hydra.utils import get_object

    from dlrun.runner.config import check_arguments
    from dlrun.runner.build import build, data_model_args

    class Data:  # what a dataset decides for a model
        model_args = {"classes": 3, "vocab_size": 11}

    for option in GROUPS[group]:
        node = composed(f"{group}={option}")[group]
        spec = OmegaConf.to_container(node, resolve=True)
        check_arguments(get_object(spec.pop("_target_")), spec, group)
        if group != "dataset":
            assert build(node, group, **data_model_args(node, Data)) is not None, option


@pytest.mark.parametrize("override, key, expected", [
    ("trainer.epochs=abc", "trainer.epochs", "Integer"),
    ("trainer.val_every=maybe", "trainer.val_every", "Integer"),
    ("device.type=tpu", "device.type", "[cpu, gpu]"),
    ("trainer.epocs=3", "trainer.epocs", "not in 'TrainerConfig'"),
    ("model.hiden=3", "model.hiden", "not in struct"),
])
def test_wrong_type_or_unknown_key_names_the_key_and_what_was_expected(override, key, expected):
    with pytest.raises(ConfigCompositionException) as info:
        composed(override)
    message = f"{info.value}\n{info.value.__cause__}"
    assert key in message and expected in message


def test_the_repository_conf_link_points_at_the_package_config():
    root = Path(__file__).resolve().parents[1]
    conf = root / "conf"
    assert conf.is_symlink() and conf.resolve() == (root / "dlrun" / "conf").resolve()
    assert (conf / "config.yaml").exists()


# --- the command ----------------------------------------------------------------------------
def test_help_answers_quickly_and_lists_the_groups(run_dlrun):
    start = time.perf_counter()
    res = run_dlrun("--help")
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res
    for group, options in GROUPS.items():
        assert f"{group}: {', '.join(options)}" in res.stdout, res
    assert "_schema" not in res.stdout
    assert elapsed < 10, f"dlrun --help took {elapsed:.1f} s"  # ~0.6 s on an idle machine


@pytest.mark.slow
def test_mlp_run_end_to_end_lands_in_the_sqlite_mlflow_store(run_dlrun, tmp_path):
    from mlflow.tracking import MlflowClient

    res = run_dlrun("model=mlp", "optimizer=adam", "trainer.epochs=2", "trainer.log_every=5",
                    "experiment=e2e")
    assert res.returncode == 0, res
    out = res.stdout
    assert "\x1b" not in out and "\r" not in out, "plain output expected when not on a terminal"
    assert "val acc" in out and "test accuracy" in out and "Results" in out and "mlflow ui --backend-store-uri" in out

    (run_dir,) = res.run_dirs()
    for name in ("model.npz", "config.yaml", "results.json", ".hydra/config.yaml",
                 ".hydra/overrides.yaml"):
        assert (run_dir / name).exists(), name
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.6 < results["test/accuracy"] <= 1.0      # chance is 0.1
    assert 0 < results["test/loss"] < 2.0
    assert 0.6 < results["val/accuracy"] <= 1.0 and results["best/epoch"] in (1, 2)
    assert results["epoch"] == 2 and results["steps"] == 2 * 18  # 1150 examples, batch 64
    with np.load(run_dir / "model.npz", allow_pickle=False) as params:
        shapes = sorted(params[k].shape for k in params.files)
    assert (10,) in shapes and (128, 784) in shapes

    assert (tmp_path / "outputs" / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e2e")
    assert exp is not None
    assert exp.artifact_location == (tmp_path / "outputs" / "mlartifacts").as_uri()
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model._target_"] == "dlrun.models.mlp.MLP" and p["trainer.epochs"] == "2"
    assert p["optimizer.lr"] == "0.001" and p["model.hidden"] == "[128, 64]"
    m = run.data.metrics
    assert m["test/accuracy"] == pytest.approx(results["test/accuracy"])  # once, at the end
    assert m["best/val/accuracy"] == pytest.approx(results["val/accuracy"])
    assert m["train/loss"] == pytest.approx(results["train/loss"])
    steps = client.get_metric_history(run.info.run_id, "train/step_loss")
    assert [s.step for s in steps] == list(range(1, 37))
    assert all(np.isfinite(s.value) and s.value > 0 for s in steps)
    evals = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert [s.step for s in evals] == [18, 36]
    assert len(client.get_metric_history(run.info.run_id, "test/accuracy")) == 1
    tags = run.data.tags
    assert tags["dlrun.version"] and tags["dlrun.device"] == "cpu(0)"
    assert tags["dlrun.choice.model"] == "mlp"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.npz", "config.yaml"} <= artifacts


@pytest.mark.slow
def test_one_seed_fixes_every_random_source(run_dlrun, tmp_path):
    args = ("model=mlp", "trainer.epochs=1", "logger=none")   # dropout, init and shuffling
    results = []
    for seed in (3, 3, 4):
        res = run_dlrun(*args, f"seed={seed}")
        assert res.returncode == 0, res
        results.append(json.loads((res.run_dirs()[-1] / "results.json").read_text()))
    assert results[0]["test/loss"] == results[1]["test/loss"]
    assert results[0]["train/loss"] == results[1]["train/loss"]
    assert results[0]["test/loss"] != results[2]["test/loss"]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # logger=none tracks nothing


# --- errors ---------------------------------------------------------------------------------
def assert_clean_failure(res, *texts):
    assert res.returncode != 0, res
    assert "Traceback" not in res.output, res
    for text in texts:
        assert text in res.output, res


def test_unknown_choice_lists_the_valid_ones(run_dlrun):
    res = run_dlrun("model=lenett")
    assert_clean_failure(res, "model/lenett", "Available options in 'model'", "lenet", "mlp")


def test_wrong_type_on_the_command_line(run_dlrun):
    res = run_dlrun("trainer.epochs=abc")
    assert_clean_failure(res, "trainer.epochs", "could not be converted to Integer")
    res = run_dlrun("trainer.epocs=3")
    assert_clean_failure(res, "trainer.epocs", "not in 'TrainerConfig'")


BAD_VALUES = [("trainer.epochs", "0", "at least 1"), ("trainer.batch_size", "0", "at least 1"),
              ("trainer.batch_size", "-1", "at least 1"),
              ("trainer.keep_checkpoints", "-1", "0 or more"),
              ("trainer.checkpoint_every", "-1", "0 or more"),
              ("trainer.log_every", "-5", "at least 1"), ("trainer.max_nan_skips", "-1", "0 or more"),
              ("trainer.eval_batch_size", "0", "at least 1"),
              ("distributed.workers", "0", "at least 1")]


@pytest.mark.slow
@pytest.mark.parametrize("key,value,allowed", BAD_VALUES)
def test_a_value_out_of_range_is_refused_before_anything_starts(run_dlrun, tmp_path, key, value,
                                                                  allowed):
    """Issue 17, item 7: trainer.epochs=0 wrote outputs then failed with KeyError under a FINISHED
    MLflow run; batch_size=0 and the like failed late with a raw ValueError and a FAILED run.
    Now: one message naming the key, its value and its range, exit 1, nothing written."""
    run_dir = tmp_path / "run"
    res = run_dlrun("model=mlp", f"{key}={value}", f"hydra.run.dir={run_dir}")
    assert res.returncode == 1, res
    assert_clean_failure(res, f"{key}={value}", allowed)
    assert "ValueError" not in res.stderr and "KeyError" not in res.stderr, res
    assert not (run_dir / "config.yaml").exists() and not (run_dir / "results.json").exists()
    assert not (tmp_path / "outputs").exists(), "no MLflow store or run folder is made"


def test_the_range_table_refuses_only_what_is_out_of_range():
    from dlrun.runner.ranges import RANGES, conflict, out_of_range

    cfg = OmegaConf.create({"trainer": {"epochs": 1, "batch_size": 64, "checkpoint_every": 0,
                                        "eval_batch_size": None, "clip_global_norm": None},
                            "distributed": {"workers": 1, "bucket_mb": 25.0}})
    assert out_of_range(cfg) is None
    cfg.distributed.bucket_mb = 0.0
    assert "distributed.bucket_mb=0.0" in out_of_range(cfg) and "above 0" in out_of_range(cfg)
    cfg.distributed.bucket_mb = 25.0
    for key, value, allowed in (("val_every_steps", 0, "at least 1"), ("limit_train_batches", 0, "above 0"),
                                ("limit_val_batches", 0, "above 0"), ("limit_test_batches", -0.5, "above 0")):
        cfg.trainer[key] = value
        assert f"trainer.{key}={value}" in out_of_range(cfg) and allowed in out_of_range(cfg)
        cfg.trainer[key] = None
    cfg.trainer.update({"val_every_steps": 50, "val_every": 1})
    assert conflict(cfg) is None  # it replaces the epochs' validations; with another, refused:
    cfg.trainer.val_every = 2
    assert "trainer.val_every_steps=50" in conflict(cfg) and "trainer.val_every at 1" in conflict(cfg)
    assert all(k.split(".")[0] in ("trainer", "device", "distributed") for k in RANGES)


def test_gpu_without_a_gpu_suggests_device_cpu(run_dlrun):
    from dlrun.engine.testing import real_gpus

    if real_gpus() > 0:
        pytest.skip("this machine has a GPU")
    res = run_dlrun("device=gpu", "logger=none", env=clean_env(DLRUN_EMULATE_GPU="0"))
    assert_clean_failure(res, "gpu(0)", "device=cpu")


def test_missing_dataset_offline_says_what_to_do(run_dlrun, tmp_path):
    root = tmp_path / "empty-data"
    root.mkdir()
    unreachable = "http://127.0.0.1:9"  # every mirror fails at once: no network needed
    env = clean_env(http_proxy=unreachable, https_proxy=unreachable, HTTP_PROXY=unreachable,
                    HTTPS_PROXY=unreachable, no_proxy="", NO_PROXY="")
    res = run_dlrun("dataset=mnist", f"dataset.root={root}", "logger=none", env=env)
    assert_clean_failure(res, "Dataset files missing", "train-images-idx3-ubyte.gz",
                         "dataset.root", "DLRUN_DATA", str(root / "mnist"))
    assert not list(root.rglob("*.gz")), "nothing half-downloaded may stay behind"


def test_diverging_run_stops_with_a_clear_message(run_dlrun):
    res = run_dlrun("model=mlp", "optimizer.lr=1e9", "trainer.epochs=1", "trainer.log_every=1",
                    "logger=none")
    assert_clean_failure(res, "diverged", "optimizer.lr")
    assert "RuntimeWarning" not in res.output  # numpy's overflow warnings go to the log file


def test_bad_model_argument_names_the_config_key(run_dlrun):
    res = run_dlrun("model.pool=median", "logger=none")
    assert_clean_failure(res, "model (dlrun.models.lenet.LeNet)", "median")


@pytest.mark.parametrize("override, expected", [
    ("optimizer.lr=fast", ["optimizer.lr='fast'", "expects float"]),
    ("optimizer.momentum=1.0", ["optimizer", "momentum", "[0, 1)"]),
    ("optimizer.lr=-0.1", ["optimizer", "learning_rate", "-0.1"]),
    ("model=mlp model.dropout=1.5", ["model", "dropout", "1.5"]),
    ("model.channels=[20,x]", ["model.channels", "Sequence[int]"]),
    ("+optimizer.wd=0.1", ["optimizer.wd", "trainer.wd"]),
])
def test_bad_hyperparameters_fail_before_any_training_naming_the_key(run_dlrun, override, expected):
    res = run_dlrun(*override.split(), "logger=none")
    assert_clean_failure(res, *expected)
    assert "epoch" not in res.stdout.split("tracking")[-1]  # failed before the first epoch


def test_debug_true_shows_the_traceback(run_dlrun):
    res = run_dlrun("model.pool=median", "logger=none", "debug=true")
    assert res.returncode != 0 and "Traceback" in res.output, res


def test_ci_runs_the_readme_quick_start_commands_verbatim():
    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    commands = {}
    for line in ci.splitlines():
        for name in ("INSTALL_AND_RUN", "TEST"):
            if line.startswith(f"{name}="):
                commands[name] = line.split("=", 1)[1].strip().strip('"')
    assert set(commands) == {"INSTALL_AND_RUN", "TEST"}
    for command in commands.values():
        assert f"```bash\n{command}\n```" in readme, command
    assert (root / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"


def test_augmentation_is_a_dataset_choice_that_only_the_training_loader_applies():
    from dlrun.data.transforms import RandomCrop, RandomFlip
    from dlrun.engine import cpu
    from dlrun.models.lenet import LeNet
    from dlrun.runner.build import build
    from dlrun.runner.tasks import Setup
    from dlrun.runner.tasks.classify import ClassifyTask

    assert build(composed().dataset, "dataset").augment is None
    cfg = composed("+dataset/augment=crop_flip", "dataset.augment.padding=2")
    data = build(cfg.dataset, "dataset")
    crop, flip = data.augment.transforms
    assert isinstance(crop, RandomCrop) and crop.padding == 2 and isinstance(flip, RandomFlip)
    recipe = composed("+recipe=inception_fashion_mnist").dataset.augment
    assert recipe._target_ == "dlrun.data.crop_flip" and recipe.padding == 2 and recipe.flip

    net = LeNet(classes=10)
    net.initialize()
    task = ClassifyTask(Setup(cfg=cfg, ctx=cpu(), data=data, net=net, loss=None, trainer=None,
                              seed=0, report=None))
    assert task.train_loader.transform is data.augment and task.loaders["test"].transform is None
    order = task.train_loader._order()
    x, y = next(iter(task.train_loader))
    stored = data.train.data[order[:len(y.asnumpy())]]
    np.testing.assert_array_equal(y.asnumpy(), data.train.label[order[:len(stored)]])
    assert x.shape == stored.shape and not np.array_equal(x.asnumpy(), stored)


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.run"])
def test_a_target_outside_dlrun_is_refused(run_dlrun, target):
    done = run_dlrun(f"model._target_={target}", "logger=none")
    assert done.returncode == 1
    assert f"model._target_='{target}' is outside the namespaces dlrun builds from" in done.stderr
    assert "allowed_targets" in done.stderr


def test_allowed_targets_widens_the_namespaces():
    from dlrun.runner.build import ConfigError, _resolve, allow_targets

    with pytest.raises(ConfigError, match="outside the namespaces"):
        _resolve({"_target_": "collections.OrderedDict"}, "model")
    allow_targets(["collections."])
    try:
        fn, target, _ = _resolve({"_target_": "collections.OrderedDict"}, "model")
        assert target == "collections.OrderedDict" and fn().__class__.__name__ == "OrderedDict"
    finally:
        allow_targets([])
