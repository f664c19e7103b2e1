"""The sweep as the launching process sees it: its MLflow parent run, from its creation (before
any trial starts) to its end (the table, the best trial, the failed trials' errors).

:class:`SweepCallback` (a Hydra callback, see ``hydra.callbacks`` in ``conf/config.yaml``)
creates the parent run once, at the start of the multirun and so before any parallel job opens
the store (two jobs creating a fresh SQLite store at once crash on its schema migration), and
writes ``sweep.json`` for the trials to find it. :meth:`SweepSession.finish` prints the table of
trials, saves it as ``sweep_results.csv``, logs it to the parent run with the best trial's
overrides and metric, marks the best child run, and records failed or killed trials' errors.
"""
from __future__ import annotations

import hashlib
import re
import shlex
import sys
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

import dlrun

from ..build import in_debug_mode
from ..sqlstore import prepare_store
from ..console import error as print_error
from ..interrupt import INTERRUPTS, Interrupted, is_interrupt, signal_name
from ..runstore import mlflow_env, open_experiment
from ..records import MAX_PARAMS_PER_BATCH, chunks, flatten, git_commit, param_value, sanitize_key
from ..tracking import TrackingError, describe_error, mlflow_store
from .checks import report_sweep_error
from .resolvers import config_args, configured_direction, search_space
from .table import (TABLE_FILE, TrialRow, command_for, format_value, order_rows, print_table,
                    rows_from_dir, varying_keys, write_csv)
from .trial import (FAILED, FINISHED, KILLED, MAX_ERROR, RUNNING, SWEEP_FILE, SweepError, iso,
                    test_metric, write_json)

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
            # a sweeper other than dlrun's: the table from the folders
            session.finish(KILLED if INTERRUPTS.requested is not None else FINISHED)


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).absolute() / 'optuna.db'}"


def hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class SweepSession:
    """One sweep as seen from the launching process: its parent run, its trials, its end."""

    def __init__(self, config: DictConfig):
        self.config = config
        self.dir = Path(str(config.hydra.sweep.dir)).absolute()
        sweeper = config.hydra.sweeper
        self.kind = "optuna" if "study_name" in sweeper and "storage" in sweeper else "grid"
        self.space = search_space(config)
        self.metric: str | None = OmegaConf.select(sweeper, "metric", default=None)
        self.direction: str | None = configured_direction(config, "hydra.sweeper.direction")
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
        if not HydraConfig.initialized():
            HydraConfig.instance().set_config(config)
        session = cls(config)
        session.created_dir = not session.dir.exists()
        session.dir.mkdir(parents=True, exist_ok=True)
        try:
            session._open_parent()
        except Exception as e:  # noqa: BLE001
            if in_debug_mode(config):
                raise
            text = str(e) if isinstance(e, TrackingError) else describe_error(e, session.tracking_uri)
            print_error(f"could not create the sweep's MLflow run: {text}")
            raise SystemExit(1) from None
        write_json(session.dir / SWEEP_FILE, {
            "sweep_id": session.sweep_id, "kind": session.kind, "dir": str(session.dir),
            "parent_run_id": session.parent_run_id, "tracking_uri": session.tracking_uri,
            "experiment": session.experiment, "started": iso(time.time()),
            "command": shlex.join(["dlrun", *sys.argv[1:]])})
        _ACTIVE = session
        return session

    def _open_parent(self) -> None:
        store = mlflow_store(self.config.logger)
        if store is None:
            return
        self.tracking_uri, artifact_location = store
        mlflow_env()
        from mlflow.tracking import MlflowClient

        prepare_store(self.tracking_uri)  # a new or half-migrated SQLite store: one process at a time
        self.client = client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = open_experiment(client, self.experiment, artifact_location)
        found = client.search_runs([self.experiment_id], filter_string=(
            f"tags.`dlrun.sweep.id` = '{self.sweep_id}' and tags.`dlrun.sweep.role` = 'parent'"),
            max_results=1)
        if found:  # a resumed study: its trials go on under the same parent
            self.parent_run_id = found[0].info.run_id
            self.parent_status = found[0].info.status
            client.update_run(self.parent_run_id, status=RUNNING)
            client.set_tag(self.parent_run_id, "dlrun.sweep.resumed", iso(time.time()))
            for key, value in self._parent_tags().items():  # n_trials=5 now, not the first run's 3
                if key in ("dlrun.sweep.n_trials", "dlrun.sweep.n_jobs"):
                    client.set_tag(self.parent_run_id, key, value)
            return
        tags = self._parent_tags()
        run = client.create_run(self.experiment_id, run_name=self.title.replace(" ", "-"),
                                tags=tags)
        self.parent_run_id = run.info.run_id
        self.created_parent = True
        from mlflow.entities import Param

        batch = [Param(sanitize_key(k), param_value(v)) for k, v in self._params(tags).items()]
        for chunk in chunks(batch, MAX_PARAMS_PER_BATCH):
            client.log_batch(self.parent_run_id, params=chunk)

    def _parent_tags(self) -> dict[str, str]:
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
            tags["dlrun.sweep.storage"] = hide_password(sweeper.storage or default_storage(self.dir))
        return tags

    def _params(self, tags: dict[str, str]) -> dict[str, Any]:
        """The parent run's params: the search space, the sweep's settings, the base config."""
        sweeper = self.config.hydra.sweeper
        params: dict[str, Any] = {f"search_space.{k}": v for k, v in self.space.items()}
        params.update({f"sweep.{k}": tags[f"dlrun.sweep.{k}"] for k in ("metric", "direction")
                       if f"dlrun.sweep.{k}" in tags})
        if self.kind == "optuna" and OmegaConf.select(sweeper, "sampler._target_", default=None):
            params["sweep.sampler"] = str(sweeper.sampler._target_).rsplit(".", 1)[-1]
            if OmegaConf.select(sweeper, "sampler.seed", default=None) is not None:
                params["sweep.sampler_seed"] = str(sweeper.sampler.seed)
        params.update({k: v for k, v in flatten(self._base_config()).items()
                       if not any(k == s or k.startswith(s + ".") for s in self.space)})
        return params

    def _base_config(self) -> dict:
        cfg = {k: v for k, v in self.config.items() if k != "hydra"}
        try:
            return OmegaConf.to_container(OmegaConf.create(cfg), resolve=True, enum_to_str=True)
        except Exception:  # noqa: BLE001 - values that only resolve in a job
            return OmegaConf.to_container(OmegaConf.create(cfg), resolve=False, enum_to_str=True)

    # --- end -----------------------------------------------------------------------------------
    @contextmanager
    def running(self, config: DictConfig) -> Iterator["SweepSession"]:
        """The sweep's body, which sets ``started`` when its first trial is launched. A failure
        before that removes the parent run again (``abort``); after it, the table is printed
        and the parent run ends FAILED (a SweepError, reported in one message) or KILLED
        (anything else, Ctrl-C included). A body that ends well ends it FINISHED."""
        self.started = False
        try:
            yield self
        except SweepError as e:
            if INTERRUPTS.requested is None and not is_interrupt(e):
                self.finish(FAILED) if self.started else self.abort()
                report_sweep_error(e, config)
            self.finish(KILLED) if self.started else self.abort()  # made of a Ctrl-C
            raise Interrupted(signal_name(e)) from e
        except BaseException:
            self.finish(KILLED) if self.started else self.abort()
            raise
        if INTERRUPTS.requested is not None:  # a Ctrl-C after the last trial's last check
            self.finish(KILLED)
            raise Interrupted(INTERRUPTS.requested)
        self.finish(FINISHED)

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
        # the sweep's direction, else the one the task declared for its primary metric
        direction = self.direction or next((r.direction for r in rows if r.direction), None)
        rows = order_rows(rows, direction)
        best = rows[0] if rows and rows[0].status == FINISHED and direction else None
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
                 + (f"; {'higher' if direction == 'maximize' else 'lower'} {metric} is better"
                    if direction else ""))
        print_table(rows, metric, keys, title, best)
        self._print_summary(best, metric, keys, table_file, problems)
        if status == FINISHED and n_done == 0:
            first = next((r for r in rows if r.error), None)
            print_error("every trial of the sweep failed" + (
                f"; trial {first.number}: {first.error.strip().splitlines()[0]}" if first else ""))
            raise SystemExit(1)
        return rows

    def _print_summary(self, best: TrialRow | None, metric: str, keys: Sequence[str],
                       table_file: Path, problems: Sequence[str]) -> None:
        """Below the table: the best trial and its command, the table's file, the parent run."""
        out = []
        if best is not None:
            pairs = best.pairs()
            shown = " ".join(f"{k}={pairs[k]}" for k in keys if k in pairs)
            out.append(f"best: trial {best.number}, {metric} {format_value(best.value)}"
                       + (f" ({shown})" if shown else "")
                       + (f"; its selected model's {test_metric(metric)}: "
                          f"{format_value(best.test_value)}" if best.test_value is not None else ""))
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
        for problem in problems:
            print_error(problem)
        sys.stdout.flush()

    def _finish_mlflow(self, rows: Sequence[TrialRow], best: TrialRow | None, metric: str,
                       status: str) -> None:
        """The trials' runs (errors, the best one's tag) and the parent's metrics, tags, end."""
        from mlflow.entities import Metric, RunTag

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
            if best.test_value is not None:  # the best trial's selected model on test: reported, not ranked
                metrics.append(Metric(sanitize_key(f"best/{test_metric(metric)}"),
                                      float(best.test_value), ts, n_done))
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
        if parent_status == FINISHED and INTERRUPTS.requested is not None:
            parent_status = KILLED  # a Ctrl-C while the table was made
        client.set_terminated(self.parent_run_id, status=parent_status)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _relative(path: Path) -> Path:
    try:
        return Path(path).absolute().relative_to(Path.cwd())
    except ValueError:
        return Path(path)
