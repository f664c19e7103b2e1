#!/usr/bin/env python
"""The GPU acceptance run (issue 22, item 5): run by ``benchmarks/gpu_check.sh``.

Steps, each with its own time limit, each recorded in ``$OUT/gpu_check.json`` (status, time,
figures) whether it passes, fails or is skipped:

1. ``device``: what computes (the GPU's name, CuPy's version, or the emulation);
2. ``gpu_lane``: the GPU test lane (``pytest -m gpu``) on the device;
3. ``families``: one epoch of each model family with ``device=gpu`` and with ``device=cpu``
   (the final training loss of both must agree to float tolerance; a GAN's, whose noise
   comes from each device's own generator, must be finite);
4. ``counts``: host transfers and kernel launches per training step (LeNet, MLP; counted on
   the emulated device, where every launch and transfer is seen: the code's own figures);
5. ``throughput``: ``train_throughput.py --ctx gpu`` for the MLP, LeNet and the LSTM LM at
   batch 64 and 256 against PyTorch CUDA eager (real GPU only: skipped on the emulation);
6. ``replay_flags``: ``replay_flags.py``, a hybridized LeNet and MLP call and training step
   with ``fuse_elementwise`` and with ``cuda_graph`` against neither (real GPU only).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
FAMILIES = {  # one epoch, small enough for minutes on a GPU and on the emulation
    "mlp": ["model=mlp", "model.dropout=0"],
    "lenet": ["model=lenet"],
    "inception": ["model=inception", "model.dropout=0"],
    "lstm_lm": ["model=lstm_lm", "model.dropout=0", "dataset=text", f"dataset.path={REPO / 'README.md'}"],
    "treelstm": ["model=treelstm", "dataset.n_train=200", "dataset.n_test=50"],
    "dcgan": ["model=dcgan", "model.base_channels=16", "task.scorer_steps=20"],
}
COMMON = ["trainer.epochs=1", "logger=none", "seed=0"]
# a GAN draws its noise from the device's generator, seeded apart from the CPU's: its losses on
# the two devices are compared for being finite, not equal
OWN_NOISE = {"dcgan"}


def run(cmd: list[str], timeout: float, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cmd`` to completion (its output kept); a timeout is a failed run, not an exception."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, 124, e.stdout or "", f"timed out after {timeout:.0f} s")


def emulated() -> bool:
    return os.environ.get("DLRUN_EMULATE_GPU", "0") not in ("", "0")


def step_device() -> dict:
    if emulated():
        return {"status": "passed", "device": f"emulated ({os.environ['DLRUN_EMULATE_GPU']} GPUs)"}
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    return {"status": "passed", "device": props["name"].decode(), "cupy": cupy.__version__,
            "gpus": cupy.cuda.runtime.getDeviceCount(),
            "compute_capability": cupy.cuda.Device(0).compute_capability}


def step_gpu_lane(out: Path, budget: float) -> dict:
    xml = out / "gpu_lane.xml"
    files = sorted({p.parent.name + "/" + p.name for p in (REPO / "tests").glob("test_*.py")
                    if re.search(r"CONTEXTS|HAS_GPU|op_tests\(", p.read_text())})
    done = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                "--continue-on-collection-errors", f"--junitxml={xml}", *files], budget, cwd=REPO)
    (out / "gpu_lane.log").write_text(done.stdout + done.stderr)
    counts = {}
    if xml.exists():
        head = xml.read_text()[:2000]
        for key in ("tests", "failures", "errors", "skipped"):
            found = re.search(rf'{key}="(\d+)"', head)
            counts[key] = int(found.group(1)) if found else None
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    ok = done.returncode == 0
    return {"status": "passed" if ok else "failed", **counts, "files": files, "failed": failed[:30],
            "summary": (done.stdout.strip().splitlines() or [""])[-1]}


def final_loss(run_dir: Path) -> float | None:
    results = json.loads((run_dir / "results.json").read_text())
    metrics = results.get("metrics", results)
    for key in ("train/loss", "train_loss", "loss", "train/loss_g", "train/generator_loss"):
        if isinstance(metrics.get(key), (int, float)):
            return float(metrics[key])
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and "loss" in k}
    return float(next(iter(sorted(numbers.items())))[1]) if numbers else None


def step_families(out: Path, budget: float, only: list[str]) -> dict:
    dlrun = [sys.executable, "-m", "dlrun.runner.main"]
    rows, start = {}, time.monotonic()
    for name in only:
        row: dict[str, Any] = {}
        for device in ("gpu", "cpu"):
            left = budget - (time.monotonic() - start)
            if left < 10:
                row[device] = "no time left"
                continue
            folder = out / "runs" / f"{name}_{device}"
            t0 = time.monotonic()
            done = run([*dlrun, *FAMILIES[name], *COMMON, f"device={device}",
                        f"hydra.run.dir={folder}"], left, cwd=out)
            row[f"{device}_seconds"] = round(time.monotonic() - t0, 1)
            if done.returncode != 0:
                row[device] = "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:300]
                continue
            row[f"{device}_loss"] = final_loss(folder)
        gpu, cpu = row.get("gpu_loss"), row.get("cpu_loss")
        row["agree"] = gpu is not None and cpu is not None and (
            math.isfinite(gpu) and math.isfinite(cpu) if name in OWN_NOISE
            else abs(gpu - cpu) <= 1e-3 * max(1.0, abs(cpu)))
        rows[name] = row
    ok = all(r["agree"] for r in rows.values())
    return {"status": "passed" if ok else "failed", "families": rows}


COUNT_SCRIPT = r"""
import json, sys
import numpy as np
import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine.testing import counting
from dlrun.models.lenet import LeNet
from dlrun.models.mlp import MLP
out = {}
for name, net in (("lenet", LeNet()), ("mlp", MLP())):
    ctx = mx.gpu(0)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = nd.array(np.random.default_rng(0).normal(size=(64, 1, 28, 28)), ctx=ctx)
    y = nd.array(np.arange(64) % 10, ctx=ctx)
    for step in range(3):
        with counting() as c:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(64)
            value = loss.mean().asscalar()
    out[name] = {"to_host": c.to_host, "to_device": c.to_device, "launches": c.launches}
print(json.dumps(out))
"""


def step_counts(budget: float) -> dict:
    done = run([sys.executable, "-c", COUNT_SCRIPT], budget, env={"DLRUN_EMULATE_GPU": "1"}, cwd=REPO)
    if done.returncode != 0:
        return {"status": "failed", "error": done.stderr.strip()[-600:]}
    return {"status": "passed", "per_step": json.loads(done.stdout.strip().splitlines()[-1]),
            "note": "counted on the emulated device (every transfer and launch of dlrun's code)"}


def step_throughput(out: Path, budget: float) -> dict:
    if emulated():
        return {"status": "skipped", "note": "GPU only: the emulation's speed means nothing"}
    results, start = {}, time.monotonic()
    for batch in (64, 256):
        path = out / f"throughput_b{batch}.json"
        left = budget - (time.monotonic() - start)
        done = run([sys.executable, "benchmarks/train_throughput.py", "--ctx", "gpu", "--models",
                    "mlp", "lenet", "lstm_lm", "--frameworks", "dlrun", "pytorch", "--batch-size",
                    str(batch), "--steps", "20", "--repeats", "2", "--json", str(path)], left, cwd=REPO)
        (out / f"throughput_b{batch}.log").write_text(done.stdout + done.stderr)
        results[str(batch)] = json.loads(path.read_text()) if path.exists() else {
            "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    ok = all("error" not in r for r in results.values())
    return {"status": "passed" if ok else "failed", "batches": results}


def step_replay_flags(out: Path, budget: float) -> dict:
    if emulated():
        return {"status": "skipped", "note": "GPU only: the emulation neither fuses nor captures"}
    path = out / "replay_flags.json"
    done = run([sys.executable, "benchmarks/replay_flags.py", "--ctx", "gpu", "--json", str(path)],
               budget, cwd=REPO)
    (out / "replay_flags.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not path.exists():
        return {"status": "failed", "error": done.stderr.strip()[-600:]}
    return {"status": "passed", **json.loads(path.read_text())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "outputs/gpu_check")))
    p.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--skip", nargs="*", default=[], help="steps to leave out")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every step's time limit (a slow or shared machine, the emulation)")
    args = p.parse_args(argv)
    k = args.time_scale
    args.out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, Callable[[], dict]] = {
        "device": step_device,
        "gpu_lane": lambda: step_gpu_lane(args.out, 150 * k),
        "families": lambda: step_families(args.out, 180 * k, args.families),
        "counts": lambda: step_counts(40 * k),
        "throughput": lambda: step_throughput(args.out, 150 * k),
        "replay_flags": lambda: step_replay_flags(args.out, 90 * k),
    }
    report: dict[str, Any] = {"emulated": emulated(), "steps": {}}
    for name, step in steps.items():
        t0 = time.monotonic()
        if name in args.skip:
            result = {"status": "skipped", "note": "--skip"}
        else:
            try:
                result = step()
            except Exception as e:  # a step that breaks is reported, the others still run
                result = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        result["seconds"] = round(time.monotonic() - t0, 1)
        report["steps"][name] = result
        print(f"{name}: {result['status']} ({result['seconds']} s)", flush=True)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    failed = [n for n, r in report["steps"].items() if r["status"] == "failed"]
    print(f"report: {args.out / 'gpu_check.json'}; failed steps: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
