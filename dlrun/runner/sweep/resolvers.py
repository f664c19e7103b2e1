"""What a sweep reads from Hydra's config: the resolvers of trial folders and log files, the
trial number of a job, whether this is a multirun, how many trials run at once, the search
space and the arguments that rerun a trial alone."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dlrun.parallel.world import launched_by

TRIAL_ENV = "DLRUN_SWEEP_TRIAL"    # set (hydra.job.env_set) by the Optuna sweeper: the trial number
MAX_DIR_NAME = 120                 # trial folder names longer than this end in a hash


def register_resolvers() -> None:
    """``${dlrun.trial_dir:}``: a trial's folder name, ``<trial number>_<its overrides>``;
    ``${dlrun.log_file:}``: the run's log file name, one per rank of a data-parallel job."""
    if not OmegaConf.has_resolver("dlrun.trial_dir"):
        OmegaConf.register_new_resolver("dlrun.trial_dir", _trial_dir_resolver, use_cache=False)
    if not OmegaConf.has_resolver("dlrun.log_file"):
        OmegaConf.register_new_resolver("dlrun.log_file", _log_file_resolver, use_cache=False)


def _log_file_resolver() -> str:
    found = launched_by()
    return "dlrun.log" if found is None or found[1] == 0 else f"dlrun.rank{found[1]}.log"


def _trial_dir_resolver(*, _root_: DictConfig) -> str:
    hydra = _root_.hydra
    return trial_dir_name(trial_number(hydra), str(OmegaConf.select(
        hydra, "job.override_dirname", default="") or ""))


def trial_dir_name(number: int, override_dirname: str) -> str:
    """``3_optimizer.lr=0.01,trainer.batch_size=32``: file-system safe, at most ~MAX_DIR_NAME."""
    name = re.sub(r"[/\\\x00-\x1f]", "_", override_dirname).strip(". ")
    if len(name) > MAX_DIR_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[:MAX_DIR_NAME - 9] + "-" + digest
    return f"{number}_{name}" if name else str(number)


def trial_number(hydra: Any) -> int:
    """The trial number of a job: the Optuna trial's (``hydra.job.env_set``), else the job's."""
    number = OmegaConf.select(hydra, f"job.env_set.{TRIAL_ENV}", default=None)
    if number is None:
        number = OmegaConf.select(hydra, "job.num", default=0)
    return int(number)


def hydra_cfg() -> Any | None:
    """This job's ``hydra`` config node, None outside a Hydra job."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun(hydra: Any | None = None) -> bool:
    hydra = hydra if hydra is not None else hydra_cfg()
    mode = OmegaConf.select(hydra, "mode", default=None) if hydra is not None else None
    return getattr(mode, "name", str(mode)) == "MULTIRUN"


def parallel_jobs(hydra: Any) -> int:
    """How many trials run at once in separate processes (joblib launcher), else 1."""
    target = str(OmegaConf.select(hydra, "launcher._target_", default="") or "")
    if "joblib" not in target.lower():
        return 1
    n_jobs = int(OmegaConf.select(hydra, "launcher.n_jobs", default=1) or 1)
    if n_jobs < 0:
        n_jobs = max(_cpu_count() + 1 + n_jobs, 1)
    return n_jobs


def blas_threads(hydra: Any) -> int | None:
    """BLAS/OpenMP threads per trial when trials run in parallel: cores // parallel trials."""
    n_jobs = parallel_jobs(hydra)
    return max(1, _cpu_count() // n_jobs) if n_jobs > 1 else None


def _cpu_count() -> int:
    try:
        from joblib import cpu_count  # the count loky uses (CPU affinity and cgroup quotas)

        return int(cpu_count())
    except Exception:  # noqa: BLE001
        return os.cpu_count() or 1


def configured_direction(hydra_or_config: Any, key: str = "sweeper.direction") -> str | None:
    """``hydra.sweeper.direction`` as ``maximize``/``minimize``; None when the sweep gives none."""
    value = OmegaConf.select(hydra_or_config, key, default=None)
    return None if value is None else str(getattr(value, "value", value))


def search_space(config: DictConfig) -> dict[str, str]:
    """``{key: spec}`` of what a sweep varies: ``hydra.sweeper.params`` and the sweep
    overrides of the command line (``a=1,2``, ``interval(...)``, ...), the latter winning."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()]
    lines += [str(o) for o in config.hydra.overrides.task]
    space: dict[str, str] = {}
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # noqa: BLE001 - the sweeper reports parse errors itself
        return {line.partition("=")[0]: line.partition("=")[2] for line in lines[:len(params)]}
    for i, o in enumerate(parsed):
        key = o.get_key_element()
        if o.is_sweep_override() or i < len(params):
            space[key] = o.input_line.partition("=")[2]
        else:
            space.pop(key, None)  # a fixed value on the command line replaces a config's range
    return space


def config_args(config: DictConfig) -> list[str]:
    """``--config-dir``/``--config-name`` that a single run needs to compose the same config."""
    args = []
    for source in OmegaConf.select(config, "hydra.runtime.config_sources", default=[]) or []:
        if source.get("provider") == "command-line" and source.get("schema") == "file":
            path = Path(source.path)
            try:
                path = path.relative_to(Path.cwd())
            except ValueError:
                pass
            args += ["--config-dir", str(path)]
    name = OmegaConf.select(config, "hydra.job.config_name", default="config")
    if name and name != "config":
        args += ["--config-name", str(name)]
    return args
