"""Benchmark: convolution implementations on realistic layers, side by side.

    .venv/bin/python -m benchmarks.conv_benchmark [--repeats 7] [--threads 2] [--quick]
        [--device cpu|cuda] [--json FILE]

For each shape (the ones the speed tests use) and dtype it prints the median time, GFLOP/s
(2 * N * C_out * H_out * W_out * C_in * kh * kw per call), the ratio to torch's conv2d on the same
device and the fraction of the device's measured matrix-multiply peak.

``--device cpu`` (the default): naive pixel loops (only on the smallest shape: they take minutes
elsewhere), the reference conv2d_layer and conv2d_fast, scipy.signal.correlate (stride 1 only), and
torch.nn.functional.conv2d when torch is installed. Threads are set the same for every library
(``--threads``, default: all cores).

``--device cuda`` (Task 5.3): the reference conv2d_fast on CuPy arrays against torch's conv2d on
CUDA tensors (TF32 off, so that both compute in the dtype asked for), each call timed to the end of
its GPU work; it also checks that the two agree. It needs CuPy with a CUDA device; torch is optional.

``--json FILE`` also writes every measurement there (``benchmarks/gpu_check.sh`` reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The implementations ``--device cuda`` times (also the keys of its ``--json`` output).
CUPY_REFERENCE = "ref conv2d_fast (CuPy)"
TORCH_CUDA = "torch conv2d (CUDA)"
TORCH_CPU = "torch conv2d (CPU)"


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="one dtype, fewer repeats (for a smoke test)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: CuPy against torch on a GPU")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the measurements here as JSON")
    args = parser.parse_args()
    _set_threads(args.threads)  # before numpy is imported
    on_gpu = args.device == "cuda"

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
    cupy: Any = None
    if on_gpu:
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception as problem:  # ImportError, or CUDA's errors where no device or driver is usable
            parser.error(
                f'--device cuda needs CuPy with a CUDA device (pip install -e ".[gpu]"); here: '
                f"{type(problem).__name__}: {problem}"
            )
        if torch is not None and not torch.cuda.is_available():
            torch = None
        if torch is not None:  # the same arithmetic as CuPy: no TF32 shortcuts for float32
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    def synchronize() -> None:
        """Wait for the GPU's queued work (the CPU's calls return when they are done)."""
        if on_gpu:
            cupy.cuda.Device().synchronize()
            if torch is not None:
                torch.cuda.synchronize()

    ref = load_reference()
    repeats = 3 if args.quick else args.repeats

    def _timed(function: Callable[[], object]) -> float:
        synchronize()
        started = time.perf_counter()
        function()
        synchronize()
        return time.perf_counter() - started

    def median_time(function: Callable[[], object]) -> float:
        _timed(function)  # warm-up
        return statistics.median(_timed(function) for _ in range(repeats))

    def matmul_peak(dtype: type) -> float:
        """The best of several 2048x2048 products: a steadier estimate of the device's GEMM peak."""
        a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
        if on_gpu:
            a = cupy.asarray(a)
        _timed(lambda: a @ a)
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

    def gpu_candidates(
        x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int
    ) -> tuple[dict[str, Callable[[], object]], bool | None]:
        """The CuPy reference and torch on CUDA, and whether their values agree (None: no torch)."""
        xg, wg, bg = cupy.asarray(x), cupy.asarray(w), cupy.asarray(b)
        candidates: dict[str, Callable[[], object]] = {
            CUPY_REFERENCE: lambda: ref.conv2d_fast(xg, wg, bg, stride=s, padding=p)
        }
        if torch is None:
            return candidates, None
        xt, wt, bt = (torch.from_numpy(a).cuda() for a in (x, w, b))
        candidates[TORCH_CUDA] = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
        mine = cupy.asnumpy(candidates[CUPY_REFERENCE]())
        theirs = candidates[TORCH_CUDA]().cpu().numpy()
        tolerance = 1e-4 if x.dtype == np.float32 else 1e-10
        scale = float(np.abs(theirs).max()) or 1.0
        return candidates, bool(np.allclose(mine, theirs, rtol=tolerance, atol=tolerance * scale))

    def run_case(shape: SpeedShape, dtype: type) -> dict[str, Any]:
        s, p = shape.stride, shape.padding
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape.x).astype(dtype)
        w = rng.standard_normal(shape.weight).astype(dtype)
        b = rng.standard_normal(shape.weight[0]).astype(dtype)
        H_out = (shape.x[2] + 2 * p - shape.weight[2]) // s + 1
        W_out = (shape.x[3] + 2 * p - shape.weight[3]) // s + 1
        flops = 2 * shape.x[0] * shape.weight[0] * H_out * W_out * int(np.prod(shape.weight[1:]))
        agrees: bool | None = None
        if on_gpu:
            candidates, agrees = gpu_candidates(x, w, b, s, p)
        else:
            candidates = {
                "reference conv2d_fast": lambda: ref.conv2d_fast(x, w, b, stride=s, padding=p),
                "reference conv2d_layer": lambda: ref.conv2d_layer(x, w, b, stride=s, padding=p),
            }
            if shape is SPEED_SHAPES[0]:
                candidates["naive pixel loops"] = lambda: naive(x, w, b, s, p)
            if signal is not None and s == 1:
                candidates["scipy.signal.correlate"] = lambda: scipy_conv(x, w, b, s, p)
            if torch is not None:
                xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
                candidates[TORCH_CPU] = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
        times = {name: median_time(function) for name, function in candidates.items()}
        torch_time = times.get(TORCH_CUDA if on_gpu else TORCH_CPU)
        label = f"{shape.name} {shape.x}x{shape.weight[0]}@{shape.weight[2]}x{shape.weight[3]} s{s}p{p}"
        for name, seconds in times.items():
            gflops = flops / seconds / 1e9
            versus = f"{seconds / torch_time:8.2f}x" if torch_time else "      n/a"
            print(
                f"{label[:34]:34s} {np.dtype(dtype).name:8s} {name:22s} {1000 * seconds:10.1f} {gflops:8.1f} "
                f"{versus} {gflops / peaks[dtype]:7.0%}"
            )
        if agrees is False:
            print(f"{label[:34]:34s} {np.dtype(dtype).name:8s} the CuPy reference and torch DISAGREE")
        sys.stdout.flush()
        return {"shape": shape.name, "dtype": np.dtype(dtype).name, "flops": flops, "seconds": times, "agrees": agrees}

    dtypes = [np.float32] if args.quick else [np.float64, np.float32]
    torch_text = torch.__version__ if torch else ("not installed or no CUDA" if on_gpu else "not installed")
    if on_gpu:
        device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
        print(f"device: {device}; cupy {cupy.__version__}; numpy {np.__version__}; torch {torch_text}; TF32 off")
    else:
        print(f"threads: {args.threads}; numpy {np.__version__}; torch {torch_text}")
    peaks = {dtype: matmul_peak(dtype) for dtype in dtypes}
    peak_text = ", ".join(f"{np.dtype(d).name} {g:.1f} GFLOP/s" for d, g in peaks.items())
    print(f"matmul peak (2048x2048, best run{' on the GPU' if on_gpu else ''}): {peak_text}")
    header = (
        f"{'shape':34s} {'dtype':8s} {'implementation':22s} {'median ms':>10s} {'GFLOP/s':>8s} "
        f"{'vs torch':>9s} {'of peak':>8s}"
    )
    print(header)
    print("-" * len(header))
    cases = [run_case(shape, dtype) for shape in SPEED_SHAPES for dtype in dtypes]
    if args.json:
        record = {
            "device": args.device,
            "threads": args.threads,
            "numpy": np.__version__,
            "torch": torch.__version__ if torch else None,
            "cupy": cupy.__version__ if on_gpu else None,
            "peak_gflops": {np.dtype(d).name: g for d, g in peaks.items()},
            "cases": cases,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
