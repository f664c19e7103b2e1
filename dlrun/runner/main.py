"""The ``dlrun`` command: Hydra composes the config from ``dlrun/conf``, the runner runs it.

    dlrun                                  # LeNet on the embedded digits, tracked in MLflow
    dlrun model=mlp optimizer=adam trainer.epochs=3
    dlrun --help                           # groups, options and the composed config

Errors end with one message and a non-zero exit; ``debug=true`` (or HYDRA_FULL_ERROR=1)
shows the full Python traceback instead. Only light modules are imported here, so that
``dlrun --help`` answers quickly: the engine, the data and mlflow load when a run starts.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from .config import register_configs

_DEBUG_ARG = re.compile(r"\+*debug=(true|True|TRUE|yes|1)")


def _report(error: BaseException) -> int:
    """Prints ``error`` for the user; returns the exit code."""
    from dlrun.data.errors import DataError
    from dlrun.engine import ContextError

    from .console import error as print_error
    from .experiment import ConfigError
    from .tasks import DivergenceError, UnknownTaskError
    from .tracking import TrackingError

    hint = "run again with debug=true to see the full traceback"
    if isinstance(error, (ContextError, DataError, ConfigError, TrackingError, DivergenceError,
                          UnknownTaskError)):
        print_error(str(error))
    elif isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        print_error(str(error))
    else:
        print_error(f"{type(error).__name__}: {error}", hint)
    return 1


@hydra.main(config_path="pkg://dlrun.conf", config_name="config", version_base="1.3")
def _run(cfg: DictConfig) -> Any:
    from .experiment import in_debug_mode, run

    try:
        return run(cfg)
    except KeyboardInterrupt:
        if in_debug_mode(cfg):
            raise
        from .console import error as print_error

        print_error("interrupted")
        raise SystemExit(130) from None
    except Exception as e:
        if in_debug_mode(cfg):
            raise
        raise SystemExit(_report(e)) from None


def main() -> None:
    """Console-script entry point (``dlrun``)."""
    if any(_DEBUG_ARG.fullmatch(arg) for arg in sys.argv[1:]):
        # errors while composing the config happen before `debug` is known: let Hydra show them in full
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    register_configs()
    _run()


if __name__ == "__main__":
    main()
