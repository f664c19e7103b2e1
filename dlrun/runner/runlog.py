"""The run's own story in ``<run>/dlrun.log`` (``dlrun.rank<r>.log`` for rank r > 0): Hydra's
job logging writes the root logger there, in every run, sweep trial and rank. Besides what the
console shows (``console.LOG``) and the libraries' log lines, a run logs here how it was
started and where (the command, the versions, the threads, the device), its resolved config,
warnings, and on failure the error with its traceback.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from omegaconf import OmegaConf

from dlrun.parallel.launch import THREAD_VARIABLES

from .explain import versions

LOG = logging.getLogger("dlrun.run")


def to_log_file() -> bool:
    """Whether the root logger writes to a file only (Hydra's job logging of a run), so that
    nothing logged here reaches the console twice."""
    handlers = logging.getLogger().handlers
    return bool(handlers) and all(isinstance(h, logging.FileHandler) for h in handlers)


def log_start(cfg: Any, ctx: Any, world: Any) -> None:
    """How the run was started and on what: the command, the versions, the threads, the
    device and the data-parallel rank, then the resolved config."""
    threads = ", ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ)
    LOG.info("command: %s", " ".join(sys.argv))
    LOG.info("versions: %s", versions())
    LOG.info("environment: %d CPU cores%s; device %s; rank %d of %d", os.cpu_count() or 1,
             f" ({threads})" if threads else "", ctx, world.rank, world.size)
    LOG.info("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))


def log_failure(text: str, error: BaseException | None) -> None:
    """The run's end in the log: ``text`` as the user sees it, with the traceback of ``error``."""
    if to_log_file():
        LOG.error("%s", text, exc_info=error if error is not None and error.__traceback__ else None)
