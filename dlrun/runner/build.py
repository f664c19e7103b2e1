"""Building pieces from config nodes: ``_target_`` with its arguments, checked first.

A config builds dlrun's own classes only (and those of the packages ``allowed_targets``
names), so that a config file cannot run arbitrary code. ``ConfigError`` is what every
bad node raises: it names the key and how to fix it.
"""
from __future__ import annotations

import os
import random
from typing import Any, Mapping, Sequence

import numpy as np
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from dlrun.data.errors import DataError

from .config import ArgumentError, check_arguments, class_arguments


class ConfigError(ValueError):
    """A config value names something that cannot be built (bad ``_target_`` or arguments)."""


# --- building pieces from config nodes ----------------------------------------------------
def build(node: Any, key: str, **extra: Any) -> Any:
    """Calls ``node._target_`` with the node's other keys (nested ``_target_`` nodes built first).

    ``key`` is the node's place in the config (for messages); ``extra`` are arguments the
    runner adds (the schedule of an optimizer, what the data decides for a model). A null
    value means the class's own default, or the runner's value where it adds one. The
    runner's own keys of the node (``model.hybridize``, see ``config.RUNNER_KEYS``) are left out.
    """
    spec = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return _build(spec, key, extra)


def check_node(node: Any, key: str) -> None:
    """Argument names and value types of a ``_target_`` node, before anything is built."""
    fn, _, spec = _resolve(OmegaConf.to_container(node, resolve=True), key)
    try:
        check_arguments(fn, spec, key)
    except ArgumentError as e:
        raise ConfigError(str(e)) from None


def target_of(node: Any, key: str) -> Any:
    """The class or function a ``_target_`` node names (checked against the allow-list)."""
    return _resolve(OmegaConf.to_container(node, resolve=True), key)[0]


def data_model_args(model: Any, data: Any) -> dict:
    """The model arguments the data decides (``data.model_args``) that the config leaves null."""
    return {k: v for k, v in getattr(data, "model_args", {}).items()
            if k in model and model[k] is None}


# runner-supplied arguments and the config key a user sets them with
extra_sources = {"wd": "trainer.wd", "lr_scheduler": "the schedule group (schedule=...)"}


# a config builds dlrun's own classes only (a config file must not be able to call os.system);
# `allowed_targets` in the config adds namespaces (e.g. [mypkg.models.])
TARGET_NAMESPACES = ["dlrun."]


def allow_targets(prefixes: Sequence[str]) -> None:
    """Let ``_target_`` name callables under ``prefixes`` too (the config's allowed_targets)."""
    TARGET_NAMESPACES[1:] = [str(p) for p in prefixes]


def _resolve(spec: dict, key: str) -> tuple[Any, str, dict]:
    """(the callable, its name, its arguments) of a ``_target_`` node."""
    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key} has no _target_ (the class or function to build)")
    if not str(target).startswith(tuple(TARGET_NAMESPACES)):
        raise ConfigError(f"{key}._target_={target!r} is outside the namespaces dlrun builds from "
                          f"({', '.join(TARGET_NAMESPACES)}), so that a config cannot run arbitrary "
                          f"code; to build your own class, add its package to allowed_targets "
                          f"(e.g. 'allowed_targets=[{str(target).rsplit('.', 1)[0]}.]')")
    try:
        return get_object(target), target, spec
    except Exception as e:  # ImportError, AttributeError, hydra's own wrapping
        raise ConfigError(f"{key}._target_={target!r} cannot be imported: {e}") from e


def _build(spec: dict, key: str, extra: Mapping[str, Any]) -> Any:
    fn, target, spec = _resolve(spec, key)
    # null: the class's own default; the runner's own keys (model.hybridize) are not arguments
    spec = {k: v for k, v in class_arguments(spec, key).items() if v is not None}
    clash = sorted(set(spec) & set(extra))
    if clash:
        raise ConfigError(f"{key}.{clash[0]} is set by the runner; set it through "
                          f"{extra_sources.get(clash[0], 'its own key')} instead")
    args = {k: _build(v, f"{key}.{k}", {}) if isinstance(v, dict) and "_target_" in v else v
            for k, v in spec.items()}
    args.update(extra)
    try:
        return fn(**args)
    except (ValueError, TypeError) as e:
        if isinstance(e, DataError):  # the data layer's messages say what to do already
            raise
        raise ConfigError(f"{key} ({target}): {e}") from e


def seed_everything(seed: int) -> None:
    """Seeds every random source of a run: python, numpy and the engine's generators."""
    from dlrun.engine import random as engine_random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    engine_random.seed(seed)


def make_context(device: Any) -> Any:
    """The engine context of the ``device`` group (``gpu`` fails loudly when there is none)."""
    from dlrun.engine import cpu, gpu

    kind = getattr(device.type, "value", device.type)
    return gpu(int(device.id)) if kind == "gpu" else cpu(int(device.id))


def in_debug_mode(cfg: DictConfig | None = None) -> bool:
    """Whether errors should show their full traceback."""
    env = os.environ.get("HYDRA_FULL_ERROR", "")
    return env not in ("", "0") or bool(cfg is not None and cfg.get("debug", False))
