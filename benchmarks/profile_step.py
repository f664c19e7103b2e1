#!/usr/bin/env python
"""cProfile of dlrun training steps (forward + backward + SGD update), for optimizing the engine.

    python benchmarks/profile_step.py --model lenet --batch-size 64 --steps 20 --top 25

Uses the same model, data and optimizer as benchmarks/train_throughput.py; warm-up steps
are run before profiling starts. Prints the top functions sorted by --sort (tottime).
"""
from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=("mlp", "lenet"), default="lenet")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="profiled training steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--hybridize", action="store_true")
    p.add_argument("--sort", default="tottime")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--forward-only", action="store_true", help="profile inference forward only")
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import cProfile
    import pstats

    import numpy as np

    import dlrun as mx
    from dlrun import autograd, gluon, nd
    from dlrun.models.lenet import LeNet
    from dlrun.models.mlp import MLP

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.batch_size, 1, 28, 28), dtype=np.float32)
    y_np = rng.integers(0, 10, size=args.batch_size)
    ctx = mx.gpu(0) if args.ctx == "gpu" else mx.cpu()
    mx.random.seed(0)
    net = LeNet() if args.model == "lenet" else MLP()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    if args.hybridize:
        net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    x = nd.array(x_np, ctx=ctx)
    y = nd.array(y_np.astype("int32"), ctx=ctx)

    def step() -> None:
        if args.forward_only:
            net(x).asnumpy()
            return
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(args.batch_size)
        loss.asnumpy()

    for _ in range(args.warmup):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        step()
    prof.disable()
    print(f"dlrun {args.model}, batch {args.batch_size}, {args.steps} "
          f"{'forward' if args.forward_only else 'training'} steps, {args.threads} threads")
    pstats.Stats(prof, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
