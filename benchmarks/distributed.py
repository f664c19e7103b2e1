#!/usr/bin/env python
"""Data-parallel training with MPI: one worker vs an ``mpiexec -n N`` job (issue 9).

For LeNet (MNIST-shaped 28x28 random images) and the LSTM language model (Zaremba et al.'s
small model, as in ``train_throughput.py``), with the same batch per worker, this measures:

* the training throughput of one plain process, and of a job of N workers (default 2) that
  ``mpiexec -n N`` starts on this same script in worker mode: every worker takes its part of
  each global batch of N x batch (rows of the images, columns of the LM's token windows, as
  ``DataLoader(shard=...)`` and the LM task split them) and the trainer sums the gradients
  over the ranks (``kvstore='dist_sync'``: a ``GradientReducer``); the job's throughput is
  N x batch per worker / step time (samples/s; tokens/s for the LM);
* the time per step spent in ``trainer.allreduce_grads`` in the job, timed apart from the
  forward/backward and the update, and its share of the step;
* the scaling efficiency, throughput(N workers) / (N x throughput(1 worker));
* the gradient bytes reduced per step and the number of buckets they travel in.

A step is forward + loss + backward, the all-reduce, the SGD update (lr 0.1, momentum 0.9)
and reading the loss back to the host. Times are medians over ``--steps`` timed steps after
``--warmup`` untimed ones; in the job a step takes the slowest rank's time and the all-reduce
the mean over the ranks (it includes waiting for a slower rank to finish its backward).

BLAS/OpenMP threads are 1 per process by default (``--threads``), set in the environment
before NumPy is imported and inherited by the mpiexec job, so that N workers on N cores
compare fairly with one worker on one core.

Usage::

    python benchmarks/distributed.py --models lenet lstm_lm --json out.json

``--device gpu`` puts each worker on a GPU (CuPy; the one of its local rank) and reduces
with kvstore 'nccl'. This is a script, not a test: it is not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from train_throughput import LM_VOCAB, fmt, make_data, set_thread_env, write_json

if TYPE_CHECKING:
    from dlrun.parallel import World

MODELS = ("lenet", "lstm_lm")
DEFAULT_STEPS = {"lenet": 300, "lstm_lm": 80}  # 10-20 s a run on 2 cores, 1 thread a process


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (the job's workers get the same one, plus ``--_worker MODEL``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--workers", type=int, default=2, help="processes of the mpiexec job")
    p.add_argument("--batch-size", type=int, default=64, help="images per step and worker (lenet)")
    p.add_argument("--lm-batch-size", type=int, default=20,
                   help="sequences per step and worker (lstm_lm)")
    p.add_argument("--bptt", type=int, default=20, help="time steps per window (lstm_lm)")
    p.add_argument("--steps", type=int, help="timed steps per run (None: "
                   + ", ".join(f"{m} {n}" for m, n in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per process")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="gpu: one GPU per worker (CuPy), gradients reduced with NCCL")
    p.add_argument("--num-batches", type=int, default=4,
                   help="distinct random batches, cycled through by the steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mpiexec", metavar="PATH",
                   help="the launcher (default: the one beside this Python, else PATH's)")
    p.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    p.add_argument("--_worker", choices=MODELS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.workers < 2:
        p.error("--workers: the job needs at least 2 processes")
    return args


# --------------------------------------------------------------------------- worker mode
# One process of the measured run: a plain process (a world of one) or a rank of the job.

def bench_worker(model: str, args: argparse.Namespace, world: World) -> dict | None:
    """Train ``model`` on this rank's part of the batches and time the steps; returns the
    figures of the whole run on rank 0, None on the other ranks."""
    import numpy as np

    import dlrun as mx
    from dlrun import autograd, gluon, nd
    from dlrun.models.lenet import LeNet
    from dlrun.models.lstm_lm import LSTMLM
    from dlrun.parallel.reducer import BUCKET_BYTES, make_buckets

    n, lm = world.size, model == "lstm_lm"
    bs = args.lm_batch_size if lm else args.batch_size
    # the job's global batches (the same on every rank: same seed); each rank keeps its part
    global_args = argparse.Namespace(**{**vars(args), "batch_size": n * args.batch_size,
                                        "lm_batch_size": n * args.lm_batch_size})
    xs, ys, _ = make_data(global_args, model)

    def part(a: Any) -> Any:
        return np.ascontiguousarray(np.array_split(a, n, axis=1 if lm else 0)[world.rank])

    ctx = mx.gpu(world.local_rank) if args.device == "gpu" else mx.cpu()
    xb = [nd.array(part(x).astype("int32") if lm else part(x), ctx=ctx) for x in xs]
    yb = [nd.array(part(y).reshape(-1).astype("int32"), ctx=ctx) for y in ys]

    mx.random.seed(args.seed)
    net = LSTMLM(LM_VOCAB) if lm else LeNet()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9},
                            kvstore="nccl" if args.device == "gpu" else "dist_sync")
    states = net.begin_state(bs, ctx=ctx) if lm else None
    clock = time.perf_counter

    def step(i: int) -> tuple[float, float]:
        """One training step; returns (step seconds, all-reduce seconds)."""
        nonlocal states
        t0 = clock()
        with autograd.record():
            if lm:
                logits, states = net(xb[i], [h.detach() for h in states])
                logits = logits.reshape(-1, LM_VOCAB)
            else:
                logits = net(xb[i])
            loss = loss_fn(logits, yb[i])
        loss.backward()
        nd.waitall()  # a no-op on the CPU; on a GPU the backward's kernels are not all-reduce time
        t1 = clock()
        total = trainer.allreduce_grads(bs)
        nd.waitall()
        t2 = clock()
        trainer.update(total)
        loss.asnumpy()  # sync
        return clock() - t0, t2 - t1

    steps = args.steps or DEFAULT_STEPS[model]
    for i in range(args.warmup):
        step(i % args.num_batches)
    world.barrier()  # every rank starts timing together
    timed = np.array([step(i % args.num_batches) for i in range(steps)])
    ranks = world.allgather((os.getpid(), timed))
    if not world.is_root:
        return None
    times = np.stack([t for _, t in ranks])  # (rank, step, [step, all-reduce]) seconds
    step_s = float(np.median(times[:, :, 0].max(axis=0)))  # the job moves at its slowest rank
    allreduce_s = float(np.median(times[:, :, 1].mean(axis=0)))
    grads = [p.data().grad.asnumpy() for p in net.collect_params().values() if p.grad_req != "null"]
    per_worker = bs * args.bptt if lm else bs  # samples (tokens for the LM) per step and worker
    return {
        "model": model, "workers": n, "launcher": world.launcher, "pids": [pid for pid, _ in ranks],
        "device": str(ctx), "steps": steps, "samples_per_step_per_worker": per_worker,
        "samples_per_s": n * per_worker / step_s,
        "step_ms_median": 1e3 * step_s,
        "allreduce_ms_median": 1e3 * allreduce_s,
        "allreduce_share": allreduce_s / step_s,
        "rank_step_ms_median": [1e3 * float(np.median(t[:, 0])) for t in times],
        "rank_allreduce_ms_median": [1e3 * float(np.median(t[:, 1])) for t in times],
        "grad_bytes": sum(g.nbytes for g in grads),
        # as the trainer's reducer lays them out: the batch size rides in the first bucket
        "buckets": len(make_buckets(grads, BUCKET_BYTES, extra=1)),
    }


def worker_main(args: argparse.Namespace) -> int:
    """Worker mode: rank 0 prints the run's figures as one JSON line; a failing rank ends the
    whole job rather than leave the others waiting in a collective."""
    from dlrun.parallel import current

    world = current()
    try:
        result = bench_worker(args._worker, args, world)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        world.abort(1)  # ends every rank of a job; nothing to do in a plain process
        return 1
    if result is not None:
        print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- launcher mode

def machine() -> dict[str, Any]:
    """Cores, platform, NumPy and the MPI library (its version only: MPI is not initialized)."""
    import numpy as np

    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "load_average": list(os.getloadavg())}
    try:
        import mpi4py
        mpi4py.rc.initialize = mpi4py.rc.finalize = False
        from mpi4py import MPI
        info["mpi4py"] = mpi4py.__version__
        info["mpi_library"] = MPI.Get_library_version().splitlines()[0].strip()
    except ImportError:
        info["mpi_library"] = "mpi4py not installed (pip install 'dlrun[dist]')"
    return info


def measure(model: str, workers: int, argv: list[str], mpiexec: str | None) -> dict:
    """One measured run in its own process(es): a plain process for 1 worker, else
    ``mpiexec -n workers``. Returns rank 0's figures, or {'error': ...}."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--_worker", model]
    if workers > 1:
        if mpiexec is None:
            return {"error": "no mpiexec beside this Python or on PATH (pip install 'dlrun[dist]')"}
        cmd = [mpiexec, "-n", str(workers), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        errors = [ln for ln in proc.stderr.splitlines() if ln and not ln.startswith(" ")]
        return {"error": (errors or [f"exit status {proc.returncode}"])[-1]}
    result = json.loads(lines[-1])
    if result["workers"] != workers:
        return {"error": f"{workers} processes started but each saw a world of "
                         f"{result['workers']}: mpi4py is built against another MPI than "
                         "this mpiexec's"}
    return result


def summarize(model: str, one: dict, job: dict, workers: int) -> dict:
    """The two runs of ``model`` and the scaling efficiency between them."""
    ok = "error" not in one and "error" not in job
    eff = job["samples_per_s"] / (workers * one["samples_per_s"]) if ok else None
    return {"model": model, "one_worker": one, "job": job, "scaling_efficiency": eff}


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """The table of the runs, then a legend and a note for each run that failed."""
    workers = args.workers
    batch = {"lenet": str(args.batch_size), "lstm_lm": f"{args.bptt} x {args.lm_batch_size}"}
    header = ["model", "batch/worker", "1 worker /s", f"{workers} workers /s", "1w ms/step",
              f"{workers}w ms/step", "all-reduce ms", "all-reduce %", "efficiency", "grad MiB",
              "buckets"]
    cells = []
    for r in rows:
        one, job = r["one_worker"], r["job"]
        share = job.get("allreduce_share")
        size = job.get("grad_bytes", one.get("grad_bytes"))
        cells.append([
            r["model"], batch[r["model"]],
            fmt(one.get("samples_per_s"), ",.0f"), fmt(job.get("samples_per_s"), ",.0f"),
            fmt(one.get("step_ms_median"), ".2f"), fmt(job.get("step_ms_median"), ".2f"),
            fmt(job.get("allreduce_ms_median"), ".2f"),
            fmt(None if share is None else 100 * share, ".1f"),
            fmt(r["scaling_efficiency"], ".3f"),
            fmt(None if size is None else size / 2**20, ".2f"), fmt(job.get("buckets"), "d")])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))

    print(line(header))
    print(line(["-" * w for w in widths]))
    for c in cells:
        print(line(c))
    print("batch/worker: images (lenet), time steps x sequences (lstm_lm); /s: samples per second "
          "(tokens for lstm_lm) = workers x batch/worker / median step time; "
          "all-reduce: median time in trainer.allreduce_grads per step (mean over the ranks, "
          "waiting for a slower rank included) and its share of the step; efficiency = "
          f"{workers}-worker /s / ({workers} x 1-worker /s)")
    for r in rows:
        for name, res in (("1 worker", r["one_worker"]), (f"{workers} workers", r["job"])):
            if "error" in res:
                print(f"note: {r['model']} with {name} failed: {res['error']}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_thread_env(args.threads)  # before any numpy import (and inherited by the children)
    if args._worker:
        return worker_main(args)

    from dlrun.parallel import DistributedError
    from dlrun.parallel.launch import find_mpiexec

    try:
        mpiexec = find_mpiexec(args.mpiexec)
    except DistributedError:
        mpiexec = None
    info = machine()
    steps = ", ".join(f"{m} {args.steps or DEFAULT_STEPS[m]}" for m in args.models)
    print(f"Data-parallel training, dlrun on {args.device}: 1 worker vs mpiexec -n {args.workers} "
          f"(batch {args.batch_size} per worker; lstm_lm {args.bptt} x {args.lm_batch_size} tokens "
          f"per worker; {args.threads} thread(s) per process; median over timed steps: {steps}; "
          f"{args.warmup} warm-up steps)")
    load = " ".join(f"{x:.2f}" for x in info["load_average"])
    print(f"machine: {info['cpu_count']} cores, {info['platform']}, Python {info['python']}, "
          f"NumPy {info['numpy']}, load average {load}")
    print(f"MPI: {info['mpi_library']} (mpiexec: {mpiexec})", flush=True)

    rows = [summarize(m, measure(m, 1, argv, mpiexec), measure(m, args.workers, argv, mpiexec),
                      args.workers) for m in args.models]
    print_table(rows, args)
    if args.json:
        write_json(args, machine=info, mpiexec=mpiexec, results=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
