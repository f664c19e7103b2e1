"""dlrun's Hydra sweepers: ``hydra/sweeper=dlrun_basic`` (grids that survive failing trials)
and ``hydra/sweeper=dlrun_optuna`` (an Optuna study on the ask/tell interface, resumable).

Hydra finds them by scanning the ``hydra_plugins`` namespace package; the modules it imports
at every start (this one and ``sweepers``) stay light, Optuna is imported when a sweep starts.
"""
