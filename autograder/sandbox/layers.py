"""Layers for the shift tests, built from a plain description.

The same code runs in the grader (to compute what a layer should give) and in the worker (to
build the layer the student's function is tested with), so a copy sits beside the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["build_layer"]

# ---------------------------------------------------------------------------------------------


def _circular_conv_fft(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """'Same'-size circular cross-correlation by FFT (an implementation independent of the reference)."""
    H, W = x.shape[-2:]
    C_out, C_in, kh, kw = weight.shape
    kernel = np.zeros((C_out, C_in, H, W))
    for m in range(kh):
        for q in range(kw):
            # out[i] = sum_m w[m] x[i + m - kh//2]  <=>  correlation with the kernel placed at -(m - kh//2)
            kernel[:, :, (kh // 2 - m) % H, (kw // 2 - q) % W] += weight[:, :, m, q]
    spectrum = np.einsum("nchw,ochw->nohw", np.fft.fft2(x), np.fft.fft2(kernel))
    out = np.real(np.fft.ifft2(spectrum))
    return out if bias is None else out + bias[None, :, None, None]


def build_layer(spec: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Build a layer ``(N, C, H, W) -> array`` from a description (see the kinds below).

    Kinds: ``circular_conv`` (weight, bias), ``relu``, ``square``, ``scale`` (factor),
    ``position_bias`` (bias of shape (H, W)), ``untied_1x1`` (weight (H, W, C_out, C_in)),
    ``subsample_upsample`` (stride), ``crop`` (by), ``zero_pad_conv`` (weight), ``global_avg_pool``
    (output ``(N, C, 1, 1)``), ``compose`` (layers).

    Args:
        spec: the description, with arrays as NumPy arrays.

    Returns:
        A function of one array.
    """
    kind = spec["kind"]
    if kind == "circular_conv":
        weight, bias = spec["weight"], spec.get("bias")
        return lambda x: _circular_conv_fft(x, weight, bias)
    if kind == "relu":
        return lambda x: np.maximum(x, 0.0)
    if kind == "square":
        return lambda x: x * x
    if kind == "scale":
        factor = spec["factor"]
        return lambda x: factor * x
    if kind == "position_bias":
        bias = spec["bias"]
        return lambda x: x + bias
    if kind == "untied_1x1":
        weight = spec["weight"]
        return lambda x: np.einsum("ijoc,ncij->noij", weight, x)
    if kind == "subsample_upsample":
        s = spec["stride"]
        return lambda x: np.repeat(np.repeat(x[..., ::s, ::s], s, axis=-2), s, axis=-1)[
            ..., : x.shape[-2], : x.shape[-1]
        ]
    if kind == "crop":
        k = spec["by"]
        return lambda x: x[..., k:, k:]
    if kind == "global_avg_pool":
        return lambda x: x.mean(axis=(-2, -1), keepdims=True)
    if kind == "zero_pad_conv":
        weight = spec["weight"]

        def zero_pad_conv(x: np.ndarray) -> np.ndarray:
            kh, kw = weight.shape[2:]
            padded = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
            H, W = x.shape[-2:]
            out = np.zeros((x.shape[0], weight.shape[0], H, W))
            for m in range(kh):
                for q in range(kw):
                    out += np.einsum("ncij,oc->noij", padded[:, :, m : m + H, q : q + W], weight[:, :, m, q])
            return out

        return zero_pad_conv
    if kind == "compose":
        layers = [build_layer(part) for part in spec["layers"]]

        def composed(x: np.ndarray) -> np.ndarray:
            for layer in layers:
                x = layer(x)
            return x

        return composed
    raise ValueError(f"unknown layer kind {kind!r}")
