#!/usr/bin/env python
"""Tree-LSTM training throughput (trees/s): the plain recursion vs level-by-level batching.

One training step = forward over a minibatch of trees, softmax cross-entropy summed over the
labelled nodes, backward, AdaGrad update (the sst_treelstm recipe's settings: lr 0.05, word
vectors at 0.1, wd 1e-4 as MXNet's coefficient, dropout 0.5), and reading the loss back to
the host. The two modes of ``dlrun.models.treelstm.TreeLSTM`` run the same steps on the same
minibatches, from the same initial parameters:

* ``recursive``  (``batched=False``): the seed's recursion, one cell call per node;
* ``batched``    (``batched=True``): one cell call per tree height across the minibatch.

Data: the SST training trees (``$DLRUN_DATA/sst`` or ``--data-root``; constituency trees,
binary cell, fine-grained labels), or the embedded ListOps trees when SST is absent
(Child-Sum cell: ListOps nodes have up to 5 children). The reference printed beside the
figures is the one-tree-at-a-time PyTorch figure quoted by issue 6 (46 trees/s on two
cores); it is a constant, not measured here.

``--clock cpu`` times the steps by this process's CPU time instead of the wall clock: on a
machine other jobs load, trees per CPU-second (with ``--threads 1``) compare two versions of
the code where wall-clock trees/s mostly measure the load.

Usage::

    python benchmarks/treelstm_throughput.py [--threads 2] [--batch-size 25] [--clock cpu] [--json PATH]

This is a script, not a test: it is not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
MODES = ("recursive", "batched")
PYTORCH_REFERENCE = 46.0  # trees/s, one tree at a time, two cores: the figure issue 6 quotes
PYTORCH_SOURCE = "issue 6 (one-tree-at-a-time PyTorch Tree-LSTM, two cores); not measured here"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for NumPy")
    p.add_argument("--data-root", default=None,
                   help="folder holding sst/{train,dev,test}.txt (default: $DLRUN_DATA)")
    p.add_argument("--dataset", choices=("auto", "sst", "listops"), default="auto",
                   help="auto: SST when its files are there, else ListOps")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="timed training per mode (whole steps; at least --min-steps)")
    p.add_argument("--min-steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time steps by the wall clock or by this process's CPU time")
    p.add_argument("--hidden-size", type=int, default=150)
    p.add_argument("--embed-size", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    return p.parse_args(argv)


def set_thread_env(threads: int) -> None:
    """Must run before NumPy (or anything importing it) is imported to take effect."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def load_trees(args: argparse.Namespace):
    """(name, dataset, cell) for the run."""
    from pathlib import Path

    from dlrun.data.listops import listops
    from dlrun.data.trees import sst

    root = args.data_root or os.environ.get("DLRUN_DATA")
    have_sst = root is not None and all((Path(root) / "sst" / f).exists()
                                        for f in ("train.txt", "dev.txt", "test.txt"))
    if args.dataset == "sst" or (args.dataset == "auto" and have_sst):
        return "SST train (fine-grained)", sst(root, fine_grained=True), "binary"
    return "ListOps train (embedded)", listops(), "childsum"


def build(data, cell: str, batched: bool, args: argparse.Namespace):
    import dlrun as mx
    from dlrun.models.treelstm import TreeLSTM
    from dlrun.optim import AdaGrad, Trainer

    mx.random.seed(args.seed)
    net = TreeLSTM(len(data.vocab), data.num_classes, embed_size=args.embed_size,
                   hidden_size=args.hidden_size, cell=cell, dropout=0.5, batched=batched,
                   embedding_lr_mult=2.0, embedding_wd_mult=0.0)
    net.initialize(mx.init.Xavier(magnitude=2.24))
    trainer = Trainer(net.collect_params(), AdaGrad(learning_rate=0.05, wd=1e-4))
    return net, trainer


def measure(mode: str, data, cell: str, batches: list, args: argparse.Namespace) -> dict:
    import numpy as np

    from dlrun import autograd, nd
    from dlrun.loss import SoftmaxCrossEntropyLoss

    net, trainer = build(data, cell, mode == "batched", args)
    loss_fn = SoftmaxCrossEntropyLoss()

    def step(batch) -> float:
        keep = np.flatnonzero(batch.labels >= 0)
        with autograd.record():
            logits = net(batch)
            cost = loss_fn(nd.take(logits, nd.array(keep, dtype="int64")),
                           nd.array(batch.labels[keep], dtype="int64")).sum()
        cost.backward()
        trainer.step(len(batch))
        return float(cost.asscalar()) / len(keep)

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    first = step(batches[0])
    for i in range(1, args.warmup):
        step(batches[i % len(batches)])
    times, trees, losses = [], 0, []
    i = args.warmup
    total = 0.0
    while total < args.seconds or len(times) < args.min_steps:
        batch = batches[i % len(batches)]
        start = clock()
        losses.append(step(batch))
        times.append(clock() - start)
        total += times[-1]
        trees += len(batch)
        i += 1
    return {"mode": mode, "trees_per_sec": trees / total, "steps": len(times), "trees": trees,
            "median_step_ms": 1e3 * float(np.median(times)), "first_loss": first,
            "last_loss": losses[-1]}


def same_outputs(data, cell: str, batch, args: argparse.Namespace) -> float:
    """Largest |difference| of the two modes' logits on one batch (same parameters, no dropout)."""
    import numpy as np

    net, _ = build(data, cell, False, args)
    recursive = net(batch).asnumpy()
    net.batched = True
    return float(np.abs(net(batch).asnumpy() - recursive).max())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_thread_env(args.threads)
    import numpy as np

    from dlrun.models.treelstm import TreeBatch

    name, data, cell = load_trees(args)
    order = np.random.default_rng(args.seed).permutation(len(data.train))
    trees = [data.train[i] for i in order]
    batches = [TreeBatch.of(trees[i:i + args.batch_size])
               for i in range(0, len(trees), args.batch_size)]
    nodes = np.mean([b.num_nodes / len(b) for b in batches])
    print(f"{name}: {len(data.train):,} trees, {nodes:.1f} nodes per tree; cell {cell}, "
          f"memory {args.hidden_size}, word vectors {args.embed_size}; batch {args.batch_size} "
          f"trees; {args.threads} threads; {args.clock} clock; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    diff = same_outputs(data, cell, batches[0], args)
    print(f"check: the two modes' logits on one batch differ by at most {diff:.2e} (float32)")
    results = [measure(mode, data, cell, batches, args) for mode in args.modes]
    base = next((r["trees_per_sec"] for r in results if r["mode"] == "recursive"), None)
    print()
    print(f"{'mode':<28}{'trees/s':>10}{'ms/step':>10}{'steps':>7}{'vs recursive':>14}"
          f"{'vs PyTorch ref':>16}")
    for r in results:
        rel = f"{r['trees_per_sec'] / base:.1f}x" if base else "-"
        print(f"{'dlrun ' + r['mode']:<28}{r['trees_per_sec']:>10.1f}{r['median_step_ms']:>10.1f}"
              f"{r['steps']:>7}{rel:>14}{r['trees_per_sec'] / PYTORCH_REFERENCE:>15.1f}x")
    print(f"{'PyTorch one tree at a time':<28}{PYTORCH_REFERENCE:>10.1f}{'':>10}{'':>7}{'':>14}"
          f"{'1.0x':>16}")
    print(f"  (reference: {PYTORCH_SOURCE})")
    out = {"dataset": name, "cell": cell, "batch_size": args.batch_size, "threads": args.threads,
           "clock": args.clock,
           "hidden_size": args.hidden_size, "embed_size": args.embed_size,
           "nodes_per_tree": float(nodes), "max_logit_difference": diff, "results": results,
           "pytorch_reference_trees_per_sec": PYTORCH_REFERENCE,
           "pytorch_reference": PYTORCH_SOURCE,
           "load_average": os.getloadavg()[0], "cpus": os.cpu_count()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
