"""Console output that survives logs (issue 16): when stdout is not a terminal nothing is
broken at a width, whatever ``$COLUMNS`` says, so that a log file keeps a run folder or an
error message whole on its line; on a terminal rich wraps as before."""
from __future__ import annotations

import io
import re
import sys

import pytest

from dlrun.runner.console import ConsoleReporter, error, make_console

from .conftest import clean_env

LONG = "/tmp/" + "/".join(["a" * 60, "b" * 60, "c" * 70])  # 200 characters
MESSAGE = "the checkpoint " + LONG + " was written by another run"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def columns(monkeypatch):
    """A narrow terminal width in the environment, and nothing that forces a terminal."""
    monkeypatch.setenv("COLUMNS", "40")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_off_a_terminal_no_line_is_broken_at_the_width(columns, monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    console = ConsoleReporter()
    assert not console.interactive
    console.header("dlrun", [("run", LONG), ("optimizer", " ".join(["sgd"] * 30))])
    console.start(1, 10)
    console.epoch_end({"epoch": 1, "train/loss": 0.5})
    console.results("Results", [("test accuracy", "97.50%"), ("note", "x" * 150)],
                    [f"run folder: {LONG}"])
    error(MESSAGE, hint="run again with debug=true to see the full traceback")
    lines = out.getvalue().splitlines()
    assert f"  run        {LONG}" in lines
    assert f"run folder: {LONG}" in lines
    assert any(line.startswith("  optimizer  sgd") and line.count("sgd") == 30 for line in lines)
    assert any("x" * 150 in line for line in lines)  # a table as wide as its cells
    assert all(line == line.rstrip() for line in lines)  # and nothing padded to a width
    assert err.getvalue().splitlines() == [f"error: {MESSAGE}",
                                           "run again with debug=true to see the full traceback"]


def test_on_a_terminal_rich_wraps_at_its_width_as_before(columns, monkeypatch):
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    out, err = make_console(), make_console(stderr=True, soft_wrap=True)
    assert out.is_terminal and (out.width, out.soft_wrap) == (40, False)
    assert err.is_terminal and (err.width, err.soft_wrap) == (40, True)  # the terminal folds
    console = ConsoleReporter()
    console.header("dlrun", [("optimizer", " ".join(["sgd"] * 30))])
    console.close()
    lines = re.sub(r"\x1b\[[0-9;]*m", "", sys.stdout.getvalue()).splitlines()  # bold, dim
    assert len(lines) > 3 and all(len(line) <= 40 for line in lines)


@pytest.mark.parametrize("width", [None, "40"], ids=["no-COLUMNS", "COLUMNS=40"])
def test_a_long_run_folder_and_a_long_error_stay_on_one_line(run_dlrun, tmp_path, width):
    env = clean_env()
    env.pop("COLUMNS", None)
    if width:
        env["COLUMNS"] = width
    rel = "/".join(["a" * 60, "b" * 60, "c" * 78])
    assert len(rel) == 200
    done = run_dlrun("model=mlp", "trainer.epochs=1", "logger=none", f"hydra.run.dir={rel}",
                     env=env)
    assert done.returncode == 0, done
    folder = tmp_path / rel
    assert (folder / "model.npz").is_file()
    lines = done.stdout.splitlines()
    assert f"run folder: {folder}" in lines, done
    assert any(line.split() == ["run", str(folder)] for line in lines), done  # the header's

    refused = run_dlrun(f"resume={folder}/checkpoints/nothing.json", env=env)
    assert refused.returncode == 1, refused
    (message,) = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(message) > 80 and f"{folder}/checkpoints/nothing.json" in message, refused
