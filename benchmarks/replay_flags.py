#!/usr/bin/env python
"""Time hybridized LeNet and MLP calls with ``hybridize(fuse_elementwise=True)`` and with
``hybridize(static_shape=True, cuda_graph=True)`` against a plain ``hybridize()`` (issue 22,
item 5): a predict call and a training step (forward, backward; no optimizer), each ending with
a host read (the sync point), median milliseconds of ``--steps`` after 3 warm-up calls, and
how many elementwise chains the predict graph holds (the ones fusion fuses).

Run by ``benchmarks/gpu_check.sh`` (step ``replay_flags``) on a real GPU; on a CPU or the
emulated GPU it runs too, but its times say nothing about the flags there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dlrun import autograd, gluon, nd
from dlrun.engine import cpu, gpu
from dlrun.engine.fusion import chains
from dlrun.models.lenet import LeNet
from dlrun.models.mlp import MLP

MODELS = {"lenet": (LeNet, (1, 28, 28)), "mlp": (lambda: MLP(dropout=0), (784,))}
FLAGS = {"plain": {}, "fuse_elementwise": {"fuse_elementwise": True},
         "cuda_graph": {"static_shape": True, "cuda_graph": True}}


def median_ms(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def bench(model: str, flags: dict, ctx, batch: int, steps: int) -> dict:
    cls, shape = MODELS[model]
    net = cls()
    net.initialize(ctx=ctx)
    net.hybridize(**flags)
    x = nd.array(np.random.default_rng(0).standard_normal((batch, *shape)).astype("float32"), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    label = nd.array(np.arange(batch) % 10, ctx=ctx)

    def train() -> None:
        with autograd.record():
            loss = loss_fn(net(x), label)
        loss.backward()
        loss.asnumpy()

    result = {"predict_ms": median_ms(lambda: net(x).asnumpy(), steps), "train_ms": median_ms(train, steps)}
    return dict(result, fusable_chains=len(chains(net._cached.last_graph(training=False))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ctx", choices=["gpu", "cpu"], default="gpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)
    ctx = gpu(0) if args.ctx == "gpu" else cpu()
    results = {m: {name: bench(m, flags, ctx, args.batch_size, args.steps) for name, flags in FLAGS.items()}
               for m in MODELS}
    text = json.dumps({"ctx": args.ctx, "batch_size": args.batch_size, "results": results}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
