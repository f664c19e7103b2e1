"""``dlrun resume=RUN``: the config a run started with, the allowed overrides on top, and the
checkpoint to continue from."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from .checkpoint import Checkpoint, config_hash, load_checkpoint

# what a resumed run may change; anything else would make it another experiment
CHANGEABLE = ("trainer.", "logger.", "logger=", "device.", "device=", "debug=", "distributed.")
IDENTITY_EXCLUDED = ("trainer", "logger", "device", "debug", "resume", "distributed")


class ResumeError(ValueError):
    """``resume=`` cannot continue the run it names (the message says why and what to do)."""


def identity_hash(cfg: Any) -> str:
    """The hash of what makes a run the run it is: everything but how it trains and logs."""
    node = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return config_hash(OmegaConf.to_yaml({k: v for k, v in node.items() if k not in IDENTITY_EXCLUDED}))


def resumed_config(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, Checkpoint]:
    """The run's saved config with ``overrides`` (the command line's, ``resume=`` aside)
    applied, and its checkpoint; raises ResumeError for a change that is not allowed."""
    ckpt = load_checkpoint(cfg.resume)
    run_dir = ckpt.run_dir
    saved = run_dir / "config.yaml" if run_dir is not None else None
    if saved is None or not saved.is_file():
        raise ResumeError(f"{ckpt.source} is not inside a run folder with its config.yaml; give the "
                          "run folder (outputs/runs/<date>/<time>) or a checkpoint inside it")
    changes = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "resume"]
    refused = [o for o in changes if not o.lstrip("+~").startswith(CHANGEABLE)]
    if refused:
        raise ResumeError(f"resume={cfg.resume} cannot change {', '.join(refused)}: a resumed run "
                          "keeps its model, data, loss, optimizer, schedule and seed; only "
                          "trainer.*, logger.*, device.*, distributed.* and debug may change (e.g. trainer.epochs=20). "
                          "Start a new run for anything else.")
    from .config import Config

    # the schema checks the overrides' types; the saved nodes replace the default choices
    keys = [o.lstrip("+~").split("=", 1)[0] for o in changes]
    merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(saved))
    for key in keys:
        if "." not in key:  # a group choice (logger=none) or a top-level value: as composed now
            merged[key] = cfg[key]
    merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(
        [o.lstrip("+") for o, key in zip(changes, keys) if "." in key]))
    merged.resume = str(cfg.resume)
    if identity_hash(merged) != ckpt.config_hash:
        raise ResumeError(f"{saved} no longer matches the checkpoint {ckpt.source.name} (the "
                          "config was edited since): resuming would not continue the same run")
    return merged, ckpt


def resumed_choices(run_dir: Path) -> dict[str, str]:
    """The config-group choices the run was started with (from its Hydra record)."""
    record = run_dir / ".hydra" / "hydra.yaml"
    if not record.is_file():
        return {}
    choices = OmegaConf.load(record).hydra.runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v is not None}
