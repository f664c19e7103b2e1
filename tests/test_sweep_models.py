"""A sweep with ``logger.register_model=NAME`` (issue 21, item 2): every trial logs its MLflow
model, and only the best trial's becomes a version of NAME, once the sweep knows the best."""
from __future__ import annotations

import pytest

from .conftest import Completed

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")


def test_a_sweep_registers_the_best_trials_model_only(run_dlrun, tmp_path):
    res: Completed = run_dlrun("-m", "model=mlp", "trainer.epochs=1", "optimizer.lr=0.1,0.003",
                               "logger.register_model=swept", "experiment=sweep-models")
    assert res.returncode == 0, res
    assert "registered the best trial's model: models:/swept/1" in res.stdout
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (version,) = client.search_model_versions("name='swept'")
    exp = client.get_experiment_by_name("sweep-models")
    trials = [r for r in client.search_runs([exp.experiment_id])
              if r.data.tags.get("dlrun.sweep.role") != "parent"]
    assert len(trials) == 2 and all(len(r.outputs.model_outputs) == 1 for r in trials)
    (best,) = [r for r in trials if r.data.tags.get("dlrun.sweep.best") == "true"]
    assert version.run_id == best.info.run_id
    assert best.outputs.model_outputs[0].model_id in version.source  # models:/<its model id>
