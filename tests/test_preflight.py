"""Distributed mistakes caught before MPI starts (issue 19, item 6): one dlrun line, no rank's
copy of it and no MPI_Abort; more workers than cores or a batch larger than the data warn."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from dlrun.runner.build import ConfigError
from dlrun.runner.preflight import check_job, warn_large_batch


def job(workers: int, task: str = "classify.ClassifyTask", **distributed) -> object:
    return OmegaConf.create({
        "task": {"_target_": f"dlrun.runner.tasks.{task}"},
        "device": {"type": "cpu", "id": 0}, "trainer": {"batch_size": 64},
        "distributed": {"workers": workers, "hosts": [], "hostfile": None, "scale_batch": True,
                        "allow_resize": False, **distributed}})


def test_a_single_process_task_is_refused_before_the_job(monkeypatch):
    with pytest.raises(ConfigError, match="the tree_sentiment task trains in one process only"):
        check_job(job(2, "tree_sentiment.TreeSentimentTask"), {"task": "tree_sentiment"}, None)


def test_more_workers_than_cores_warn(monkeypatch, capsys):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    check_job(job(2), {}, None)
    assert "warning" not in capsys.readouterr().err
    check_job(job(3), {}, None)
    assert "distributed.workers=3 on a machine of 2 CPU cores" in capsys.readouterr().err


def test_a_batch_larger_than_the_training_set_warns(capsys):
    data = SimpleNamespace(train=np.zeros((100, 3)))
    warn_large_batch(64, data)
    assert capsys.readouterr().err == ""
    warn_large_batch(128, data)
    assert "larger than the training set (100)" in capsys.readouterr().err


def test_the_command_says_it_once_before_mpi(run_dlrun):
    done = run_dlrun("model=mlp", "trainer.epochs=1", "logger=none")
    assert done.returncode == 0, done
    (folder,) = done.run_dirs()
    for args in (["model=treelstm", "distributed.workers=2", "logger=none"],
                 [f"resume={folder}", "trainer.epochs=2", "distributed.workers=2"]):
        refused = run_dlrun(*args)
        assert refused.returncode == 1, refused
        assert [line.startswith("error: ") for line in refused.stderr.splitlines()] == [True], refused
        assert "MPI" not in refused.output and "rank" not in refused.output, refused
