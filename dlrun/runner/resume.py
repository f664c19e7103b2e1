"""``dlrun resume=RUN``: the config a run started with, the allowed overrides on top, and the
checkpoint to continue from."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from .checkpoint import Checkpoint, config_hash, load_checkpoint
from .console import plural

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


def check_epochs(ckpt: Checkpoint, epochs: int, run_dir: Path) -> bool:
    """Whether ``ckpt`` can continue a run of ``epochs`` epochs (raises ResumeError if not);
    True when its epochs are all done but the run did not end (no results.json: it was
    stopped after its last checkpoint, say at model.npz by a full disk), so that resuming
    only finishes it: the final evaluation, the outputs and the MLflow run's end."""
    done = ckpt.epoch - 1  # the epochs the checkpoint completed
    if ckpt.epoch <= epochs:
        return False
    if (run_dir / "results.json").is_file():
        raise ResumeError(f"the run already finished its {plural(done, 'epoch')}; to train on, resume "
                          f"with trainer.epochs={ckpt.epoch} or more")
    if ckpt.epoch > epochs + 1 or ckpt.batch > 0:
        needed = ckpt.epoch if ckpt.batch > 0 else done
        raise ResumeError(f"{ckpt.source} is {ckpt.batch} batches into epoch {ckpt.epoch}, beyond "
                          f"trainer.epochs={epochs}; resume with trainer.epochs={needed} or more")
    return True


def check_tracked(ckpt: Checkpoint, run_dir: Path, lookup: Any, spooled: bool) -> None:
    """The MLflow run the checkpoint names (``lookup``: a runstore.RunLookup, or None without
    a store) is this run folder's, and has the steps up to the checkpoint's (unless records
    still wait in the folder's spool, ``spooled``); raises ResumeError otherwise. A store that
    cannot be reached is not asked: the resumed run spools for it."""
    run_id = ckpt.state.get("mlflow_run_id")
    if lookup is None or run_id is None or lookup.unreachable is not None:
        return
    where = f"{ckpt.source} names MLflow run {run_id}"
    if lookup.run is None:
        raise ResumeError(f"{where}, which the store {lookup.uri} does not hold: resume with the "
                          "store the run was tracked in (logger.tracking_uri=...), or logger=none")
    tagged = lookup.run.tags.get("dlrun.run_dir")
    if tagged and _same_folder(Path(tagged), run_dir) is False:
        raise ResumeError(f"{where}, which belongs to the run folder {tagged}, not {run_dir}: a "
                          "copied run folder would write into another run's MLflow run. Resume "
                          f"{tagged} itself, or this copy with logger=none")
    last = lookup.run.steps.get("train/step_loss", 0)
    behind = int(ckpt.state.get("loop", {}).get("nan_skips", 0))  # steps skipped log nothing
    if not spooled and last + behind < ckpt.step:
        raise ResumeError(f"{where}, whose training losses end at step {last}, but the checkpoint "
                          f"says step {ckpt.step} (a checkpoint comes after its steps are logged): "
                          "it was edited or belongs to another run; resume from another checkpoint")


def _same_folder(tagged: Path, run_dir: Path) -> bool | None:
    """Whether the folder an MLflow run was tagged with is ``run_dir``; None when it no longer
    exists (the run folder was moved: it goes on where it is now)."""
    if not tagged.is_dir():
        return None
    return tagged.resolve() == run_dir.resolve()
