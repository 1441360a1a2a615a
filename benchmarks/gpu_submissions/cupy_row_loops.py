"""A slow CuPy submission's ``conv2d_fast``: right values on NumPy and CuPy arrays, but a Python loop
over images, output rows and kernel offsets, so a GPU spends its time waiting for the next tiny kernel.

``benchmarks.gpu_submissions`` splices the function below into the reference in place of its own
``conv2d_fast``; the imports above it are there for readers and linters (the reference module
provides them). It uses the reference's ``_array_module`` helper, so NumPy input stays on the CPU.
"""

from __future__ import annotations

import numpy as np

from solutions.weight_sharing import _array_module, _check_conv_args


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1 on NumPy or CuPy arrays, one small matrix product per (image, output row, kernel offset).

    Args:
        x: input batch, shape ``(N, C_in, H, W)`` (NumPy or CuPy).
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: shape ``(C_out,)``, or ``None``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)``, the same array library as ``x``.

    Raises:
        ValueError: as ``conv2d_layer``.
    """
    xp = _array_module(x)
    N, _, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
    C_out, _, kh, kw = weight.shape
    dtype = xp.result_type(x, weight)
    w = weight.astype(dtype, copy=False)
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = xp.zeros((N, C_out, H_out, W_out), dtype=dtype)
    for n in range(N):
        for i in range(H_out):
            row = out[n, :, i]  # (C_out, W_out), a view: += writes into out
            for m in range(kh):
                for q in range(kw):
                    row += w[:, :, m, q] @ x[n, :, i * stride + m, q : q + stride * (W_out - 1) + 1 : stride]
    if bias is not None:
        out += bias.astype(dtype, copy=False).reshape(1, C_out, 1, 1)
    return out
