"""Checks before any trial of a sweep runs: every job's config composes and its ``_target_``
nodes take their arguments; a mistake ends the sweep with one message (exit 1)."""
from __future__ import annotations

from typing import Any, Sequence

from omegaconf import DictConfig

from ..build import ConfigError, allow_targets, check_node, in_debug_mode, target_of
from ..console import error as print_error
from .trial import SweepError


def check_config(cfg: DictConfig) -> None:
    """The arguments of every ``_target_`` node of a composed config, against its class
    (a node may name a class of a package in the config's ``allowed_targets``)."""
    allow_targets(cfg.get("allowed_targets") or [])
    for key, node in cfg.items():
        if key == "task":  # its settings (task.bptt) are the task's to read, not arguments
            target_of(node, "task")
        elif key != "hydra" and isinstance(node, DictConfig) and "_target_" in node:
            check_node(node, str(key))


def check_job(config_loader: Any, config: DictConfig, overrides: Sequence[str],
              culprit: str | None = None) -> None:
    """Composes the config of one job and checks it; raises SweepError naming the job."""
    what = culprit or " ".join(overrides)
    try:
        cfg = config_loader.load_sweep_config(master_config=config,
                                              sweep_overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the key
        raise SweepError(f"{what}: {clean_hydra_error(e)}") from None
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
