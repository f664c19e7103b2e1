#!/usr/bin/env python
"""Training throughput of dlrun (imperative and hybridized) vs PyTorch eager and MXNet 1.9.1
(imperative and hybridized) on the MLP, LeNet and the LSTM language model (issues 3, 8, 20).

For each model and framework this measures, on the same random data, batch size and
thread count:

* training throughput in samples/s: one step = forward + loss + backward + SGD update
  (lr 0.1, momentum 0.9) + reading the loss back to the host (the sync point); for the
  LSTM LM a sample is one token (a step is --bptt x --lm-batch-size tokens, the hidden
  state carried and detached between steps, as in truncated BPTT);
* forward-only time per batch (inference mode: no autograd recording, dropout off);
* peak RSS of the process that ran it.

Each (framework, model) pair runs in its own child process so that the thread settings
apply before NumPy / PyTorch are imported, peak RSS is per run, and one framework's
allocations or thread pools do not disturb the other. ``--inprocess`` runs everything in
this process instead (peak RSS then becomes cumulative).

Usage::

    python benchmarks/train_throughput.py --models mlp lenet lstm_lm --batch-size 64

Frameworks: ``dlrun`` (imperative), ``dlrun-hybrid`` (``net.hybridize()``: the graph is
traced during warm-up and replayed in the timed steps), ``pytorch`` (eager, CPU build), and
``mxnet`` / ``mxnet-hybrid`` (MXNet 1.9.1 imperative, and ``hybridize(static_alloc=True,
static_shape=True)``), run with the python of the side virtualenv the differential tests
make (``.mxvenv``, ``tests/mxnet_compat/make_venv.py``; skipped with a note when absent).

The loss is reduced the Gluon way in dlrun (per-sample loss, ``backward()`` sums it,
``trainer.step(batch_size)`` divides the gradient by the batch size) and with
``CrossEntropyLoss(reduction='mean')`` in PyTorch: the same gradients, the same update.

This is a script, not a test: it is not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
MODELS = ("mlp", "lenet", "lstm_lm")
FRAMEWORKS = ("dlrun", "dlrun-hybrid", "pytorch", "mxnet", "mxnet-hybrid")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LM_VOCAB = 10000  # the Penn Treebank vocabulary size; Zaremba et al.'s small model below


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS),
                   help="pytorch is skipped (with a note) when it cannot be imported")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (mlp, lenet)")
    p.add_argument("--lm-batch-size", type=int, default=20, help="sequences per step (lstm_lm)")
    p.add_argument("--bptt", type=int, default=20, help="time steps per window (lstm_lm)")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per repeat")
    p.add_argument("--warmup", type=int, default=5, help="untimed training steps before timing")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed repeats of --steps steps; the median step time is reported")
    p.add_argument("--forward-steps", type=int, default=20,
                   help="timed forward-only batches per repeat (0 disables)")
    p.add_argument("--threads", type=int, default=2,
                   help="BLAS/OpenMP threads for NumPy and torch.set_num_threads")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--num-batches", type=int, default=4,
                   help="distinct random batches, cycled through by the steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    p.add_argument("--rounds", type=_positive, default=1,
                   help="run every (model, framework) this many times, interleaved, and report "
                        "medians over the rounds (ratios: the median of each round's ratio, whose "
                        "runs were minutes apart at most); steadies figures on a shared machine")
    p.add_argument("--inprocess", action="store_true",
                   help="run all measurements in this process instead of one child each")
    p.add_argument("--_worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def set_thread_env(threads: int) -> None:
    """Must run before NumPy (or anything importing it) is imported to take effect."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


# --------------------------------------------------------------------------- helpers
# Everything below imports numpy lazily, after set_thread_env.

def make_data(args: argparse.Namespace, model: str):
    """The same arrays for every framework: seeded NumPy generation, float32 / int64.

    Images (N, 1, 28, 28) and labels for mlp/lenet; (bptt, batch) token windows and their
    next tokens for lstm_lm."""
    import numpy as np
    rng = np.random.default_rng(args.seed)
    if model == "lstm_lm":
        shape = (args.bptt, args.lm_batch_size)
        xs = [rng.integers(0, LM_VOCAB, size=shape, dtype=np.int64) for _ in range(args.num_batches)]
        ys = [rng.integers(0, LM_VOCAB, size=shape, dtype=np.int64) for _ in range(args.num_batches)]
    else:
        xs = [rng.standard_normal((args.batch_size, 1, 28, 28), dtype=np.float32)
              for _ in range(args.num_batches)]
        ys = [rng.integers(0, 10, size=args.batch_size, dtype=np.int64)
              for _ in range(args.num_batches)]
    checksum = float(sum(float(x.sum(dtype=np.float64)) for x in xs) + sum(int(y.sum()) for y in ys))
    return xs, ys, checksum


def peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _time_loop(fn, n_steps: int, n_batches: int, repeats: int) -> tuple[list[float], list[float]]:
    """Run ``repeats`` x ``n_steps`` calls of fn(i % n_batches).

    Returns (seconds per repeat, seconds per single step over all repeats). Each call
    ends with a host sync, so a step's wall time is the whole step's cost.
    """
    totals, steps = [], []
    clock = time.perf_counter
    for _ in range(repeats):
        t_start = clock()
        for i in range(n_steps):
            t0 = clock()
            fn(i % n_batches)
            steps.append(clock() - t0)
        totals.append(clock() - t_start)
    return totals, steps


def _measure(train_step, fwd_step, last: dict, args: argparse.Namespace,
             to_inference: Callable[[], Any] | None = None) -> tuple:
    """Warm up, then time ``train_step`` and (``--forward-steps``) ``fwd_step``, after
    ``to_inference`` (a framework whose forward mode is a switch: PyTorch's ``eval()``):
    (training times, forward times, the loss after the warm-up)."""
    for i in range(args.warmup):
        train_step(i % args.num_batches)
    first_loss = last.get("loss")
    train_times = _time_loop(train_step, args.steps, args.num_batches, args.repeats)
    fwd_times = []
    if args.forward_steps:
        if to_inference is not None:
            to_inference()
        for i in range(min(args.warmup, args.forward_steps)):
            fwd_step(i % args.num_batches)
        fwd_times = _time_loop(fwd_step, args.forward_steps, args.num_batches, args.repeats)
    return train_times, fwd_times, first_loss


# --------------------------------------------------------------------------- dlrun

def bench_dlrun(model: str, args: argparse.Namespace, hybridize: bool = False) -> dict:
    import dlrun as mx
    from dlrun import autograd, gluon, nd
    from dlrun.models.lenet import LeNet
    from dlrun.models.lstm_lm import LSTMLM
    from dlrun.models.mlp import MLP

    xs, ys, checksum = make_data(args, model)
    ctx = mx.gpu(0) if args.ctx == "gpu" else mx.cpu()
    mx.random.seed(args.seed)
    lm = model == "lstm_lm"
    net = {"lenet": LeNet, "mlp": MLP, "lstm_lm": lambda: LSTMLM(LM_VOCAB)}[model]()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    if hybridize:  # as Gluon code does: the network and the loss (a HybridBlock too)
        net.hybridize()
        loss_fn.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    # Host -> device conversion is done once, outside the timed loop (as in PyTorch).
    xb = [nd.array(x.astype("int32") if lm else x, ctx=ctx) for x in xs]
    yb = [nd.array(y.reshape(-1).astype("int32"), ctx=ctx) for y in ys]
    bs = args.lm_batch_size if lm else args.batch_size
    last = {}
    states = net.begin_state(bs, ctx=ctx) if lm else None

    def run(x: Any) -> Any:
        nonlocal states
        if not lm:
            return net(x)
        logits, states = net(x, [h.detach() for h in states])
        return logits.reshape(-1, LM_VOCAB)

    def train_step(i: int) -> None:
        with autograd.record():
            loss = loss_fn(run(xb[i]), yb[i])
        loss.backward()
        trainer.step(bs)
        last["loss"] = float(loss.asnumpy().mean())  # sync

    def fwd_step(i: int) -> None:
        run(xb[i]).asnumpy()  # outside record(): predict mode, dropout off

    train_times, fwd_times, first_loss = _measure(train_step, fwd_step, last, args)
    return _result("dlrun-hybrid" if hybridize else "dlrun", model, args, train_times, fwd_times,
                   first_loss, last.get("loss"), checksum, mx.__version__)


# --------------------------------------------------------------------------- mxnet

def bench_mxnet(model: str, args: argparse.Namespace, hybridize: bool = False) -> dict:
    """The same three models written in MXNet 1.9.1's Gluon (run by the side venv's python)."""
    import mxnet as mx
    from mxnet import autograd, gluon, nd
    from mxnet.gluon import nn, rnn

    xs, ys, checksum = make_data(args, model)
    ctx = mx.gpu(0) if args.ctx == "gpu" else mx.cpu()
    mx.random.seed(args.seed)
    lm = model == "lstm_lm"
    if lm:
        net = _MXLSTMLM(gluon, nn, rnn)
    else:
        net = nn.HybridSequential()
        if model == "lenet":
            net.add(nn.Conv2D(20, 5, activation="tanh"), nn.AvgPool2D(2),
                    nn.Conv2D(50, 5, activation="tanh"), nn.AvgPool2D(2),
                    nn.Dense(500, activation="tanh"), nn.Dense(10))
        else:
            net.add(nn.Dense(128, activation="relu"), nn.Dropout(0.5),
                    nn.Dense(64, activation="relu"), nn.Dropout(0.5), nn.Dense(10))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
        loss_fn.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    xb = [nd.array(x, ctx=ctx, dtype="float32") for x in xs]
    yb = [nd.array(y.reshape(-1), ctx=ctx, dtype="float32") for y in ys]
    bs = args.lm_batch_size if lm else args.batch_size
    last = {}
    states = [nd.zeros((2, bs, 200), ctx=ctx), nd.zeros((2, bs, 200), ctx=ctx)] if lm else None

    def run(x: Any) -> Any:
        nonlocal states
        if not lm:
            return net(x)
        logits, states = net(x, [h.detach() for h in states])
        return logits.reshape((-1, LM_VOCAB))

    def train_step(i: int) -> None:
        with autograd.record():
            loss = loss_fn(run(xb[i]), yb[i])
        loss.backward()
        trainer.step(bs)
        last["loss"] = float(loss.asnumpy().mean())  # sync

    def fwd_step(i: int) -> None:
        run(xb[i]).asnumpy()

    train_times, fwd_times, first_loss = _measure(train_step, fwd_step, last, args)
    return _result("mxnet-hybrid" if hybridize else "mxnet", model, args, train_times, fwd_times,
                   first_loss, last.get("loss"), checksum, mx.__version__)


def _MXLSTMLM(gluon: Any, nn: Any, rnn: Any) -> Any:
    """Zaremba et al.'s small model in MXNet Gluon: embedding 200 -> 2-layer LSTM 200 -> dense."""
    class LSTMLM(gluon.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            with self.name_scope():
                self.embedding = nn.Embedding(LM_VOCAB, 200)
                self.lstm = rnn.LSTM(200, num_layers=2, input_size=200)
                self.decoder = nn.Dense(LM_VOCAB, flatten=False, in_units=200)

        def hybrid_forward(self, F: Any, tokens: Any, state: Any) -> Any:
            hidden, state = self.lstm(self.embedding(tokens), state)
            return self.decoder(hidden), state
    return LSTMLM()


def mxnet_python() -> str:
    """The side venv's python (``$DLRUN_MXNET_VENV`` or ``.mxvenv``)."""
    folder = os.environ.get("DLRUN_MXNET_VENV") or os.path.join(ROOT, ".mxvenv")
    return os.path.join(folder, "bin", "python")


def mxnet_usable() -> str | None:
    """None if the side venv imports MXNet, else the reason."""
    python = mxnet_python()
    if not os.path.exists(python):
        return f"{python} is missing (make it: python tests/mxnet_compat/make_venv.py)"
    proc = subprocess.run([python, "-c", "import mxnet"], capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


# --------------------------------------------------------------------------- pytorch

def bench_pytorch(model: str, args: argparse.Namespace) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    if args.ctx == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("--ctx gpu but this PyTorch build has no CUDA device")
    device = torch.device("cuda" if args.ctx == "gpu" else "cpu")
    xs, ys, checksum = make_data(args, model)
    torch.manual_seed(args.seed)
    lm = model == "lstm_lm"
    if lm:
        net = _TorchLSTMLM()
    elif model == "lenet":
        net = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(20, 50, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10))
    else:
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))
    for m in net.modules():  # Xavier weights, zero biases, as dlrun's initializer
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    net.to(device)
    loss_fn = nn.CrossEntropyLoss(reduction="mean")
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    xb = [torch.from_numpy(x).to(device) for x in xs]
    yb = [torch.from_numpy(y.reshape(-1)).to(device) for y in ys]
    last = {}
    state = None

    def run(x: Any) -> Any:
        nonlocal state
        if not lm:
            return net(x)
        logits, state = net(x, None if state is None else tuple(h.detach() for h in state))
        return logits.reshape(-1, LM_VOCAB)

    def train_step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(run(xb[i]), yb[i])
        loss.backward()
        opt.step()
        last["loss"] = loss.item()  # sync

    def fwd_step(i: int) -> None:
        with torch.no_grad():
            run(xb[i]).cpu()

    net.train()
    train_times, fwd_times, first_loss = _measure(train_step, fwd_step, last, args, net.eval)
    return _result("pytorch", model, args, train_times, fwd_times, first_loss, last.get("loss"),
                   checksum, torch.__version__)


def _TorchLSTMLM() -> Any:
    """Zaremba et al.'s small model in PyTorch: embedding 200 -> 2-layer LSTM 200 -> linear."""
    from torch import nn

    class LSTMLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(LM_VOCAB, 200)
            self.lstm = nn.LSTM(200, 200, num_layers=2)
            self.decoder = nn.Linear(200, LM_VOCAB)

        def forward(self, tokens: Any, state: Any) -> Any:
            hidden, state = self.lstm(self.embedding(tokens), state)
            return self.decoder(hidden), state
    return LSTMLM()


# --------------------------------------------------------------------------- results

def _result(framework, model, args, train_times, fwd_times, first_loss, last_loss, checksum,
            version) -> dict:
    totals, steps = train_times
    per_step = args.bptt * args.lm_batch_size if model == "lstm_lm" else args.batch_size
    per_repeat = [args.steps * per_step / t for t in totals]
    step_med = _median(steps)
    fwd_steps = fwd_times[1] if fwd_times else []
    return {
        "framework": framework, "version": version, "model": model,
        # headline: batch size / median step time (robust to interference from other processes)
        "samples_per_s": per_step / step_med,
        "train_ms_per_step_median": 1e3 * step_med,
        "train_ms_per_step_min": 1e3 * min(steps),
        # plain total-over-steps throughput of each repeat, and its median
        "samples_per_s_total_median": _median(per_repeat),
        "samples_per_s_total_repeats": per_repeat,
        "forward_ms_per_batch": (1e3 * _median(fwd_steps)) if fwd_steps else None,
        "peak_rss_mib": peak_rss_mib(),
        "loss_after_warmup": first_loss, "loss_last": last_loss,
        "data_checksum": checksum,
    }


def run_one(framework: str, model: str, args: argparse.Namespace) -> dict:
    if framework == "pytorch":
        return bench_pytorch(model, args)
    if framework.startswith("mxnet"):
        return bench_mxnet(model, args, hybridize=framework == "mxnet-hybrid")
    return bench_dlrun(model, args, hybridize=framework == "dlrun-hybrid")


def run_child(framework: str, model: str, argv: list[str]) -> dict:
    python = mxnet_python() if framework.startswith("mxnet") else sys.executable
    cmd = [python, os.path.abspath(__file__), *argv, "--_worker", framework, model]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return {"framework": framework, "model": model, "error": err}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_importable() -> str | None:
    """None if torch imports, else the reason (checked in a child: keeps this process clean)."""
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["import torch failed"])[-1]


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def write_json(args: argparse.Namespace, **fields: Any) -> None:
    """A benchmark's figures into ``args.json``: the date, the options given and ``fields``."""
    payload = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "config": {k: v for k, v in vars(args).items() if k not in ("_worker", "json")},
               **fields}
    with open(args.json, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {args.json}")


def _ratio(by: dict, a: str, b: str, model: str) -> float | None:
    x, y = (by.get((fw, model), {}).get("samples_per_s") for fw in (a, b))
    return x / y if x and y else None


def combine_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One result per (framework, model): the median over the rounds of every figure, the
    ratios as the median of each round's own ratio, and each round's result under 'rounds'."""
    keys = [(r["framework"], r["model"]) for r in rounds[0]]
    per_round = [{(r["framework"], r["model"]): r for r in results} for results in rounds]
    combined = []
    for key in keys:
        runs = [by[key] for by in per_round if key in by and "error" not in by[key]]
        if not runs:
            combined.append(per_round[0][key])
            continue
        out = {}
        for k, v in runs[0].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
                out[k] = _median(values) if values else None
            else:
                out[k] = v
        if key[0] == "dlrun-hybrid":
            for name, other in (("hybrid_over_imperative", "dlrun"), ("hybrid_over_torch", "pytorch"),
                                ("hybrid_over_mxnet_hybrid", "mxnet-hybrid")):
                ratios = [x for x in (_ratio(by, "dlrun-hybrid", other, key[1]) for by in per_round)
                          if x is not None]
                out[name] = _median(ratios) if ratios else None
                out[name + "_rounds"] = ratios
        out["rounds"] = [by.get(key) for by in per_round]
        combined.append(out)
    return combined


def print_table(results: list[dict], args: argparse.Namespace, notes: list[str]) -> None:
    by = {(r["framework"], r["model"]): r for r in results}
    header = ["model", "imperative /s", "hybridized /s", "torch /s", "mxnet /s", "mxnet hybrid /s",
              "hybrid/imp", "hybrid/torch", "hybrid/mx hybrid", "imp fwd ms", "hybrid fwd ms",
              "torch fwd ms", "mx hybrid fwd ms", "imp MiB", "hybrid MiB", "torch MiB", "mx MiB"]
    rows = []
    for m in args.models:
        d, h, t, x, xh = (by.get((fw, m), {}) for fw in FRAMEWORKS)
        ds, hs, ts, xs, xhs = (r.get("samples_per_s") for r in (d, h, t, x, xh))
        hd = h.get("hybrid_over_imperative", hs / ds if hs and ds else None)
        ht = h.get("hybrid_over_torch", hs / ts if hs and ts else None)
        hx = h.get("hybrid_over_mxnet_hybrid", hs / xhs if hs and xhs else None)
        rows.append([
            m, *(fmt(v, ",.0f") for v in (ds, hs, ts, xs, xhs)),
            fmt(hd, ".3f"), fmt(ht, ".3f"), fmt(hx, ".3f"),
            *(fmt(r.get("forward_ms_per_batch"), ".2f") for r in (d, h, t, xh)),
            *(fmt(r.get("peak_rss_mib"), ".0f") for r in (d, h, t, xh)),
        ])
    title = (f"Training throughput (batch {args.batch_size}; lstm_lm {args.bptt} x {args.lm_batch_size} "
             f"tokens; {args.threads} threads, ctx {args.ctx}, "
             f"median step of {args.repeats} x {args.steps}, {args.warmup} warm-up"
             f"{f'; median of {args.rounds} interleaved rounds' if args.rounds > 1 else ''})")
    try:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        Console(width=max(Console().width, 132)).print(table)
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(cells, widths)))
        print(line(header))
        print(line(["-" * w for w in widths]))
        for r in rows:
            print(line(r))
    for r in results:
        if "error" in r:
            notes.append(f"{r['framework']}/{r['model']} failed: {r['error']}")
    print("/s = samples (images; tokens for lstm_lm) per second = samples per step / median step "
          "time; hybrid/imp, hybrid/torch and hybrid/mx hybrid: throughput ratios of dlrun's "
          "hybridized model (> 1: it is faster); MiB: peak RSS of the process")
    for n in notes:
        print(f"note: {n}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_thread_env(args.threads)  # before any numpy import below (and inherited by children)

    if args._worker:
        print(json.dumps(run_one(*args._worker, args)))
        return 0

    notes: list[str] = []
    frameworks = list(args.frameworks)
    if "pytorch" in frameworks:
        why = torch_importable()
        if why is not None:
            frameworks.remove("pytorch")
            notes.append(f"PyTorch not importable, skipped ({why})")
    if any(fw.startswith("mxnet") for fw in frameworks):
        why = mxnet_usable()
        if why is not None or args.inprocess:
            frameworks = [fw for fw in frameworks if not fw.startswith("mxnet")]
            notes.append(f"MXNet skipped ({why or 'it runs in its own venv, not --inprocess'})")
    rounds = []
    for _ in range(args.rounds):
        results = []
        for model in args.models:
            for fw in frameworks:
                if args.inprocess:
                    try:
                        results.append(run_one(fw, model, args))
                    except Exception as exc:  # report and go on with the others
                        results.append({"framework": fw, "model": model, "error": repr(exc)})
                else:
                    results.append(run_child(fw, model, argv))
        rounds.append(results)
    results = rounds[0] if args.rounds == 1 else combine_rounds(rounds)
    if args.inprocess:
        notes.append("--inprocess: peak RSS is cumulative over the runs before it")
    print_table(results, args, notes)

    if args.json:
        write_json(args, machine={"platform": platform.platform(), "processor": platform.processor(),
                                  "python": platform.python_version(), "cpu_count": os.cpu_count()},
                   results=results, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
