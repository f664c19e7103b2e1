"""What a config may build and which keys it may set (issue 17, items 1 and 8).

A ``_target_`` is walked step by step and must be a class or a function *defined* in dlrun
or in a package of ``allowed_targets``: a path through a module's imports
(``dlrun.runner.records.subprocess.getoutput``), a module, a builtin or another callable
object is refused, and resolving runs no code outside those packages. A key added with ``+``
that no schema and no class knows is refused as composition refuses it without ``+``.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from dlrun.runner.build import ConfigError, _resolve, allow_targets
from dlrun.runner.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "dlrun" / "conf"


def resolve(target: str, key: str = "model"):
    return _resolve({"_target_": target}, key)[0]


@pytest.fixture(autouse=True)
def only_dlrun():
    allow_targets([])
    yield
    allow_targets([])


# --- item 1: where a target is defined ------------------------------------------------------
@pytest.mark.parametrize("target, why", [
    # a dlrun module's own imports lead anywhere
    ("dlrun.runner.records.subprocess.getoutput", "is defined in subprocess, not in dlrun or allowed_targets"),
    ("dlrun.runner.records.subprocess.run", "is defined in subprocess, not in dlrun"),
    ("dlrun.runner.records.subprocess.Popen", "is defined in subprocess, not in dlrun"),
    ("dlrun.runner.experiment.os.system", "is the builtin posix.system"),
    ("dlrun.runner.records.subprocess.os.system", "is the builtin posix.system"),
    ("dlrun.engine.ndarray.np.load", "is defined in numpy"),
    ("dlrun.runner.build.importlib.import_module", "is defined in importlib"),
    ("dlrun.runner.experiment.time.sleep", "is the builtin time.sleep"),
    # through a package's __init__ (dlrun/models/zoo/__init__.py imports math and typing)
    ("dlrun.models.zoo.math.sqrt", "is the builtin math.sqrt"),
    ("dlrun.models.zoo.Any", "is defined in typing, not in dlrun"),
    ("dlrun.models.zoo.Callable", "is a _CallableType object, not a class or function"),
    # a foreign class's methods: static, class and plain
    ("dlrun.runner.experiment.Path", "is defined in pathlib"),
    ("dlrun.runner.experiment.Path.home", "is defined in pathlib"),
    ("dlrun.runner.build.OmegaConf.load", "is defined in omegaconf"),
    # modules, dlrun's own too
    ("dlrun.models.zoo.math", "is the module math, not a class or function"),
    ("dlrun.runner.records.subprocess", "is the module subprocess"),
    ("dlrun.runner.build", "is the module dlrun.runner.build, not a class or function"),
    # an object that is not a class or function, and paths through attributes of functions
    ("dlrun.runner.interrupt.INTERRUPTS", "object, not a class or function"),
    ("dlrun.runner.build.build.__globals__", "is not the dotted path of a class or function"),
    ("dlrun.runner.build.ConfigError.__init__", "is not the dotted path of a class or function"),
    ("dlrun.runner.build.build.__name__", "is not the dotted path of a class or function"),
])
def test_a_path_out_of_dlrun_a_module_or_a_builtin_is_refused(target, why):
    with pytest.raises(ConfigError) as info:
        resolve(target, "loss")
    message = str(info.value)
    assert message.startswith(f"loss._target_={target!r} "), message
    assert why in message, message
    assert "allowed_targets" in message


def test_the_refusal_names_the_key_the_target_and_where_it_is_defined():
    with pytest.raises(ConfigError) as info:
        resolve("dlrun.runner.records.subprocess.getoutput", "dataset.augment")
    assert str(info.value).startswith(
        "dataset.augment._target_='dlrun.runner.records.subprocess.getoutput' is defined in "
        "subprocess, not in dlrun or allowed_targets: a config builds only classes and functions "
        "defined in dlrun or in the packages of allowed_targets (dlrun.)")


def test_what_dlrun_defines_resolves_wherever_dlrun_exports_it_and_nothing_its_modules_import():
    """Every target of dlrun's config files resolves, as do dlrun's re-exports of its own
    classes (dlrun.nn.Dense); every name a dlrun module imports from another package (a
    module, a class, a function, a builtin) is refused through that module's path."""
    import importlib
    import inspect

    for target in ("dlrun.nn.Dense", "dlrun.optim.SGD", "dlrun.models.zoo.get_model",
                   "dlrun.runner.sweep.SweepCallback"):
        obj = resolve(target)
        assert obj.__module__.startswith("dlrun.") and obj.__name__ == target.rsplit(".", 1)[1]
    targets = {line.split(":", 1)[1].strip() for f in CONF.rglob("*.yaml")
               for line in f.read_text().splitlines() if line.strip().startswith("_target_:")}
    targets -= {"optuna.samplers.TPESampler"}  # Hydra's sweeper builds it, from hydra.sweeper
    assert len(targets) > 50
    for target in sorted(targets):
        assert callable(resolve(target)), target

    modules = {t.rsplit(".", 1)[0] for t in targets} | {
        "dlrun.runner.tracking", "dlrun.runner.experiment", "dlrun.runner.build",
        "dlrun.runner.main", "dlrun.runner.distributed", "dlrun.runner.checkpoint",
        "dlrun.parallel.launch", "dlrun.data.download", "dlrun.engine.ndarray"}
    refused = 0
    for name in sorted(modules):
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            home = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if attr.startswith("__") or not callable(value) and not inspect.ismodule(value):
                continue
            if isinstance(home, str) and (home == "dlrun" or home.startswith("dlrun.")):
                continue
            with pytest.raises(ConfigError, match="not in dlrun|is the builtin|is the module|object"):
                resolve(f"{name}.{attr}")
            refused += 1
    assert refused > 50


def test_resolving_runs_no_code_outside_the_allowed_packages(tmp_path, monkeypatch):
    """A foreign package a dlrun module imported is looked into, never imported further: its
    submodule is not imported and its module __getattr__ not called."""
    import dlrun.runner.build as build_module

    package = tmp_path / "foreignpkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        CALLED = []

        def __getattr__(name):
            CALLED.append(name)
            from subprocess import getoutput
            return getoutput
        """))
    (package / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef run(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import foreignpkg

    monkeypatch.setitem(sys.modules, "foreignpkg", foreignpkg)  # gone again after the test
    monkeypatch.setattr(build_module, "foreignpkg", foreignpkg, raising=False)
    monkeypatch.delitem(sys.modules, "foreignpkg.evil", raising=False)
    for target in ("dlrun.runner.build.foreignpkg.evil.run", "dlrun.runner.build.foreignpkg.anything"):
        with pytest.raises(ConfigError, match="which is the module foreignpkg, not in dlrun"):
            resolve(target)
    assert not marker.exists() and "foreignpkg.evil" not in sys.modules
    assert foreignpkg.CALLED == []


def test_an_object_must_be_found_again_where_it_says_it_was_defined(monkeypatch):
    """A callable that claims a dlrun module as its home but is not there is refused."""
    import dlrun.runner.build as build_module

    def impostor():
        pass

    impostor.__module__, impostor.__qualname__ = "dlrun.runner.build", "not_here"
    monkeypatch.setattr(build_module, "alias", impostor, raising=False)
    with pytest.raises(ConfigError, match=r"is not the definition it names \(dlrun.runner.build"
                                          r".not_here is not this object\)"):
        resolve("dlrun.runner.build.alias")


USER_PACKAGE = {
    "userlib/__init__.py": "",
    "userlib/models.py": """
        import os
        from subprocess import getoutput

        from dlrun.nn import Dense


        class Wave:
            def __init__(self, hidden: int = 4):
                self.hidden = hidden


        def make(size: int = 1):
            return [size]
        """,
    "userlib/other.py": "class Other:\n    pass\n",
}


@pytest.fixture
def userlib(tmp_path, monkeypatch):
    for name, text in USER_PACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "userlib" or m.startswith("userlib.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("allowed", [["userlib."], ["userlib"], ["userlib.models."]])
def test_allowed_targets_builds_what_the_users_package_defines_not_what_it_imports(userlib, allowed):
    allow_targets(allowed)
    assert resolve("userlib.models.Wave")(hidden=3).hidden == 3
    assert resolve("userlib.models.make")() == [1]
    assert resolve("userlib.models.Dense").__module__ == "dlrun.nn.basic_layers"  # dlrun's own
    for target, why in (("userlib.models.os.system", "is the builtin posix.system"),
                        ("userlib.models.getoutput", "is defined in subprocess"),
                        ("userlib.models.os", "is the module os")):
        with pytest.raises(ConfigError, match=why):
            resolve(target)
    if allowed == ["userlib.models."]:  # a module of the package, not the whole package
        with pytest.raises(ConfigError, match="outside the namespaces"):
            resolve("userlib.other.Other")


def test_a_sweeps_checks_refuse_the_same_targets():
    from dlrun.runner.sweep.checks import check_config

    cfg = OmegaConf.create({"loss": {"_target_": "dlrun.runner.records.subprocess.getoutput",
                                     "cmd": "true"}})
    with pytest.raises(ConfigError, match="is defined in subprocess"):
        check_config(cfg)


# --- item 8: keys added with + --------------------------------------------------------------
def composed(*overrides: str, hydra: bool = False):
    register_configs()
    with initialize_config_module(config_module="dlrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("key, value", [
    ("trainer.epocs", "3"), ("foo", "bar"), ("device.kind", "gpu"), ("logger.uri", "x"),
    ("distributed.worker", "2"),
])
def test_a_key_added_with_plus_is_refused_with_the_message_it_gets_without(key, value):
    """Composition refuses ``key=value`` naming the key; ``+key=value`` composes, and the check
    every run and every sweep trial makes first refuses it in the same words."""
    from dlrun.runner.sweep.checks import check_config

    with pytest.raises(ConfigCompositionException) as info:
        composed(f"{key}={value}")
    hydra_says = str(info.value.__cause__)  # "Key 'epocs' not in 'TrainerConfig'\n    full_key: ..."
    with pytest.raises(ConfigError) as refused:
        check_config(composed(f"+{key}={value}"))
    said = str(refused.value)
    first, full_key = hydra_says.splitlines()[:2]
    assert said.splitlines()[:2] == [first, full_key], (said, hydra_says)
    assert f"full_key: {key}" in said


@pytest.mark.parametrize("overrides, message", [
    (["+dataset/augment=crop_flip", "+dataset.augment.foo=1"],
     "dataset.augment.foo: crop_flip has no argument 'foo'; it takes flip, padding"),
    (["+task.x=1"], "Key 'x' not in 'TaskConfig'"),
    (["model=dcgan", "+task.scorer_step=3"], "Key 'scorer_step' not in 'GANTaskConfig'"),
    (["+trainer.bptt=35"], "trainer.bptt is now task.bptt"),
])
def test_keys_added_to_class_nodes_and_tasks_are_checked_too(overrides, message):
    from dlrun.runner.sweep.checks import check_config

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_config(composed(*overrides))


def test_plus_still_adds_groups_and_settings_of_open_nodes_only():
    """``+`` adds a group without a default (recipes, augmentation); Hydra's own settings and
    a user's task without a schema are open by design; any other new key is refused."""
    from dlrun.runner.sweep.checks import check_config

    check_config(composed("+recipe=linear_regression"))
    check_config(composed("+dataset/augment=crop_flip", "dataset.augment.padding=2"))
    check_config(composed("+hydra.job.env_set.SOMETHING=1", hydra=True))
    check_config(OmegaConf.create({"task": {"_target_": "dlrun.runner.tasks.classify.ClassifyTask",
                                            "anything": 1}}))  # no schema: the task reads its own
    with pytest.raises(ConfigError, match="Key 'epocs' not in 'TrainerConfig'"):
        check_config(composed("+recipe=linear_regression", "+trainer.epocs=1", hydra=True))


# --- through the real dlrun command ---------------------------------------------------------
def nothing_started(res) -> bool:
    """No run folder got its config, checkpoints or results (the run was refused up front)."""
    written = [p for folder in res.run_dirs() for p in folder.iterdir()
               if p.name in ("config.yaml", "checkpoints", "model.npz", "results.json")]
    return written == []


def test_a_config_file_cannot_run_a_shell_command(run_dlrun, tmp_path):
    marker = tmp_path / "pwned"
    conf = tmp_path / "conf"
    (conf / "loss").mkdir(parents=True)
    (conf / "loss" / "shell.yaml").write_text(
        "_target_: dlrun.runner.records.subprocess.getoutput\n"
        f"cmd: \"touch {marker}\"\n")
    res = run_dlrun("--config-dir", str(conf), "loss=shell", "trainer.epochs=1", "logger=none")
    assert res.returncode == 1, res
    assert not marker.exists(), "the command ran"
    assert ("loss._target_='dlrun.runner.records.subprocess.getoutput' is defined in subprocess, "
            "not in dlrun or allowed_targets") in res.stderr, res
    assert "Traceback" not in res.output
    assert nothing_started(res)


@pytest.mark.parametrize("args, message", [
    (["+trainer.epocs=3", "model=mlp"], "Key 'epocs' not in 'TrainerConfig'\n    full_key: trainer.epocs"),
    (["+foo=bar"], "Key 'foo' not in 'Config'\n    full_key: foo"),
    (["+model.foo=1"], "model.foo: LeNet has no argument 'foo'"),
])
def test_a_typo_added_with_plus_stops_the_run_before_it_starts(run_dlrun, args, message):
    res = run_dlrun(*args, "trainer.epochs=1", "logger=none")
    assert res.returncode == 1, res
    assert message in res.stderr, res
    assert "Traceback" not in res.output
    assert nothing_started(res), res
    assert "epoch" not in res.stdout


def test_a_sweep_with_a_typo_added_with_plus_runs_no_trial(run_dlrun, tmp_path):
    res = run_dlrun("-m", "+trainer.epocs=1,2", "model=mlp", "trainer.epochs=1", "logger=none")
    assert res.returncode == 1, res
    assert "Key 'epocs' not in 'TrainerConfig'" in res.stderr, res
    assert not list((tmp_path / "outputs").rglob("results.json"))
    assert not list((tmp_path / "outputs").rglob("trial.json"))
