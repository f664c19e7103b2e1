"""Checks before any trial of a sweep runs: every job's config composes, has no key its
schemas do not know, and its ``_target_`` nodes take their arguments; a mistake ends the
sweep with one message (exit 1)."""
from __future__ import annotations

from typing import Any, Sequence

from omegaconf import DictConfig

from ..build import ConfigError, check_config, in_debug_mode  # check_config: what a run checks first
from ..console import error as print_error
from ..interrupt import INTERRUPTS, Interrupted, is_interrupt, signal_name
from .trial import SweepError

__all__ = ["check_config", "check_job", "clean_hydra_error", "report_sweep_error"]


def check_job(config_loader: Any, config: DictConfig, overrides: Sequence[str],
              culprit: str | None = None) -> None:
    """Composes the config of one job and checks it; raises SweepError naming the job."""
    what = culprit or " ".join(overrides)
    try:
        cfg = config_loader.load_sweep_config(master_config=config,
                                              sweep_overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the key
        if is_interrupt(e):  # a second Ctrl-C, which Hydra's loading turns into its own error
            raise Interrupted(signal_name(e)) from e
        raise SweepError(f"{what}: {clean_hydra_error(e)}") from None
    INTERRUPTS.check()  # a Ctrl-C during the composition: the sweep stops before its trials
    try:
        check_config(cfg)
    except ConfigError as e:
        raise SweepError(f"{what}: {e}") from None


def clean_hydra_error(error: BaseException) -> str:
    """Hydra's message and its cause's (which says what is wrong with the value), one line."""
    parts = []
    while error is not None and len(parts) < 3:
        text = " ".join(line.strip() for line in str(error).strip().splitlines()
                        if line.strip() and not line.strip().startswith(
                            ("full_key:", "object_type=", "reference_type=")))
        if text and text not in parts:
            parts.append(text)
        error = error.__cause__
    return ": ".join(parts) or "the config does not compose"


def report_sweep_error(error: SweepError, config: DictConfig | None) -> None:
    """Ends the sweep with ``error``: one message and exit 1 (the traceback with debug=true)."""
    if in_debug_mode(config):
        raise error
    print_error(str(error))
    raise SystemExit(1)
