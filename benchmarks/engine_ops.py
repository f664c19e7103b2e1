"""Engine micro-benchmarks: per-op dispatch overhead, and convolution / matmul speed.

    python benchmarks/engine_ops.py                 # CPU, 2 threads
    python benchmarks/engine_ops.py --ctx gpu       # the same on gpu(0), plus GPU-vs-CPU ratios

Reports (1) microseconds for a tiny elementwise add: raw NumPy, dlrun outside record(),
dlrun inside record() (graph node created); (2) forward+backward time of LeNet's two
convolutions at batch 64, of a 1024x1024 matmul and of the activations on a DCGAN
discriminator's first feature map (batch x 64 x 14 x 14), next to PyTorch (CPU build) when
it is installed, with the same thread count; (3) what fusing an elementwise chain into
in-place NumPy expressions would save on CPU: ``tanh(x * a + b)`` as NumPy evaluates it
(a new array per op, temporaries elided where it can) against one buffer written in place.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="BLAS / torch threads (default 2)")
    p.add_argument("--ctx", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions per measurement")
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args()


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_op_overhead(repeats: int) -> dict:
    import numpy as np

    from dlrun.engine import array, autograd

    a, b = np.ones(4, np.float32), np.ones(4, np.float32)
    x, y = array(a), array(b)
    w = array(a)
    w.attach_grad()
    n = 2000

    def loop(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                fn()
        return run

    def recorded() -> None:
        with autograd.record():
            for _ in range(n):
                w + y

    return {
        "numpy_add_us": median_seconds(loop(lambda: a + b), repeats) / n * 1e6,
        "dlrun_add_us": median_seconds(loop(lambda: x + y), repeats) / n * 1e6,
        "dlrun_add_recorded_us": median_seconds(recorded, repeats) / n * 1e6,
    }


def inplace_chain(batch: int, repeats: int) -> dict:
    """Microseconds for tanh(x * 0.5 + b) allocating and in place, on LeNet's first and a
    DCGAN discriminator's first feature map."""
    import numpy as np

    import dlrun  # noqa: F401  (its host memory pool, as in training)

    rng = np.random.default_rng(0)
    out = {}
    for shape in ((batch, 20, 24, 24), (batch, 64, 14, 14)):
        x = rng.normal(size=shape).astype(np.float32)
        b = rng.normal(size=(shape[1], 1, 1)).astype(np.float32)
        half = np.float32(0.5)

        def in_place(x=x, b=b) -> object:
            y = np.multiply(x, half)
            y += b
            return np.tanh(y, out=y)
        out[str(shape)] = {
            "allocating_us": median_seconds(lambda x=x, b=b: np.tanh(x * half + b), repeats) * 1e6,
            "in_place_us": median_seconds(in_place, repeats) * 1e6}
    return out


# name: (dlrun op on x, the same function in torch.nn.functional / torch)
ACTIVATIONS = {
    "relu": (lambda ops, x: ops.relu(x), lambda F, x: F.relu(x)),
    "leaky_relu(0.2)": (lambda ops, x: ops.leaky_relu(x, slope=0.2), lambda F, x: F.leaky_relu(x, 0.2)),
    "elu": (lambda ops, x: ops.elu(x), lambda F, x: F.elu(x)),
    "sigmoid": (lambda ops, x: ops.sigmoid(x), lambda F, x: F.sigmoid(x)),
    "tanh": (lambda ops, x: ops.tanh(x), lambda F, x: F.tanh(x)),
    "softrelu": (lambda ops, x: ops.softrelu(x), lambda F, x: F.softplus(x)),
}
ACTIVATION_SHAPE = (64, 14, 14)  # per sample


def dlrun_workloads(ctx_name: str, batch: int):
    import numpy as np

    from dlrun.engine import array, autograd, cpu, gpu, ops, waitall

    ctx = gpu(0) if ctx_name == "gpu" else cpu()
    rng = np.random.default_rng(0)
    shapes = {"conv1 (1->20, 5x5, 28x28)": ((batch, 1, 28, 28), (20, 1, 5, 5)),
              "conv2 (20->50, 5x5, 12x12)": ((batch, 20, 12, 12), (50, 20, 5, 5))}
    out = {}
    for name, (xs, ws) in shapes.items():
        x = array(rng.normal(size=xs), ctx=ctx)
        w = array(rng.normal(size=ws) * 0.1, ctx=ctx)
        x.attach_grad()
        w.attach_grad()

        def step(x=x, w=w) -> None:
            with autograd.record():
                y = ops.convolution(x, w)
            y.backward()
            waitall()
        out[name] = step
    m1 = array(rng.normal(size=(1024, 1024)), ctx=ctx)
    m2 = array(rng.normal(size=(1024, 1024)), ctx=ctx)
    m1.attach_grad()
    m2.attach_grad()

    def matmul_step() -> None:
        with autograd.record():
            y = ops.matmul(m1, m2)
        y.backward()
        waitall()
    out["matmul 1024x1024"] = matmul_step
    a = array(rng.normal(size=(batch,) + ACTIVATION_SHAPE), ctx=ctx)
    a.attach_grad()
    for name, (ours, _) in ACTIVATIONS.items():
        def act_step(f=ours) -> None:
            with autograd.record():
                y = f(ops, a)
            y.backward()
            waitall()
        out[name] = act_step
    return out


def torch_workloads(batch: int, threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, (xs, ws) in {"conv1 (1->20, 5x5, 28x28)": ((batch, 1, 28, 28), (20, 1, 5, 5)),
                           "conv2 (20->50, 5x5, 12x12)": ((batch, 20, 12, 12), (50, 20, 5, 5))}.items():
        x = torch.randn(xs, generator=g, requires_grad=True)
        w = (torch.randn(ws, generator=g) * 0.1).requires_grad_()

        def step(x=x, w=w) -> None:
            y = torch.nn.functional.conv2d(x, w)
            y.backward(torch.ones_like(y))
        out[name] = step
    m1 = torch.randn(1024, 1024, generator=g, requires_grad=True)
    m2 = torch.randn(1024, 1024, generator=g, requires_grad=True)
    out["matmul 1024x1024"] = lambda: (m1 @ m2).backward(torch.ones(1024, 1024))
    a = torch.randn((batch,) + ACTIVATION_SHAPE, generator=g, requires_grad=True)
    for name, (_, theirs) in ACTIVATIONS.items():
        def act_step(f=theirs) -> None:
            y = f(torch.nn.functional, a)
            y.backward(torch.ones_like(y))
        out[name] = act_step
    return out


def main() -> None:
    args = parse()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    results = {"threads": args.threads, "ctx": args.ctx, "batch_size": args.batch_size,
               "overhead": per_op_overhead(args.repeats), "fwd_bwd_ms": {},
               "inplace_chain": inplace_chain(args.batch_size, args.repeats)}
    ours = dlrun_workloads(args.ctx, args.batch_size)
    cpu_ref = dlrun_workloads("cpu", args.batch_size) if args.ctx == "gpu" else None
    theirs = torch_workloads(args.batch_size, args.threads)
    for name, fn in ours.items():
        row = {"dlrun": median_seconds(fn, args.repeats) * 1e3}
        if cpu_ref is not None:
            row["dlrun_cpu"] = median_seconds(cpu_ref[name], args.repeats) * 1e3
        if theirs is not None:
            row["torch_cpu"] = median_seconds(theirs[name], args.repeats) * 1e3
        results["fwd_bwd_ms"][name] = row

    o = results["overhead"]
    print(f"per-op overhead (tiny add, {args.threads} threads):")
    print(f"  numpy a + b            {o['numpy_add_us']:8.2f} us")
    print(f"  dlrun x + y            {o['dlrun_add_us']:8.2f} us")
    print(f"  dlrun x + y, record()  {o['dlrun_add_recorded_us']:8.2f} us")
    print(f"\nforward+backward, ms (median of {args.repeats}), ctx={args.ctx}, batch {args.batch_size}:")
    for name, row in results["fwd_bwd_ms"].items():
        parts = [f"dlrun {row['dlrun']:8.2f}"]
        if "dlrun_cpu" in row:
            parts.append(f"dlrun cpu {row['dlrun_cpu']:8.2f}  (gpu speed-up {row['dlrun_cpu'] / row['dlrun']:.1f}x)")
        if "torch_cpu" in row:
            parts.append(f"torch cpu {row['torch_cpu']:8.2f}  (dlrun/torch time {row['dlrun'] / row['torch_cpu']:.2f})")
        print(f"  {name:28s} " + "   ".join(parts))
    print("\ntanh(x * 0.5 + b), us (median), NumPy allocating vs in place:")
    for shape, row in results["inplace_chain"].items():
        print(f"  {shape:28s} allocating {row['allocating_us']:8.1f}   in place {row['in_place_us']:8.1f}"
              f"  ({row['allocating_us'] / row['in_place_us']:.2f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
