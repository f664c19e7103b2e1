"""The results table of a sweep: one row per trial, best first, printed with rich and saved as
``sweep_results.csv`` in the sweep folder, with the command that reruns each trial alone."""
from __future__ import annotations

import csv
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import OmegaConf
from rich import box
from rich.table import Table
from rich.text import Text

from ..console import format_duration, make_console
from .trial import FAILED, FINISHED, KILLED, RUNNING, TRIAL_FILE, read_json, test_metric

TABLE_FILE = "sweep_results.csv"   # in the sweep folder: the final table


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
    direction: str | None = None  # maximize/minimize: the sweep's, else the task's declaration
    test_value: float | None = None  # the selected model's test figure (never ranked on)

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
        record = read_json(d / TRIAL_FILE)
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
                    threads=record.get("blas_threads"), direction=record.get("direction"),
                    test_value=record.get("test_value"))


def order_rows(rows: Sequence[TrialRow], direction: str | None) -> list[TrialRow]:
    """Finished trials best first (by number when the direction is not known), then running,
    failed and killed ones by number."""
    sign = {"maximize": -1.0, "minimize": 1.0}.get(str(direction), 0.0)
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


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(seconds) if seconds >= 60 else f"{seconds:.1f}s"


def print_table(rows: Sequence[TrialRow], metric: str, keys: Sequence[str], title: str,
                best: TrialRow | None) -> None:
    console = make_console()  # off a terminal: no line broken, no column squeezed
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII2)
    table.add_column("trial", justify="right", no_wrap=True, min_width=5)
    for key in keys:
        table.add_column(key, no_wrap=True, min_width=min(len(key), 20))
    objective, test = f"{metric} (objective)", f"{test_metric(metric)} (selected model)"
    table.add_column(objective, justify="right", no_wrap=True, min_width=len(objective))
    table.add_column(test, justify="right", no_wrap=True, min_width=len(test))
    table.add_column("status", no_wrap=True, min_width=8)
    table.add_column("time", justify="right", no_wrap=True, min_width=6)
    body = []
    for row in rows:
        pairs = row.pairs()
        body.append([f"{row.number}" + (" *" if row is best else ""),
                     *[pairs.get(k, "") for k in keys], format_value(row.value),
                     format_value(row.test_value), row.status, _format_time(row.duration)])
    errors = [(r.error or "").strip().splitlines()[0] if r.error and r.status != FINISHED
              else "" for r in rows]
    if any(errors):  # the first line of each error, cut to the room left; the CSV has them whole
        headers = ["trial", *keys, objective, test, "status", "time"]
        least = [col.min_width or 0 for col in table.columns]
        used = sum(max([len(h), least[i]] + [len(str(b[i])) for b in body]) + 3
                   for i, h in enumerate(headers))
        room = max(console.width - used - 6, 12)
        table.add_column("error", no_wrap=True)
        for cells, text in zip(body, errors):
            cells.append(text if len(text) <= room else text[:room - 1] + "…")
    for row, cells in zip(rows, body):
        style = {FAILED: "red", KILLED: "yellow"}.get(row.status, "")
        cells[len(keys) + 3] = Text(row.status, style=style)
        table.add_row(*cells, style="bold" if row is best else None)
    console.print()
    console.print(Text(title, style="bold"), soft_wrap=True)
    console.print(table)


def write_csv(path: Path, rows: Sequence[TrialRow], metric: str, keys: Sequence[str],
              config_args: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "trial", "status", metric, test_metric(metric), "time_s", *keys,
                    "overrides", "command", "error", "dir", "mlflow_run_id"])
        for rank, row in enumerate(rows, 1):
            pairs = row.pairs()
            w.writerow([rank, row.number, row.status, "" if row.value is None else row.value,
                        "" if row.test_value is None else row.test_value,
                        "" if row.duration is None else round(row.duration, 3),
                        *[pairs.get(k, "") for k in keys], " ".join(row.overrides),
                        command_for(row.overrides, config_args, row.threads), row.error or "",
                        row.dir or "",
                        row.run_id or ""])
    os.replace(tmp, path)
