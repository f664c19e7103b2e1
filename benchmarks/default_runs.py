"""What ``dlrun model=NAME`` reaches at its defaults, for every model of ``conf/model/``.

Each model is run as a newcomer starts it, ``dlrun model=NAME logger=none`` and nothing else
(``--args`` adds overrides to every run, e.g. ``trainer.epochs=1`` for a quick check), one
after the other, each in a fresh folder. The model file's defaults choose the data, the
optimizer, the trainer's epochs and batch size. The table gives, per model, the test figure
of the run's primary metric (for the model that validation selected) and the figures beside
it, the wall time of the whole command (start-up, data, a GAN's scorer, the export included),
the CPU time of the process (user + system), and the machine's 1-minute load average when the
run started and ended: on a shared machine the wall times are upper bounds.

A GAN run trains its scorer the first time (cached in ``~/.cache/dlrun/scorers/``, then
reused): the first GAN run of a fresh machine takes longer than the table says.

    python benchmarks/default_runs.py                       # every model (about 20 minutes)
    python benchmarks/default_runs.py --models gan_mlp lstm_lm --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import clean_env, dlrun_command  # noqa: E402

MODELS = sorted(p.stem for p in (ROOT / "dlrun" / "conf" / "model").glob("*.yaml"))
BESIDE = {  # figures shown next to the primary one
    "test/quality": ("test/confidence", "test/class_entropy"),
    "test/root_accuracy": ("test/all_accuracy",),
}


def cpu_seconds() -> float:
    """User + system CPU time of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_default(model: str, extra: list[str], work: Path) -> dict:
    """Runs ``dlrun model=MODEL logger=none *extra`` in ``work``; its figures and timings."""
    work.mkdir(parents=True)
    load, cpu, started = os.getloadavg()[0], cpu_seconds(), time.monotonic()
    done = subprocess.run([*dlrun_command(), f"model={model}", "logger=none", *extra], cwd=work,
                          env=clean_env(), capture_output=True, text=True)
    row = {"model": model, "returncode": done.returncode,
           "wall_s": time.monotonic() - started, "cpu_s": cpu_seconds() - cpu,
           "load": [load, os.getloadavg()[0]]}
    if done.returncode != 0:
        return {**row, "error": (done.stderr.strip().splitlines() or ["(no output)"])[-1]}
    (folder,) = (work / "outputs" / "runs").glob("*/*")
    results = json.loads((folder / "results.json").read_text())
    choices = _yaml(folder / ".hydra" / "hydra.yaml")["hydra"]["runtime"]["choices"]
    metric = "test/" + results["primary_metric"].split("/", 1)[1]
    return {**row, "dataset": choices["dataset"],
            "metric": metric, "figures": {k: results[k] for k in (metric, *BESIDE.get(metric, ()))
                                          if k in results}, "epochs": results.get("epoch"),
            "results": results}


def _yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path))


def _figure(name: str, value: float) -> str:
    short = name.split("/", 1)[1]
    if short.endswith("accuracy"):
        return f"{short} {100 * value:.1f}%"
    return f"{short} {value:.4g}"


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| `model=` | data | epochs | result (test split, selected model) | wall time | "
             "CPU time | load (start, end) |", "| --- | --- | ---: | --- | ---: | ---: | --- |"]
    for row in rows:
        result = (", ".join(_figure(k, v) for k, v in row["figures"].items())
                  if row["returncode"] == 0 else f"failed: {row['error']}")
        lines.append(f"| `{row['model']}` | {row.get('dataset', '-')} | {row.get('epochs', '-')} "
                     f"| {result} | {row['wall_s']:.0f} s | {row['cpu_s']:.0f} s "
                     f"| {row['load'][0]:.1f}, {row['load'][1]:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, metavar="NAME",
                        help="models of conf/model/ to run (default: all)")
    parser.add_argument("--args", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides added to every run (default: none)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlrun-defaults-") as tmp:
        for model in args.models:
            rows.append(run_default(model, args.args, Path(tmp) / model))
            print(f"{model}: {rows[-1].get('figures', rows[-1].get('error'))} "
                  f"({rows[-1]['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs; `dlrun model=NAME logger=none{''.join(' ' + a for a in args.args)}`")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["returncode"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
