"""Benchmark: convolution implementations on realistic layers, side by side.

    .venv/bin/python -m benchmarks.conv_benchmark [--repeats 7] [--threads 2] [--quick]

For each shape (the ones the speed tests use) and dtype it prints the median time, GFLOP/s
(2 * N * C_out * H_out * W_out * C_in * kh * kw per call), the ratio to torch's CPU conv2d and the
fraction of this machine's measured matrix-multiply peak. Implementations: naive pixel loops (only
on the smallest shape: they take minutes elsewhere), the reference conv2d_layer and conv2d_fast,
scipy.signal.correlate (stride 1 only), and torch.nn.functional.conv2d when torch is installed.
Threads are set the same for every library (``--threads``, default: all cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="one dtype, fewer repeats (for a smoke test)")
    args = parser.parse_args()
    _set_threads(args.threads)  # before numpy is imported

    import numpy as np

    from autograder.reference import load_reference
    from autograder.tasks import SPEED_SHAPES, SpeedShape

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    try:
        import scipy.signal as signal
    except ImportError:
        signal = None

    ref = load_reference()
    repeats = 3 if args.quick else args.repeats

    def _timed(function: Callable[[], object]) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    def median_time(function: Callable[[], object]) -> float:
        function()  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    def matmul_peak(dtype: type) -> float:
        """The best of several 2048x2048 products: a steadier estimate of the machine's GEMM peak."""
        a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(max(repeats, 5)))
        return 2 * 2048**3 / best / 1e9

    def naive(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int) -> np.ndarray:
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, C_out, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
        H_out, W_out = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
        out = np.empty((N, C_out, H_out, W_out), dtype=x.dtype)
        for n in range(N):
            for o in range(C_out):
                for i in range(H_out):
                    for j in range(W_out):
                        out[n, o, i, j] = np.sum(w[o] * xp[n, :, i * s : i * s + kh, j * s : j * s + kw]) + b[o]
        return out

    def scipy_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int) -> np.ndarray:
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        per_image = [
            np.stack([signal.correlate(xp[n], w[o], mode="valid")[0] + b[o] for o in range(w.shape[0])])
            for n in range(x.shape[0])
        ]
        return np.stack(per_image)

    def run_case(shape: SpeedShape, dtype: type) -> None:
        s, p = shape.stride, shape.padding
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape.x).astype(dtype)
        w = rng.standard_normal(shape.weight).astype(dtype)
        b = rng.standard_normal(shape.weight[0]).astype(dtype)
        H_out = (shape.x[2] + 2 * p - shape.weight[2]) // s + 1
        W_out = (shape.x[3] + 2 * p - shape.weight[3]) // s + 1
        flops = 2 * shape.x[0] * shape.weight[0] * H_out * W_out * int(np.prod(shape.weight[1:]))
        candidates: dict[str, Callable[[], object]] = {
            "reference conv2d_fast": lambda: ref.conv2d_fast(x, w, b, stride=s, padding=p),
            "reference conv2d_layer": lambda: ref.conv2d_layer(x, w, b, stride=s, padding=p),
        }
        if shape is SPEED_SHAPES[0]:
            candidates["naive pixel loops"] = lambda: naive(x, w, b, s, p)
        if signal is not None and s == 1:
            candidates["scipy.signal.correlate"] = lambda: scipy_conv(x, w, b, s, p)
        if torch is not None:
            xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            candidates["torch conv2d (CPU)"] = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
        times = {name: median_time(function) for name, function in candidates.items()}
        torch_time = times.get("torch conv2d (CPU)")
        label = f"{shape.name} {shape.x}x{shape.weight[0]}@{shape.weight[2]}x{shape.weight[3]} s{s}p{p}"
        for name, seconds in times.items():
            gflops = flops / seconds / 1e9
            versus = f"{seconds / torch_time:8.2f}x" if torch_time else "      n/a"
            print(
                f"{label[:34]:34s} {np.dtype(dtype).name:8s} {name:22s} {1000 * seconds:10.1f} {gflops:8.1f} "
                f"{versus} {gflops / peaks[dtype]:7.0%}"
            )
        sys.stdout.flush()

    dtypes = [np.float32] if args.quick else [np.float64, np.float32]
    print(f"threads: {args.threads}; numpy {np.__version__}; torch {torch.__version__ if torch else 'not installed'}")
    peaks = {dtype: matmul_peak(dtype) for dtype in dtypes}
    peak_text = ", ".join(f"{np.dtype(d).name} {g:.1f} GFLOP/s" for d, g in peaks.items())
    print(f"matmul peak (2048x2048, best run): {peak_text}")
    header = (
        f"{'shape':34s} {'dtype':8s} {'implementation':22s} {'median ms':>10s} {'GFLOP/s':>8s} "
        f"{'vs torch':>9s} {'of peak':>8s}"
    )
    print(header)
    print("-" * len(header))
    for shape in SPEED_SHAPES:
        for dtype in dtypes:
            run_case(shape, dtype)


if __name__ == "__main__":
    main()
