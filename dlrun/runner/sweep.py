"""Sweeps (``dlrun -m ...``): the trial's side, the sweep's MLflow parent run, the results table.

Three processes' worth of code live here, each part small:

* in every trial (a Hydra job of a multirun, maybe in a joblib worker): :class:`TrialScope`
  caps the BLAS threads of parallel trials, turns the run's outcome into ``trial.json`` in the
  trial's folder and into the value the Hydra task function returns (the sweep's metric);
  :func:`trial_tags` tags the trial's MLflow run with the sweep id and trial number and nests
  it under the sweep's parent run (``mlflow.parentRunId``).
* in the launching process: :class:`SweepCallback` (a Hydra callback, see ``hydra.callbacks``
  in ``conf/config.yaml``) creates the parent run once, at the start of the multirun and so
  before any parallel job opens the store (two jobs creating a fresh SQLite store at once
  crash on its schema migration), and writes ``sweep.json`` for the trials to find it.
  :func:`run_grid` is the loop of the grid sweeper (``hydra/sweeper=dlrun_basic``): a failing
  trial does not end it.
* at the end of the sweep :meth:`SweepSession.finish` prints the table of trials (overrides,
  metric, status, time; best first), saves it as ``sweep_results.csv`` in the sweep folder,
  logs it to the parent run with the best trial's overrides and metric, marks the best child
  run, and records failed or killed trials' errors on their runs.

Only light modules are imported at the top: ``dlrun.runner.main`` imports this one.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SWEEP_FILE = "sweep.json"          # in the sweep folder: the sweep id and its parent run
TRIAL_FILE = "trial.json"          # in each trial's folder: its outcome
TABLE_FILE = "sweep_results.csv"   # in the sweep folder: the final table
TRIAL_ENV = "DLRUN_SWEEP_TRIAL"    # set (hydra.job.env_set) by the Optuna sweeper: the trial number
MAX_DIR_NAME = 120                 # trial folder names longer than this end in a hash
MAX_ERROR = 4000                   # characters of an error kept in tags and files

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
_LOWER_IS_BETTER = re.compile(r"loss|error|perplexity|mse|mae|rmse|nll|time", re.I)


class TrialFailed(Exception):
    """A trial of a sweep failed; Hydra records the job as failed and the sweep goes on.

    ``kind`` is ``"error"`` for the trial's own failure and ``"metric"`` when the sweep's
    metric is not among the run's metrics (a mistake of the sweep: it stops at once).
    """

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> Any:  # crosses process boundaries (joblib) with its kind
        return (TrialFailed, (str(self), self.kind))


class SweepError(Exception):
    """A sweep that cannot start or go on (search space, study, metric): one clear message."""


# --- Hydra config helpers -------------------------------------------------------------------
def register_resolvers() -> None:
    """``${dlrun.trial_dir:}``: a trial's folder name, ``<trial number>_<its overrides>``;
    ``${dlrun.log_file:}``: the run's log file name, one per rank of a data-parallel job."""
    if not OmegaConf.has_resolver("dlrun.trial_dir"):
        OmegaConf.register_new_resolver("dlrun.trial_dir", _trial_dir_resolver, use_cache=False)
    if not OmegaConf.has_resolver("dlrun.log_file"):
        OmegaConf.register_new_resolver("dlrun.log_file", _log_file_resolver, use_cache=False)


def _log_file_resolver() -> str:
    from dlrun.parallel.world import launched_by

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


def _hydra_cfg() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun(hydra: Any | None = None) -> bool:
    hydra = hydra if hydra is not None else _hydra_cfg()
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


# --- inside a trial ---------------------------------------------------------------------------
class TrialScope:
    """One trial of a multirun, around ``experiment.run``: its record and its return value."""

    def __init__(self) -> None:
        hydra = _hydra_cfg()
        self.dir = Path(hydra.runtime.output_dir)
        self.number = trial_number(hydra)
        self.overrides = [str(o) for o in hydra.overrides.task]
        self.metric = OmegaConf.select(hydra, "sweeper.metric", default=None)
        self.started = time.time()
        self.threads = blas_threads(hydra)
        if self.threads is not None:
            # trials in parallel share the cores, and the terminal: plain output, capped BLAS
            os.environ["TTY_COMPATIBLE"] = "0"
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads)

    def finished(self, value: float) -> float:
        """The value the sweep optimises (the sweep's metric, else the run's primary one)."""
        metrics = _read_json(self.dir / "results.json") or {}
        name = self.metric
        if name:
            if name not in metrics:
                known = ", ".join(sorted(k for k in metrics if "/" in k)) or "none"
                raise TrialFailed(f"the sweep's metric {name!r} is not among this run's metrics "
                                  f"({known}); set hydra.sweeper.metric to one of them",
                                  kind="metric")
            value = metrics[name]
        else:
            name = primary_metric_name(metrics, value)
        value = float(value)
        if not math.isfinite(value):
            raise TrialFailed(f"{name or 'the metric'} is {value}: the run diverged")
        self._write(FINISHED, value=value, metric=name, metrics=metrics)
        return value

    def failed(self, error: str, kind: str = "error") -> None:
        self._write(FAILED, error=error, kind=kind)

    def killed(self, error: str = "interrupted") -> None:
        self._write(KILLED, error=error)

    def _write(self, status: str, **extra: Any) -> None:
        record = {"number": self.number, "status": status, "overrides": self.overrides,
                  "started": _iso(self.started), "duration": time.time() - self.started,
                  "dir": str(self.dir), "blas_threads": self.threads, **extra}
        if record.get("error"):
            record["error"] = str(record["error"])[:MAX_ERROR]
        _write_json(self.dir / TRIAL_FILE, record)


def primary_metric_name(metrics: Mapping[str, Any], value: float) -> str | None:
    """The name of the metric whose final value the run returned (an ``eval/`` one first)."""
    names = sorted((k for k, v in metrics.items() if isinstance(v, (int, float))
                    and float(v) == float(value)), key=lambda k: (not k.startswith("eval/"), k))
    return names[0] if names else None


JOB_TAGS_ENV = "DLRUN_TRIAL_TAGS"  # a trial run as an MPI job: its tags, for the job's rank 0


def trial_tags(tracking_uri: str | None, experiment: str) -> dict[str, str]:
    """Tags of a trial's MLflow run: sweep id, trial number, parent run (same store only)."""
    hydra = _hydra_cfg()
    if hydra is None or not in_multirun(hydra):
        return json.loads(os.environ.get(JOB_TAGS_ENV, "{}"))
    tags = {"dlrun.sweep.trial": str(trial_number(hydra))}
    threads = blas_threads(hydra)
    if threads is not None:
        tags["dlrun.blas_threads"] = str(threads)
    info = _read_json(Path(hydra.runtime.output_dir).parent / SWEEP_FILE)
    if info:
        tags["dlrun.sweep.id"] = str(info.get("sweep_id"))
        if (info.get("parent_run_id") and info.get("tracking_uri") == tracking_uri
                and info.get("experiment") == experiment):
            tags["mlflow.parentRunId"] = str(info["parent_run_id"])
    return tags


# --- the table --------------------------------------------------------------------------------
@dataclass
class TrialRow:
    number: int
    overrides: list[str]
    status: str
    value: float | None = None
    duration: float | None = None
    error: str | None = None
    dir: str | None = None
    metric: str | None = None
    run_id: str | None = None
    threads: int | None = None    # BLAS threads it ran with, when capped (parallel trials)

    def pairs(self) -> dict[str, str]:
        out = {}
        for item in self.overrides:
            key, _, value = item.partition("=")
            out[key] = value
        return out


def rows_from_dir(sweep_dir: Path) -> list[TrialRow]:
    """Every trial folder of a sweep (those with ``.hydra/``): its ``trial.json`` or, when
    there is none, a trial whose process ended without a result (killed)."""
    rows = []
    for d in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir()):
        record = _read_json(d / TRIAL_FILE)
        if record is None:
            overrides_file = d / ".hydra" / "overrides.yaml"
            if not overrides_file.exists():
                continue
            number = re.match(r"\d+", d.name)
            record = {"number": int(number.group()) if number else -1, "status": KILLED,
                      "overrides": list(OmegaConf.load(overrides_file)),
                      "error": "the trial's process ended without a result (killed?)"}
        rows.append(row_from_record(record, d))
    return rows


def row_from_record(record: Mapping[str, Any], trial_dir: Path | None = None) -> TrialRow:
    return TrialRow(number=int(record.get("number", -1)), overrides=list(record.get("overrides", [])),
                    status=str(record.get("status", KILLED)), value=record.get("value"),
                    duration=record.get("duration"), error=record.get("error"),
                    dir=str(record.get("dir") or trial_dir or ""), metric=record.get("metric"),
                    threads=record.get("blas_threads"))


def direction_for(metric: str | None, direction: str | None) -> str:
    if direction:
        return str(getattr(direction, "value", direction))
    return "minimize" if metric and _LOWER_IS_BETTER.search(metric) else "maximize"


def order_rows(rows: Sequence[TrialRow], direction: str) -> list[TrialRow]:
    """Finished trials best first, then running, failed and killed ones by number."""
    sign = -1.0 if direction == "maximize" else 1.0
    done = [r for r in rows if r.status == FINISHED and r.value is not None]
    rest = [r for r in rows if r not in done]
    order = {RUNNING: 0, "PRUNED": 1, FAILED: 2, KILLED: 3}
    return (sorted(done, key=lambda r: (sign * r.value, r.number))
            + sorted(rest, key=lambda r: (order.get(r.status, 4), r.number)))


def varying_keys(rows: Sequence[TrialRow], space: Sequence[str] = ()) -> list[str]:
    """The override keys that tell the trials apart: the search space's, then any that differ."""
    keys = [k for k in space]
    seen: dict[str, set] = {}
    for row in rows:
        for k, v in row.pairs().items():
            seen.setdefault(k, set()).add(v)
    keys += [k for k, values in seen.items() if k not in keys and len(values) > 1]
    present = [k for k in keys if k in seen]
    return present or keys


def command_for(overrides: Sequence[str], config_args: Sequence[str] = (),
                threads: int | None = None) -> str:
    """The single-run command that reruns a trial, with the BLAS threads of a parallel trial
    (another thread count sums in another order: the same run, slightly other numbers)."""
    env = [f"OMP_NUM_THREADS={threads}"] if threads else []
    return " ".join([*env, "dlrun", *map(shlex.quote, config_args), *map(shlex.quote, overrides)])


def _format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from .console import format_duration

    return format_duration(seconds) if seconds >= 60 else f"{seconds:.1f}s"


def print_table(rows: Sequence[TrialRow], metric: str, keys: Sequence[str], title: str,
                best: TrialRow | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a log file or a pipe: no reason to wrap
        console = Console(highlight=False, soft_wrap=False, width=max(console.width, 160))
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII2)
    table.add_column("trial", justify="right", no_wrap=True, min_width=5)
    for key in keys:
        table.add_column(key, no_wrap=True, min_width=min(len(key), 20))
    table.add_column(metric, justify="right", no_wrap=True, min_width=len(metric))
    table.add_column("status", no_wrap=True, min_width=8)
    table.add_column("time", justify="right", no_wrap=True, min_width=6)
    body = []
    for row in rows:
        pairs = row.pairs()
        body.append([f"{row.number}" + (" *" if row is best else ""),
                     *[pairs.get(k, "") for k in keys], _format_value(row.value), row.status,
                     _format_time(row.duration)])
    errors = [(r.error or "").strip().splitlines()[0] if r.error and r.status != FINISHED
              else "" for r in rows]
    if any(errors):  # the first line of each error, cut to the room left; the CSV has them whole
        headers = ["trial", *keys, metric, "status", "time"]
        least = [col.min_width or 0 for col in table.columns]
        used = sum(max([len(h), least[i]] + [len(str(b[i])) for b in body]) + 3
                   for i, h in enumerate(headers))
        room = max(console.width - used - 6, 12)
        table.add_column("error", no_wrap=True)
        for cells, text in zip(body, errors):
            cells.append(text if len(text) <= room else text[:room - 1] + "…")
    for row, cells in zip(rows, body):
        style = {FAILED: "red", KILLED: "yellow"}.get(row.status, "")
        cells[len(keys) + 2] = Text(row.status, style=style)
        table.add_row(*cells, style="bold" if row is best else None)
    console.print()
    console.print(Text(title, style="bold"), soft_wrap=True)
    console.print(table)


def write_csv(path: Path, rows: Sequence[TrialRow], metric: str, keys: Sequence[str],
              config_args: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "trial", "status", metric, "time_s", *keys, "overrides", "command",
                    "error", "dir", "mlflow_run_id"])
        for rank, row in enumerate(rows, 1):
            pairs = row.pairs()
            w.writerow([rank, row.number, row.status, "" if row.value is None else row.value,
                        "" if row.duration is None else round(row.duration, 3),
                        *[pairs.get(k, "") for k in keys], " ".join(row.overrides),
                        command_for(row.overrides, config_args, row.threads), row.error or "",
                        row.dir or "",
                        row.run_id or ""])
    os.replace(tmp, path)


# --- the sweep's session (launching process) --------------------------------------------------
_ACTIVE: Any = None  # the running SweepSession


def active_session() -> "SweepSession | None":
    return _ACTIVE


class SweepCallback(Callback):
    """Hydra callback (``hydra.callbacks.sweep``): the sweep's MLflow parent run and table."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SweepSession.start(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        session = active_session()
        if session is not None and not session.finished:
            session.finish(FINISHED)  # a sweeper other than dlrun's: the table from the folders


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


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).absolute() / 'optuna.db'}"


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


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


class SweepSession:
    """One sweep as seen from the launching process: its parent run, its trials, its end."""

    def __init__(self, config: DictConfig):
        self.config = config
        self.dir = Path(str(config.hydra.sweep.dir)).absolute()
        sweeper = config.hydra.sweeper
        self.kind = "optuna" if "study_name" in sweeper and "storage" in sweeper else "grid"
        self.space = search_space(config)
        self.metric: str | None = OmegaConf.select(sweeper, "metric", default=None)
        direction = OmegaConf.select(sweeper, "direction", default=None)
        self.direction: str | None = getattr(direction, "value", direction)
        if self.kind == "optuna":
            storage = sweeper.storage or default_storage(self.dir)
            self.sweep_id = "optuna-" + _digest(f"{sweeper.study_name}\n{storage}")
            self.title = f"study {sweeper.study_name}"
        else:
            self.sweep_id = "grid-" + _digest(str(self.dir))
            self.title = f"sweep {self.dir.name}"
        self.rows: Callable[[], list[TrialRow]] = lambda: rows_from_dir(self.dir)
        self.config_args = config_args(config)
        self.tracking_uri: str | None = None
        self.experiment = str(config.get("experiment", "dlrun"))
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.created_parent = False
        self.parent_status: str | None = None  # a resumed parent's status before this run
        self.created_dir = False
        self.finished = False
        self.client: Any = None

    # --- start ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, config: DictConfig) -> "SweepSession":
        global _ACTIVE
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            HydraConfig.instance().set_config(config)
        session = cls(config)
        session.created_dir = not session.dir.exists()
        session.dir.mkdir(parents=True, exist_ok=True)
        try:
            session._open_parent()
        except Exception as e:  # noqa: BLE001
            from .build import in_debug_mode

            if in_debug_mode(config):
                raise
            from .console import error
            from .tracking import TrackingError, _describe

            text = str(e) if isinstance(e, TrackingError) else _describe(e, session.tracking_uri)
            error(f"could not create the sweep's MLflow run: {text}")
            raise SystemExit(1) from None
        _write_json(session.dir / SWEEP_FILE, {
            "sweep_id": session.sweep_id, "kind": session.kind, "dir": str(session.dir),
            "parent_run_id": session.parent_run_id, "tracking_uri": session.tracking_uri,
            "experiment": session.experiment, "started": _iso(time.time()),
            "command": shlex.join(["dlrun", *sys.argv[1:]])})
        _ACTIVE = session
        return session

    def _open_parent(self) -> None:
        from .tracking import mlflow_store, open_experiment

        store = mlflow_store(self.config.logger)
        if store is None:
            return
        self.tracking_uri, artifact_location = store
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = open_experiment(client, self.experiment, artifact_location)
        found = client.search_runs([self.experiment_id], filter_string=(
            f"tags.`dlrun.sweep.id` = '{self.sweep_id}' and tags.`dlrun.sweep.role` = 'parent'"),
            max_results=1)
        if found:  # a resumed study: its trials go on under the same parent
            self.parent_run_id = found[0].info.run_id
            self.parent_status = found[0].info.status
            client.update_run(self.parent_run_id, status=RUNNING)
            client.set_tag(self.parent_run_id, "dlrun.sweep.resumed", _iso(time.time()))
            return
        import dlrun

        from .tracking import flatten, git_commit

        tags = {"dlrun.sweep.id": self.sweep_id, "dlrun.sweep.role": "parent",
                "dlrun.sweep.kind": self.kind, "dlrun.sweep.dir": str(self.dir),
                "dlrun.sweep.command": shlex.join(["dlrun", *sys.argv[1:]]),
                "dlrun.version": dlrun.__version__, "mlflow.source.name": "dlrun",
                "mlflow.source.type": "LOCAL"}
        commit = git_commit(Path(dlrun.__file__).parent)
        if commit:
            tags["mlflow.source.git.commit"] = tags["dlrun.git_commit"] = commit
        sweeper = self.config.hydra.sweeper
        for key in ("metric", "direction", "n_trials", "n_jobs", "study_name"):
            value = OmegaConf.select(sweeper, key, default=None)
            if value is not None:
                tags[f"dlrun.sweep.{key}"] = str(getattr(value, "value", value))
        if self.kind == "optuna":
            tags["dlrun.sweep.storage"] = _hide_password(sweeper.storage or default_storage(self.dir))
        run = client.create_run(self.experiment_id, run_name=self.title.replace(" ", "-"),
                                tags=tags)
        self.parent_run_id = run.info.run_id
        self.created_parent = True
        params = {f"search_space.{k}": v for k, v in self.space.items()}
        params.update({f"sweep.{k}": tags[f"dlrun.sweep.{k}"] for k in ("metric", "direction")
                       if f"dlrun.sweep.{k}" in tags})
        if self.kind == "optuna" and OmegaConf.select(sweeper, "sampler._target_", default=None):
            params["sweep.sampler"] = str(sweeper.sampler._target_).rsplit(".", 1)[-1]
            if OmegaConf.select(sweeper, "sampler.seed", default=None) is not None:
                params["sweep.sampler_seed"] = str(sweeper.sampler.seed)
        params.update({k: v for k, v in flatten(self._base_config()).items()
                       if not any(k == s or k.startswith(s + ".") for s in self.space)})
        from mlflow.entities import Param

        from .tracking import MAX_PARAMS_PER_BATCH, _chunks, _param_value, sanitize_key

        batch = [Param(sanitize_key(k), _param_value(v)) for k, v in params.items()]
        for chunk in _chunks(batch, MAX_PARAMS_PER_BATCH):
            client.log_batch(self.parent_run_id, params=chunk)

    def _base_config(self) -> dict:
        cfg = {k: v for k, v in self.config.items() if k != "hydra"}
        try:
            return OmegaConf.to_container(OmegaConf.create(cfg), resolve=True, enum_to_str=True)
        except Exception:  # noqa: BLE001 - values that only resolve in a job
            return OmegaConf.to_container(OmegaConf.create(cfg), resolve=False, enum_to_str=True)

    # --- end -----------------------------------------------------------------------------------
    def abort(self) -> None:
        """The sweep stopped before its first trial (a mistake in it): no table, and the
        parent run this session created, which has no children, is removed again."""
        global _ACTIVE
        self.finished = True
        _ACTIVE = None
        if self.client is not None and self.parent_run_id is not None:
            try:
                if self.created_parent:
                    self.client.delete_run(self.parent_run_id)
                else:
                    self.client.update_run(self.parent_run_id, status=self.parent_status or FAILED)
            except Exception:  # noqa: BLE001
                pass
        if self.created_dir:  # nothing ran: leave no empty sweep folder behind
            (self.dir / SWEEP_FILE).unlink(missing_ok=True)
            try:
                self.dir.rmdir()
            except OSError:
                pass

    def finish(self, status: str) -> list[TrialRow]:
        """Prints and saves the table, completes the MLflow side; exits 1 if no trial finished."""
        global _ACTIVE
        if self.finished:
            return []
        self.finished = True
        _ACTIVE = None
        rows = self.rows()
        metric = self.metric or next((r.metric for r in rows if r.metric), None) or "metric"
        direction = direction_for(metric, self.direction)
        rows = order_rows(rows, direction)
        best = rows[0] if rows and rows[0].status == FINISHED else None
        keys = varying_keys(rows, list(self.space))
        problems: list[str] = []
        if self.client is not None and self.parent_run_id is not None:
            try:
                self._finish_mlflow(rows, best, metric, status)
            except Exception as e:  # noqa: BLE001 - the table is still worth printing
                problems.append(f"MLflow: could not complete the sweep's runs: "
                                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        if not rows:
            return rows
        table_file = self.dir / TABLE_FILE
        write_csv(table_file, rows, metric, keys, self.config_args)
        if self.client is not None and self.parent_run_id is not None:
            try:
                self.client.log_artifact(self.parent_run_id, str(table_file))
            except Exception as e:  # noqa: BLE001
                problems.append(f"MLflow: could not upload {table_file.name}: {e}")
        n_done = sum(r.status == FINISHED for r in rows)
        title = (f"{self.title}: {len(rows)} trial{'s' * (len(rows) != 1)}, {n_done} finished"
                 + (f", {len(rows) - n_done} failed or killed" if n_done < len(rows) else "")
                 + f"; {'higher' if direction == 'maximize' else 'lower'} {metric} is better")
        print_table(rows, metric, keys, title, best)
        out = []
        if best is not None:
            pairs = best.pairs()
            shown = " ".join(f"{k}={pairs[k]}" for k in keys if k in pairs)
            out.append(f"best: trial {best.number}, {metric} {_format_value(best.value)}"
                       + (f" ({shown})" if shown else ""))
            out.append(f"rerun it: {command_for(best.overrides, self.config_args, best.threads)}")
        out.append(f"table: {_relative(table_file)}")
        if self.parent_run_id:
            out.append(f"MLflow parent run: {self.parent_run_id} (experiment {self.experiment!r})")
            if str(self.tracking_uri).startswith("sqlite:///"):
                out.append("open: mlflow ui --backend-store-uri sqlite:///"
                           + str(_relative(Path(str(self.tracking_uri)[len("sqlite:///"):]))))
            elif str(self.tracking_uri).startswith(("http://", "https://")):
                out.append(f"open: {str(self.tracking_uri).rstrip('/')}/#/experiments/"
                           f"{self.experiment_id}/runs/{self.parent_run_id}")
        for line in out:
            print(line)
        from .console import error

        for problem in problems:
            error(problem)
        sys.stdout.flush()
        if status == FINISHED and n_done == 0:
            first = next((r for r in rows if r.error), None)
            error("every trial of the sweep failed" + (
                f"; trial {first.number}: {first.error.strip().splitlines()[0]}" if first else ""))
            raise SystemExit(1)
        return rows

    def _finish_mlflow(self, rows: Sequence[TrialRow], best: TrialRow | None, metric: str,
                       status: str) -> None:
        from mlflow.entities import Metric, RunTag

        from .tracking import sanitize_key

        client = self.client
        children: dict[int, Any] = {}
        runs: dict[int, list] = {}
        token = None
        while True:  # newest first: a trial run again after its process died has two runs
            page = client.search_runs([self.experiment_id], filter_string=(
                f"tags.`dlrun.sweep.id` = '{self.sweep_id}'"), max_results=1000,
                order_by=["attributes.start_time DESC"], page_token=token)
            for run in page:
                trial = run.data.tags.get("dlrun.sweep.trial")
                if run.data.tags.get("dlrun.sweep.role") != "parent" and trial is not None:
                    children.setdefault(int(trial), run)
                    runs.setdefault(int(trial), []).append(run)
            token = page.token
            if not token:
                break
        status_of = {row.number: row.status for row in rows}
        for number, trial_runs in runs.items():
            for run in trial_runs[1:]:  # an older run of a trial whose process died
                if run.info.status == RUNNING and status_of.get(number) != RUNNING:
                    client.set_tag(run.info.run_id, "dlrun.error", "its process died")
                    client.set_terminated(run.info.run_id, status=KILLED)
        for row in rows:
            run = children.get(row.number)
            if run is None:
                continue
            row.run_id = run.info.run_id
            tags = run.data.tags
            if row.status in (FAILED, KILLED):
                if row.error and tags.get("dlrun.error") != row.error[:MAX_ERROR]:
                    client.set_tag(row.run_id, "dlrun.error", row.error[:MAX_ERROR])
                if run.info.status == RUNNING:  # its process was killed before it could say so
                    client.set_terminated(row.run_id, status=row.status)
            if row is best:
                if tags.get("dlrun.sweep.best") != "true":
                    client.set_tag(row.run_id, "dlrun.sweep.best", "true")
            elif tags.get("dlrun.sweep.best") == "true":
                client.delete_tag(row.run_id, "dlrun.sweep.best")
        ts = int(time.time() * 1000)
        n_done = sum(r.status == FINISHED for r in rows)
        metrics = [Metric("sweep/trials", len(rows), ts, n_done),
                   Metric("sweep/trials_finished", n_done, ts, n_done),
                   Metric("sweep/trials_failed", sum(r.status == FAILED for r in rows), ts, n_done)]
        tags = [RunTag("dlrun.sweep.status", status)]
        if best is not None:
            metrics.append(Metric(sanitize_key(f"best/{metric}"), float(best.value), ts, n_done))
            tags += [RunTag("dlrun.sweep.best_trial", str(best.number)),
                     RunTag("dlrun.sweep.best_overrides", " ".join(best.overrides)),
                     RunTag("dlrun.sweep.best_command",
                            command_for(best.overrides, self.config_args, best.threads))]
            if best.run_id:
                tags.append(RunTag("dlrun.sweep.best_run_id", best.run_id))
            tags += [RunTag(sanitize_key(f"best.{k}"), v) for k, v in best.pairs().items()
                     if k in self.space or k in varying_keys(rows, list(self.space))]
        client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        multirun = self.dir / "multirun.yaml"
        if multirun.exists():
            client.log_artifact(self.parent_run_id, str(multirun))
        parent_status = status if status != FINISHED or n_done else FAILED
        client.set_terminated(self.parent_run_id, status=parent_status)


# --- checks before any trial runs -------------------------------------------------------------
def check_config(cfg: DictConfig) -> None:
    """The arguments of every ``_target_`` node of a composed config, against its class."""
    from .build import check_node

    for key, node in cfg.items():
        if key != "hydra" and isinstance(node, DictConfig) and "_target_" in node:
            check_node(node, str(key))


def check_job(config_loader: Any, config: DictConfig, overrides: Sequence[str],
              culprit: str | None = None) -> None:
    """Composes the config of one job and checks it; raises SweepError naming the job."""
    from .build import ConfigError

    what = culprit or " ".join(overrides)
    try:
        cfg = config_loader.load_sweep_config(master_config=config,
                                              sweep_overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the key
        raise SweepError(f"{what}: {_clean_hydra_error(e)}") from None
    try:
        check_config(cfg)
    except ConfigError as e:
        raise SweepError(f"{what}: {e}") from None


def _clean_hydra_error(error: BaseException) -> str:
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
    from .console import error as print_error
    from .build import in_debug_mode

    if in_debug_mode(config):
        raise error
    print_error(str(error))
    raise SystemExit(1)


# --- launching ---------------------------------------------------------------------------------
def read_record(sweep_dir: Path, number: int) -> tuple[Path | None, dict | None]:
    """(the folder, the ``trial.json``) of trial ``number`` of a sweep, when there are."""
    folder = next(iter_trial_dirs(sweep_dir, number), None)
    return folder, (_read_json(folder / TRIAL_FILE) if folder is not None else None)


def launch(launcher: Any, jobs: Sequence[Sequence[str]], numbers: Sequence[int],
           sweep_dir: Path) -> list[Any]:
    """``launcher.launch`` for a batch of trials, surviving a trial whose process dies.

    When a trial's process dies (killed, out of memory, a crash), joblib ends the whole
    batch. The trials of the batch that left no result then run again, one at a time: a
    trial that dies again alone is recorded as FAILED in its folder, the others finish.
    Returns the JobReturn of each job (None where its process died).
    """
    from .console import error

    try:
        return list(launcher.launch([list(j) for j in jobs], initial_job_idx=numbers[0]))
    except Exception as e:  # noqa: BLE001 - KeyboardInterrupt and SystemExit go through
        first = e
    results: list[Any] = [None] * len(jobs)
    if len(jobs) > 1:
        error(f"a trial's process died ({type(first).__name__}), which ended its batch; the "
              "trials of the batch without a result run again, one at a time")
    for i, (job, number) in enumerate(zip(jobs, numbers)):
        if len(jobs) > 1 and read_record(sweep_dir, number)[1] is not None:
            continue
        death: BaseException | None = first if len(jobs) == 1 else None
        if death is None:
            try:
                results[i] = launcher.launch([list(job)], initial_job_idx=number)[0]
                continue
            except Exception as e:  # noqa: BLE001
                death = e
        folder, record = read_record(sweep_dir, number)
        text = (f"the trial's process died: {type(death).__name__}: "
                f"{_clean_hydra_error(death)}")[:MAX_ERROR]
        error(f"trial {number}: {text}")
        if folder is not None and (record is None or record.get("status") != FINISHED):
            _write_json(folder / TRIAL_FILE, {
                "number": number, "status": FAILED, "error": text, "kind": "died",
                "overrides": [o for o in job if not o.startswith(("hydra.", "++hydra."))],
                "dir": str(folder)})
    return results


# --- the grid sweeper's loop ------------------------------------------------------------------
def run_grid(sweeper: Any, arguments: list[str]) -> Any:
    """``DlrunBasicSweeper.sweep``: Hydra's basic sweep (every combination, in batches of
    ``max_batch_size``) where a failing trial is recorded and the sweep goes on."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    session = active_session() or SweepSession.start(sweeper.config)
    session.metric = sweeper.metric or session.metric
    session.direction = sweeper.direction or session.direction
    started = False
    try:
        lines = sweeper._parse_config() + list(arguments)
        parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
        sweeper.overrides = sweeper.split_arguments(parser.parse_overrides(lines),
                                                    sweeper.max_batch_size)
        sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
        returns = []
        index = 0
        while not sweeper.is_done():
            batch = sweeper.get_job_batch()
            for overrides in batch:  # composes and checks every job: mistakes show up now
                check_job(sweeper.hydra_context.config_loader, sweeper.config, overrides)
            started = True
            results = launch(sweeper.launcher, batch, range(index, index + len(batch)),
                             sweep_dir)
            index += len(batch)
            returns.append(results)
    except SweepError as e:
        if started:
            session.finish(KILLED)
        else:
            session.abort()
        report_sweep_error(e, sweeper.config)
    except BaseException:
        if started:
            session.finish(KILLED)
        else:
            session.abort()
        raise
    session.finish(FINISHED)
    return returns


# --- small helpers ----------------------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(timespec="seconds")


def _relative(path: Path) -> Path:
    try:
        return Path(path).absolute().relative_to(Path.cwd())
    except ValueError:
        return Path(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def iter_trial_dirs(sweep_dir: Path, number: int) -> Iterable[Path]:
    """The folders of trial ``number`` in a sweep folder (normally one)."""
    for d in Path(sweep_dir).glob(f"{number}_*"):
        if d.is_dir():
            yield d
    if (Path(sweep_dir) / str(number)).is_dir():
        yield Path(sweep_dir) / str(number)
