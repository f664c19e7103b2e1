#!/usr/bin/env python
"""Where a dlrun training step spends its time: cProfile, or a timer on every op.

    python benchmarks/profile_step.py --model lenet --batch-size 64 --steps 20 --top 25
    python benchmarks/profile_step.py --model lstm_lm --hybridize --by-op

Uses the same models, data, optimizer and batches as benchmarks/train_throughput.py (SGD,
lr 0.1, momentum 0.9, cycling through --num-batches seeded random batches; the LSTM LM on
20 x 20 token windows of a 10,000-word vocabulary); warm-up steps run before measuring. By default prints the top functions of a cProfile
sorted by --sort (tottime). ``--by-op`` instead times every registered op's forward and
backward (vector-Jacobian product) with a clock around each call and prints milliseconds
per step per op, with the step's time split into forward, backward and update.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Any, Callable

from train_throughput import LM_VOCAB, make_data


def _timed_ops(totals: dict[str, float], counts: collections.Counter) -> None:
    """Wrap every registered op's forward (and the vjp it returns) with a clock."""
    from dlrun.engine.registry import OPS

    def wrap(name: str, forward: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = forward(*args, **kwargs)
            totals[f"{name} forward"] += time.perf_counter() - start
            counts[f"{name} forward"] += 1
            if isinstance(result, tuple) and len(result) == 2 and callable(result[1]):
                value, vjp = result

                def timed_vjp(*a: Any, **k: Any) -> Any:
                    begin = time.perf_counter()
                    grads = vjp(*a, **k)
                    totals[f"{name} backward"] += time.perf_counter() - begin
                    counts[f"{name} backward"] += 1
                    return grads
                return value, timed_vjp
            return result
        return timed

    for name, op in OPS.items():
        op.forward = wrap(name, op.forward)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=("mlp", "lenet", "lstm_lm"), default="lenet")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images (mlp, lenet; default 64) or sequences (lstm_lm; default 20)")
    p.add_argument("--bptt", type=int, default=20, help="time steps per window (lstm_lm)")
    p.add_argument("--steps", type=int, default=20, help="measured training steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--num-batches", type=int, default=4,
                   help="distinct random batches, cycled through by the steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--hybridize", action="store_true", help="hybridize the model and the loss")
    p.add_argument("--by-op", action="store_true", help="time each op instead of running cProfile")
    p.add_argument("--sort", default="tottime")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--forward-only", action="store_true", help="profile inference forward only")
    args = p.parse_args()
    if args.batch_size is None:
        args.batch_size = 20 if args.model == "lstm_lm" else 64
    args.lm_batch_size = args.batch_size  # make_data's name for the LM's sequences per step
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import cProfile
    import pstats


    import dlrun as mx
    from dlrun import autograd, gluon, nd
    from dlrun.models.lenet import LeNet
    from dlrun.models.lstm_lm import LSTMLM
    from dlrun.models.mlp import MLP

    totals: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter = collections.Counter()
    if args.by_op:
        _timed_ops(totals, counts)  # before the first trace, so graphs replay the timed forwards

    ctx = mx.gpu(0) if args.ctx == "gpu" else mx.cpu()
    mx.random.seed(args.seed)
    lm = args.model == "lstm_lm"
    net = {"lenet": LeNet, "mlp": MLP, "lstm_lm": lambda: LSTMLM(LM_VOCAB)}[args.model]()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    if args.hybridize:
        net.hybridize()
        loss_fn.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    xs, ys, _ = make_data(args, args.model)
    xb = [nd.array(x.astype("int32") if lm else x, ctx=ctx) for x in xs]
    yb = [nd.array(y.reshape(-1).astype("int32"), ctx=ctx) for y in ys]
    states = net.begin_state(args.batch_size, ctx=ctx) if lm else None
    batch = 0
    phases: dict[str, float] = collections.defaultdict(float)

    def run() -> Any:
        nonlocal states
        x = xb[batch % len(xb)]
        if not lm:
            return net(x)
        logits, states = net(x, [h.detach() for h in states])
        return logits.reshape(-1, LM_VOCAB)

    def step() -> None:
        nonlocal batch
        batch += 1
        if args.forward_only:
            run().asnumpy()
            return
        t0 = time.perf_counter()
        with autograd.record():
            loss = loss_fn(run(), yb[batch % len(yb)])
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        trainer.step(args.batch_size)
        loss.asnumpy()
        t3 = time.perf_counter()
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["update"] += t3 - t2

    for _ in range(args.warmup):
        step()
    totals.clear()
    counts.clear()
    phases.clear()
    what = f"{'forward' if args.forward_only else 'training'} steps"
    title = (f"dlrun {args.model}{' hybridized' if args.hybridize else ''}, batch {args.batch_size}, "
             f"{args.steps} {what}, {args.threads} threads")
    if not args.by_op:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.steps):
            step()
        prof.disable()
        print(title)
        pstats.Stats(prof, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
        return 0
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = 1e3 * (time.perf_counter() - start) / args.steps
    print(f"{title}: {per_step:.2f} ms a step (with the op timers)")
    if phases:
        print("  " + ", ".join(f"{k} {1e3 * v / args.steps:.2f} ms" for k, v in phases.items()))
    print(f"{'op':<34} {'ms/step':>9} {'calls/step':>11}")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{name:<34} {1e3 * seconds / args.steps:>9.3f} {counts[name] / args.steps:>11.1f}")
    print(f"{'all ops':<34} {1e3 * sum(totals.values()) / args.steps:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
