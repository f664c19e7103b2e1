"""Errors in dlrun's voice and the small things a user sees at once (issue 19, items 2 and 8):
a config error is one dlrun message with the ``debug=true`` hint, never Hydra's format or a
traceback; ``dlrun --version`` is dlrun's; counts read "1 epoch"; SIGTERM exits 143."""
from __future__ import annotations

import signal

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from dlrun.runner.config import register_configs
from dlrun.runner.console import ConsoleReporter, make_console, plural
from dlrun.runner.explain import explain
from dlrun.runner.interrupt import exit_status
from dlrun.runner.sweep import register_resolvers


def composed_error(*overrides: str) -> Exception:
    """What Hydra raises composing dlrun's config with ``overrides``."""
    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module("dlrun.conf", version_base="1.3"):
        with pytest.raises(Exception) as caught:
            compose("config", overrides=list(overrides))
    return caught.value


@pytest.mark.parametrize("override, says", [
    ("trainer.epocs=3", "Key 'epocs' not in 'TrainerConfig'"),
    ("trainer.epochs=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
    ("trainer.epochs=[1", "cannot read the override 'trainer.epochs=[1'"),
])
def test_a_composition_error_is_one_line_without_hydras_internals(override, says):
    text = explain(composed_error(override))
    assert says in text and "\n" not in text, text
    assert "full_key" not in text and "HYDRA_FULL_ERROR" not in text


def test_an_unknown_option_keeps_hydras_list_of_options():
    text = explain(composed_error("model=lenett"))
    assert "Could not find 'model/lenett'" in text and "\tlenet" in text.splitlines()
    assert "provider=" not in text


def test_a_yaml_error_names_the_file_line_and_column():
    try:
        yaml.safe_load("a: [1,\nb: 2\n")
    except yaml.YAMLError as e:
        text = explain(e)
    assert "line 3, column 1 is not valid YAML: expected ',' or ']'" in text and "\n" not in text


def test_plurals_and_exit_statuses():
    assert (plural(1, "epoch"), plural(3, "epoch"), plural(0, "epoch")) == ("1 epoch", "3 epochs", "0 epochs")
    assert exit_status("SIGINT") == 130 and exit_status("SIGTERM") == 128 + signal.SIGTERM == 143


def test_the_progress_line_counts_the_tasks_unit(capsys):
    reporter = ConsoleReporter(make_console(), interactive=False, plain_interval=0.0)
    reporter.start(2, 10, [("tokens/s", "train/tokens_per_sec", "{:,.0f}")])
    reporter.epoch_start(1)
    reporter.step(1, 1, 35, 5.0)
    assert "tokens/s" in capsys.readouterr().out


def test_the_command_speaks_dlrun(run_dlrun, tmp_path):
    version = run_dlrun("--version")
    assert version.returncode == 0 and version.stdout.startswith("dlrun ") and "NumPy" in version.stdout
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "bad.yaml").write_text("a: [1,\nb: 2\n")
    for args in (["--config-dir", str(tmp_path / "mine"), "model=bad"], ["model=lenett"],
                 ["dataset=text", "logger=none"]):
        done = run_dlrun(*args)
        assert done.returncode == 1 and "Traceback" not in done.output, done
        assert "HYDRA_FULL_ERROR" not in done.output and "debug=true" in done.stderr, done
        assert done.stderr.startswith("error: "), done
        assert "bad.yaml, line 3, column 1" in done.stderr or "model=bad" not in args
