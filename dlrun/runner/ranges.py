"""The allowed range of each number the runner reads itself (``trainer.epochs=0`` is refused
before anything starts, naming the key and its range), and settings that cannot go together;
``dlrun.runner.build.check_config`` asks :func:`out_of_range` and :func:`conflict`."""
from __future__ import annotations

from typing import Any

# key -> (lowest, highest, what it means); None: no bound. Checked with the rest of the
# config, before anything starts, so a bad value is one message naming the key rather than a
# late ValueError and a FAILED run. A null value (an Optional key) means the default and is
# not checked.
RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "trainer.epochs": (1, None, "the number of passes over the training data"),
    "trainer.batch_size": (1, None, "examples per training step"),
    "trainer.eval_batch_size": (1, None, "examples per evaluation batch (null: batch_size)"),
    "trainer.log_every": (1, None, "steps between training-loss reports"),
    "trainer.val_every": (0, None, "epochs between validations (0: the last epoch only)"),
    "trainer.val_every_steps": (1, None, "optimizer steps between validations (null: epochs decide)"),
    "trainer.accumulate_steps": (1, None, "batches whose gradients make one update"),
    "trainer.ema_decay": (0, 1, "the weight average's decay (null: no average)"),
    "trainer.early_stopping.patience": (0, None, "validations without improvement (null: off)"),
    "trainer.early_stopping.min_delta": (0, None, "the least change that counts as an improvement"),
    "trainer.checkpoint.keep_best": (0, None, "how many of the best validations' parameters are kept"),
    "trainer.checkpoint_every": (0, None, "steps between checkpoints (0: at each epoch's end)"),
    "trainer.max_steps": (1, None, "optimizer steps before the run stops (null: the epochs decide)"),
    **{f"trainer.limit_{split}_batches": (0, None, f"{what}: a count, or a fraction below 1")
       for split, what in (("train", "training batches per epoch"),
                           ("val", "batches of each validation"), ("test", "batches of the test"))},
    "trainer.keep_checkpoints": (0, None, "newest checkpoints kept (0: none once the run finished)"),
    "trainer.max_nan_skips": (0, None, "skipped NaN steps before the run stops"),
    "trainer.wd": (0, None, "the weight-decay factor"),
    "trainer.clip_global_norm": (0, None, "the largest global gradient norm (null: no clipping)"),
    "device.id": (0, None, "the GPU's index"),
    "distributed.workers": (1, None, "data-parallel processes"),
    "distributed.warmup_steps": (0, None, "steps of the learning-rate ramp"),
    "distributed.bucket_mb": (0, None, "the size of an all-reduce buffer in MB"),
}


def out_of_range(cfg: Any) -> str | None:
    """What to say about the first value of :data:`RANGES` that ``cfg`` sets out of its range;
    else None. ``clip_global_norm``, ``bucket_mb``, ``ema_decay`` and the ``limit_*_batches``
    must be above their lowest value (``ema_decay`` below its highest too), the others at
    least their lowest value."""
    from omegaconf import OmegaConf

    for key, (low, high, what) in RANGES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        strict = key in ("trainer.clip_global_norm", "distributed.bucket_mb",
                         "trainer.ema_decay") or key.startswith("trainer.limit_")
        below = low is not None and (value <= low if strict else value < low)
        above = high is not None and (value >= high if strict else value > high)
        if below or above:
            if strict:
                allowed = f"above {low}" + (f" and below {high}" if high is not None else "")
            elif high is None:
                allowed = f"at least {low}" if low else f"{low} or more"
            else:
                allowed = f"from {low} to {high}"
            return f"{key}={value} is out of range: {key} ({what}) must be {allowed}"
    return None


def conflict(cfg: Any) -> str | None:
    """What to say about settings of ``cfg`` that cannot work together; else None:
    ``trainer.val_every_steps`` replaces ``trainer.val_every`` (which then stays at 1)."""
    from omegaconf import OmegaConf

    steps = OmegaConf.select(cfg, "trainer.val_every_steps", default=None)
    every = OmegaConf.select(cfg, "trainer.val_every", default=1)
    if steps is not None and every != 1:
        return (f"trainer.val_every_steps={steps} validates every {steps} steps instead of every "
                f"trainer.val_every={every} epochs; set one of them: leave trainer.val_every at 1 "
                "or set trainer.val_every_steps=null")
    return None
