"""Config schemas of dlrun's sweepers (registered under ``hydra/sweeper``) and the sweepers,
thin faces of ``dlrun.runner.sweep`` (the grid's loop in ``grid``, the Optuna sweeper's work
in ``optuna``).

Hydra imports this module whenever it starts, so it imports nothing heavy: the sweepers'
work is imported when a sweep starts.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins import basic_sweeper
from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class Direction(Enum):
    maximize = "maximize"
    minimize = "minimize"


@dataclass
class DlrunBasicSweeperConf:
    """Hydra's basic sweeper (grids, ``range``, ``choice``) that goes on past failing trials."""

    _target_: str = "hydra_plugins.dlrun_sweepers.sweepers.DlrunBasicSweeper"
    max_batch_size: Optional[int] = None     # jobs handed to the launcher at once (null: all)
    params: Optional[Dict[str, str]] = None  # sweep overrides given in config: {key: "a,b,c"}
    # the metric the results table ranks by; null: what the runs return (the task's primary)
    metric: Optional[str] = None
    # null: the direction the task declares for its primary metric (any other metric needs one)
    direction: Optional[Direction] = None


@dataclass
class DlrunOptunaSweeperConf:
    """An Optuna study over the space that ``params`` declares in Hydra's override syntax."""

    _target_: str = "hydra_plugins.dlrun_sweepers.sweepers.DlrunOptunaSweeper"
    metric: str = "eval/accuracy"            # the run's metric to optimise (its MLflow name)
    direction: Direction = Direction.maximize
    n_trials: int = 20                       # trials of the study in all, resumed runs included
    n_jobs: int = 1                          # trials asked for and launched at once
    study_name: str = "dlrun"
    # any SQLAlchemy URL; null: sqlite:///<sweep dir>/optuna.db, so rerunning resumes the study
    storage: Optional[str] = None
    # the sampler, built with the seed (plus the number of trials already in the study)
    sampler: Any = field(default_factory=lambda: {
        "_target_": "optuna.samplers.TPESampler", "_partial_": True, "seed": 0})
    # the search space: {key: "interval(0.001, 0.1)" | "tag(log, interval(...))" | "choice(a, b)"
    # | "range(1, 10)" | "a,b,c" | a fixed value}
    params: Dict[str, str] = field(default_factory=dict)
    heartbeat_interval: int = 10             # seconds; a trial silent for 3 intervals is failed


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="dlrun_basic", node=DlrunBasicSweeperConf, provider="dlrun")
cs.store(group="hydra/sweeper", name="dlrun_optuna", node=DlrunOptunaSweeperConf, provider="dlrun")


class DlrunBasicSweeper(basic_sweeper.BasicSweeper):
    """Runs every combination like Hydra's basic sweeper; a failing trial does not end the
    sweep (it is FAILED in the table and in MLflow), and the sweep ends with the table."""

    def __init__(self, max_batch_size: Optional[int] = None,
                 params: Optional[Dict[str, str]] = None, metric: Optional[str] = None,
                 direction: Any = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.metric = metric
        self.direction = getattr(direction, "value", direction)

    def sweep(self, arguments: List[str]) -> Any:
        from dlrun.runner.sweep.grid import run_grid

        return run_grid(self, arguments)


class DlrunOptunaSweeper(Sweeper):
    """Hydra's face of the Optuna sweeper; the work is in ``dlrun.runner.sweep.optuna``."""

    def __init__(self, **kwargs: Any) -> None:
        from dlrun.runner.sweep.optuna import OptunaSweeperImpl  # imports Optuna: not at every start

        self.impl = OptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)


__all__: Sequence[str] = ["DlrunBasicSweeper", "DlrunOptunaSweeper", "DlrunBasicSweeperConf",
                          "DlrunOptunaSweeperConf", "Direction"]
