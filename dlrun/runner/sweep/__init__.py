"""Sweeps (``dlrun -m ...``): one trial (a run) per point, one MLflow parent run over them.

    resolvers  what a sweep reads from Hydra's config (trial folders, trial numbers, ...)
    trial      in each trial's process: its tags, ``trial.json`` and return value (TrialScope)
    table      the results table: rows, their order, the printed table, ``sweep_results.csv``
    session    in the launching process: the MLflow parent run, from creation to the end
    checks     every job's config composes before any trial runs
    grid       the grid sweeper's loop, and launching a batch of trials that survives a death
    space      an Optuna search space from Hydra's override syntax
    optuna     the Optuna sweeper's work (imports Optuna: only when an Optuna sweep starts)

Hydra's plugins (``hydra_plugins/dlrun_sweepers``) register the sweepers and delegate here.
"""
from .resolvers import in_multirun, register_resolvers, trial_dir_name
from .session import SweepCallback
from .table import TrialRow, command_for, order_rows
from .trial import SweepError, TrialFailed, TrialScope, direction_for

__all__ = ["SweepCallback", "SweepError", "TrialFailed", "TrialRow", "TrialScope", "command_for",
           "direction_for", "in_multirun", "order_rows", "register_resolvers", "trial_dir_name"]
