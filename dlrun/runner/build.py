"""Building pieces from config nodes: ``_target_`` with its arguments, checked first.

A config builds dlrun's own classes only (and those of the packages ``allowed_targets``
names), so that a config file cannot run arbitrary code. ``ConfigError`` is what every
bad node raises: it names the key and how to fix it.
"""
from __future__ import annotations

import importlib
import inspect
import os
import random
import sys
import types
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dlrun.data.errors import DataError

from .config import ArgumentError, check_arguments, class_arguments, unknown_key
from .ranges import conflict, out_of_range


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


def check_config(cfg: DictConfig) -> None:
    """The whole composed config, before anything starts: no key its schemas do not know (one
    added with ``+``, say ``+trainer.epocs=3``), and every ``_target_`` node, nested ones too,
    names a class or function of dlrun or of the config's ``allowed_targets`` that takes its
    arguments. The task node's other keys are its settings, the task's to read. The numbers
    the runner reads itself are in their ranges (``ranges.RANGES``: ``trainer.epochs=0``)."""
    allow_targets(cfg.get("allowed_targets") or [])
    unknown = unknown_key(cfg)
    if unknown:
        raise ConfigError(unknown)
    bad = out_of_range(cfg) or conflict(cfg)  # numbers the runner reads itself (epochs=0, ...)
    if bad:
        raise ConfigError(bad)
    first = [k for k in ("model", "loss", "optimizer", "schedule", "dataset", "init") if k in cfg]
    for key in first + [k for k in cfg if k not in first]:  # the run's order of building
        node = cfg[key]
        if key == "hydra" or not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        if key == "task":
            target_of(node, "task")
        else:
            _check_nodes(node, str(key))
    for name, node in (cfg.get("callbacks") or {}).items():  # name -> a callback's node
        _check_nodes(node, f"callbacks.{name}")


def _check_nodes(node: DictConfig, key: str) -> None:
    check_node(node, key)
    for arg, value in node.items():
        if isinstance(value, DictConfig) and "_target_" in value:
            _check_nodes(value, f"{key}.{arg}")


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
    return locate_target(str(target), key), target, spec


# --- where a target is defined --------------------------------------------------------------
# A dotted path that starts with dlrun. can still lead out of dlrun through a module's own
# imports (dlrun.runner.records.subprocess.getoutput is subprocess's getoutput). So the path
# is walked here step by step, importing only modules inside the allowed namespaces and only
# looking into the others (no import, no __getattr__ of theirs runs), and what it reaches
# must be a class or a function *defined* inside them, found again at its definition.
def _namespaces() -> list[str]:
    return [p if p.endswith(".") else p + "." for p in TARGET_NAMESPACES]


def _inside(name: str) -> bool:
    """Whether the dotted ``name`` is in an allowed namespace (dlrun. or allowed_targets)."""
    return any(f"{name}.".startswith(p) for p in _namespaces())


def _on_the_way(module: str) -> bool:
    """Whether ``module`` is in an allowed namespace or a package above one (mypkg for mypkg.models.)."""
    return _inside(module) or any(p.startswith(f"{module}.") for p in _namespaces())


def _refuse(key: str, target: str, why: str) -> ConfigError:
    return ConfigError(f"{key}._target_={target!r} {why}: a config builds only classes and "
                       f"functions defined in dlrun or in the packages of allowed_targets "
                       f"({', '.join(TARGET_NAMESPACES)}), so that it cannot run arbitrary code")


def _static_lookup(obj: Any, name: str) -> Any:
    """``obj.name`` without running any code of ``obj``'s (its __getattr__, descriptors)."""
    if inspect.ismodule(obj):
        found = vars(obj)[name]
    else:
        try:
            found = inspect.getattr_static(obj, name)
        except AttributeError:
            raise KeyError(name) from None
    return found.__func__ if isinstance(found, (staticmethod, classmethod)) else found


def locate_target(target: str, key: str) -> Any:
    """The class or function ``target`` names, if dlrun or an allowed_targets package defines
    it; else ConfigError naming ``key``, the target and why."""
    parts = target.split(".")
    if not all(p.isidentifier() and not p.startswith("__") for p in parts):
        raise _refuse(key, target, "is not the dotted path of a class or function "
                                   "(package.module.Name, no __dunder__ names)")
    if not _on_the_way(parts[0]):
        raise _refuse(key, target, f"starts with {parts[0]}, not a package of dlrun or "
                                   "allowed_targets")
    try:
        obj = importlib.import_module(parts[0])  # the top package of an allowed namespace
    except Exception as e:  # ImportError, or the package's own error
        raise ConfigError(f"{key}._target_={target!r} cannot be imported: {e}") from e
    for i, part in enumerate(parts[1:], start=1):
        path = ".".join(parts[:i])
        if not (inspect.ismodule(obj) or inspect.isclass(obj)):
            raise _refuse(key, target, f"goes through {path}, a {type(obj).__name__} object "
                                       "(a path names modules and classes, then the target)")
        if (_on_the_way(obj.__name__) if inspect.ismodule(obj)
                else _inside(f"{obj.__module__}.{obj.__qualname__}")):
            # dlrun's or the user's own: a submodule not imported yet is imported, as Python would
            try:
                if inspect.ismodule(obj) and hasattr(obj, "__path__") and not hasattr(obj, part):
                    importlib.import_module(f"{obj.__name__}.{part}")
                obj = getattr(obj, part)
            except AttributeError:
                raise ConfigError(f"{key}._target_={target!r} cannot be imported: {path} has no "
                                  f"{part!r}") from None
            except Exception as e:  # ImportError, the module's own error
                raise ConfigError(f"{key}._target_={target!r} cannot be imported: "
                                  f"{type(e).__name__}: {e}") from e
        else:  # another package, reached through an import of an allowed module: look only
            try:
                obj = _static_lookup(obj, part)
            except KeyError:
                raise _refuse(key, target, f"goes through {path}, which is "
                                           f"{_what(obj)}") from None
    _check_definition(obj, target, key)
    return obj


def _what(obj: Any) -> str:
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}, not in dlrun or allowed_targets"
    return f"defined in {getattr(obj, '__module__', None)}, not in dlrun or allowed_targets"


def _check_definition(obj: Any, target: str, key: str) -> None:
    """A class or a function, defined in an allowed namespace, and found there again."""
    if inspect.ismodule(obj):
        raise _refuse(key, target, f"is the module {obj.__name__}, not a class or function")
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        name = f"{getattr(obj, '__module__', None) or ''}.{getattr(obj, '__qualname__', '?')}"
        builtin = (types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodWrapperType,
                   types.MethodDescriptorType, types.ClassMethodDescriptorType)
        what = (f"the builtin {name.lstrip('.')}" if isinstance(obj, builtin)
                else f"a {type(obj).__name__} object")
        raise _refuse(key, target, f"is {what}, not a class or function")
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not isinstance(module, str) or not _inside(f"{module}.{qualname}"):
        raise _refuse(key, target, f"is defined in {module}, not in dlrun or allowed_targets")
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = vars(found).get(part) if inspect.ismodule(found) or inspect.isclass(found) else None
    if isinstance(found, (staticmethod, classmethod)):
        found = found.__func__
    if found is not obj:
        raise _refuse(key, target, f"is not the definition it names ({module}.{qualname} is "
                                   "not this object)")


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
    from dlrun.engine.backend import require

    kind = getattr(device.type, "value", device.type)
    return require(gpu(int(device.id))) if kind == "gpu" else cpu(int(device.id))


def in_debug_mode(cfg: DictConfig | None = None) -> bool:
    """Whether errors should show their full traceback."""
    env = os.environ.get("HYDRA_FULL_ERROR", "")
    return env not in ("", "0") or bool(cfg is not None and cfg.get("debug", False))
