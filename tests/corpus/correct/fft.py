"""A correct submission that computes every convolution with FFTs.

Cross-correlation becomes a product in the frequency domain: the circular cross-correlation of x
with w has the spectrum ``X * conj(Wf)`` (w real). The 'valid' part of a cross-correlation is the
top-left corner of the circular one computed on the input's own size (no wrap-around reaches it),
strides subsample it, and a circular kernel larger than the image is folded onto the image's size
first. FFT results are exact only up to rounding (about 1e-16 of the largest term in float64).
Everything that is not a convolution uses index arithmetic and scatter-adds (``np.add.at``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _xp(array: Any) -> Any:
    """NumPy, or CuPy for a CuPy array."""
    if type(array).__module__.partition(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def _as_pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _circular_xcorr(x: Any, w: Any, lib: Any = np) -> Any:
    """``r[n, o, i, j] = sum_{c,a,b} w[o, c, a, b] * x[n, c, (i + a) % H, (j + b) % W]`` by FFT.

    x: (N, C, H, W); w: (O, C, kh, kw) with kh <= H, kw <= W. Computed in float64 (complex128).
    """
    H, W = x.shape[-2:]
    spectrum_x = lib.fft.rfft2(x.astype(lib.float64), s=(H, W), axes=(-2, -1))
    spectrum_w = lib.fft.rfft2(w.astype(lib.float64), s=(H, W), axes=(-2, -1))
    product = lib.einsum("nchw,ochw->nohw", spectrum_x, lib.conj(spectrum_w))
    return lib.fft.irfft2(product, s=(H, W), axes=(-2, -1))


def _validate_layer(x: Any, weight: Any, bias: Any, stride: Any, padding: Any) -> tuple[int, int]:
    """Raise ValueError for a bad layer call; return (H_out, W_out)."""
    if x.ndim != 4:
        raise ValueError(f"x must have 4 dimensions (N, C_in, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must have 4 dimensions (C_out, C_in, kh, kw), got shape {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"channel mismatch: x has {x.shape[1]}, weight expects {weight.shape[1]}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias shape {bias.shape} does not match {weight.shape[0]} filters")
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    if isinstance(padding, bool) or int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    Hp, Wp = x.shape[2] + 2 * int(padding), x.shape[3] + 2 * int(padding)
    if weight.shape[2] > Hp or weight.shape[3] > Wp:
        raise ValueError(f"kernel {weight.shape[2:]} larger than the padded input {(Hp, Wp)}")
    return (Hp - weight.shape[2]) // int(stride) + 1, (Wp - weight.shape[3]) // int(stride) + 1


def _fft_layer(x: Any, weight: Any, bias: Any, stride: int, padding: int) -> Any:
    lib = _xp(x)
    H_out, W_out = _validate_layer(x, weight, bias, stride, padding)
    stride, padding = int(stride), int(padding)
    dtype = lib.result_type(x, weight) if bias is None else lib.result_type(x, weight, bias)
    if padding:
        x = lib.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    full = _circular_xcorr(x, weight, lib)
    out = full[:, :, : (H_out - 1) * stride + 1 : stride, : (W_out - 1) * stride + 1 : stride]
    if bias is not None:
        out = out + bias.astype(lib.float64)[None, :, None, None]
    return lib.ascontiguousarray(out.astype(dtype))


# Part 1 ------------------------------------------------------------------------------------------


def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Task 1.1: valid cross-correlation = the top-left corner of the circular one."""
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"conv2d takes 2-D arrays, got image {image.shape} and kernel {kernel.shape}")
    (H, W), (kh, kw) = image.shape, kernel.shape
    if kh > H or kw > W:
        raise ValueError(f"kernel {kernel.shape} is bigger than image {image.shape}")
    full = _circular_xcorr(image[None, None], kernel[None, None])[0, 0]
    return full[: H - kh + 1, : W - kw + 1].astype(np.result_type(image, kernel))


def conv2d_layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 1.2: pad, correlate by FFT, subsample by the stride, add the bias."""
    return _fft_layer(x, weight, bias, stride, padding)


# Part 2 ------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Task 2.1."""
    arguments = {"size": (size, 1), "kernel_size": (kernel_size, 1), "stride": (stride, 1), "padding": (padding, 0)}
    for name, (value, smallest) in arguments.items():
        if type(value) is bool or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < smallest:
            raise ValueError(f"{name} must be at least {smallest}, got {value}")
    span = size + 2 * padding
    if kernel_size > span:
        raise ValueError(f"kernel_size {kernel_size} exceeds the padded size {span}")
    return int(-(-(span - kernel_size + 1) // stride))  # ceil((span - k + 1) / s) == (span - k) // s + 1


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2."""
    return int(out_features * (in_features + int(bool(bias))))


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True) -> int:
    """Task 2.3."""
    kh, kw = _as_pair(kernel_size, "kernel_size")
    return int(out_channels * (in_channels * kh * kw + int(bool(bias))))


def locally_connected2d_params(
    input_size: int | tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    bias: bool = True,
) -> int:
    """Task 2.4."""
    sizes = _as_pair(input_size, "input_size")
    kernel = _as_pair(kernel_size, "kernel_size")
    positions = 1
    for size, k in zip(sizes, kernel, strict=True):
        positions *= conv_output_size(size, k, stride)
    return int(positions * conv2d_params(in_channels, out_channels, kernel, bias))


def _summary_conv(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    C, H, W = shape
    kh, kw = _as_pair(layer["kernel_size"], "kernel_size")
    stride, padding, out_channels = layer.get("stride", 1), layer.get("padding", 0), layer["out_channels"]
    new = (out_channels, conv_output_size(H, kh, stride, padding), conv_output_size(W, kw, stride, padding))
    return new, conv2d_params(C, out_channels, (kh, kw), layer.get("bias", True))


def _summary_local(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    C, H, W = shape
    kh, kw = _as_pair(layer["kernel_size"], "kernel_size")
    stride, out_channels = layer.get("stride", 1), layer["out_channels"]
    new = (out_channels, conv_output_size(H, kh, stride), conv_output_size(W, kw, stride))
    return new, locally_connected2d_params((H, W), C, out_channels, (kh, kw), stride, layer.get("bias", True))


def _summary_pool(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    C, H, W = shape
    kh, kw = _as_pair(layer["kernel_size"], "kernel_size")
    sh, sw = _as_pair(layer.get("stride", layer["kernel_size"]), "stride")
    return (C, conv_output_size(H, kh, sh), conv_output_size(W, kw, sw)), 0


def _summary_dense(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    (features,) = shape
    return (layer["out_features"],), dense_params(features, layer["out_features"], layer.get("bias", True))


_SUMMARIES = {
    "conv2d": (3, _summary_conv),
    "locally_connected2d": (3, _summary_local),
    "maxpool2d": (3, _summary_pool),
    "avgpool2d": (3, _summary_pool),
    "dense": (1, _summary_dense),
    "flatten": (None, lambda layer, shape: ((int(np.prod(shape, dtype=np.int64)),), 0)),
    "relu": (None, lambda layer, shape: (shape, 0)),
}


def network_summary(
    layers: Sequence[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], int]]:
    """Task 2.5: a table of handlers, one per layer type."""
    shape: tuple[int, ...] = tuple(map(int, input_shape))
    result: list[tuple[tuple[int, ...], int]] = []
    for position, layer in enumerate(layers):
        kind = layer.get("type")
        if kind not in _SUMMARIES:
            raise ValueError(f"layer #{position}: unknown type {kind!r}")
        rank, handler = _SUMMARIES[kind]
        if rank is not None and len(shape) != rank:
            raise ValueError(f"layer #{position} ({kind}) cannot take an input of shape {shape}")
        try:
            shape, params = handler(layer, shape)
        except KeyError as key:
            raise ValueError(f"layer #{position} ({kind}) lacks the option {key}") from None
        shape = tuple(int(v) for v in shape)
        result.append((shape, int(params)))
    return result


# Part 3 ------------------------------------------------------------------------------------------


def _local_indices(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Any) -> tuple[Any, Any]:
    """Validate a locally-connected call; return the gather indices rows (H_out, kh), cols (W_out, kw)."""
    if x.ndim != 4 or weight.ndim != 6:
        raise ValueError(f"expected x (N, C_in, H, W) and weight 6-D, got {x.shape} and {weight.shape}")
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    stride = int(stride)
    H_out, W_out, C_out, C_in, kh, kw = weight.shape
    if C_in != x.shape[1]:
        raise ValueError(f"channel mismatch: x has {x.shape[1]}, weight expects {C_in}")
    H, W = x.shape[2:]
    if kh > H or kw > W:
        raise ValueError(f"kernel {(kh, kw)} does not fit in {(H, W)}")
    if (H_out, W_out) != ((H - kh) // stride + 1, (W - kw) // stride + 1):
        raise ValueError(f"weight is for {H_out}x{W_out} positions, the input has a different number")
    if bias is not None and bias.shape != (H_out, W_out, C_out):
        raise ValueError(f"bias shape {bias.shape} should be {(H_out, W_out, C_out)}")
    rows = stride * np.arange(H_out)[:, None] + np.arange(kh)[None, :]
    cols = stride * np.arange(W_out)[:, None] + np.arange(kw)[None, :]
    return rows, cols


def locally_connected2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """Task 3.1: gather the receptive fields, contract each with its own filter bank."""
    rows, cols = _local_indices(x, weight, bias, stride)
    fields = x[:, :, rows[:, :, None, None], cols[None, None, :, :]]  # (N, C, H_out, kh, W_out, kw)
    out = np.einsum("ncimjq,ijocmq->noij", fields, weight)
    if bias is not None:
        out = out + np.moveaxis(bias, -1, 0)
    return out


def conv_as_locally_connected(
    weight: np.ndarray, bias: np.ndarray | None, output_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Task 3.2: tile the filter bank over the output grid."""
    H_out, W_out = _as_pair(output_size, "output_size")
    lc_weight = np.tile(weight[None, None], (H_out, W_out) + (1,) * weight.ndim)
    lc_bias = None if bias is None else np.tile(bias[None, None], (H_out, W_out, 1))
    return lc_weight, lc_bias


# Part 4 ------------------------------------------------------------------------------------------


def shift2d(x: np.ndarray, dy: int, dx: int, circular: bool = False) -> np.ndarray:
    """Task 4.1: out[..., i, j] = x[..., i - dy, j - dx] (wrapped, or 0 where that is outside)."""
    if x.ndim < 2:
        raise ValueError(f"need at least 2 dimensions, got shape {x.shape}")
    H, W = x.shape[-2:]
    src_rows, src_cols = np.arange(H) - dy, np.arange(W) - dx
    if circular:
        return x[..., src_rows % H, :][..., src_cols % W].copy()
    keep = ((src_rows >= 0) & (src_rows < H))[:, None] & ((src_cols >= 0) & (src_cols < W))[None, :]
    gathered = x[..., np.clip(src_rows, 0, H - 1), :][..., np.clip(src_cols, 0, W - 1)]
    return np.where(keep, gathered, np.zeros((), dtype=x.dtype)).astype(x.dtype, copy=False)


def circular_conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Task 4.2: fold the centred kernel onto the (H, W) torus, then one circular FFT correlation."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"need x (N, C_in, H, W) and weight (C_out, C_in, kh, kw), got {x.shape}, {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"channel mismatch: x has {x.shape[1]}, weight expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias shape {bias.shape} does not match {weight.shape[0]} filters")
    C_out, C_in, kh, kw = weight.shape
    if not (kh % 2 and kw % 2):
        raise ValueError(f"circular_conv2d needs odd kernel sizes, got {kh}x{kw}")
    H, W = x.shape[2:]
    folded = np.zeros((C_out, C_in, H, W))
    rows = (np.arange(kh) - kh // 2) % H
    cols = (np.arange(kw) - kw // 2) % W
    np.add.at(folded, (slice(None), slice(None), rows[:, None], cols[None, :]), weight.astype(np.float64))
    out = _circular_xcorr(x, folded)
    if bias is not None:
        out = out + bias.astype(np.float64)[None, :, None, None]
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    return out.astype(dtype)


def equivariance_error(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int) -> float:
    """Task 4.3."""
    reference_output = np.asarray(layer(x))
    if reference_output.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"layer changes the spatial size {x.shape[-2:]} -> {reference_output.shape[-2:]}")
    a = np.asarray(layer(shift2d(x, dy, dx, circular=True)))
    b = shift2d(reference_output, dy, dx, circular=True)
    return float(np.abs(a - b).max())


def is_shift_equivariant(
    layer: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    shifts: Sequence[tuple[int, int]],
    atol: float = 1e-8,
) -> bool:
    """Task 4.4."""
    if np.shape(layer(x))[-2:] != x.shape[-2:]:
        return False
    errors = np.array([equivariance_error(layer, x, dy, dx) for dy, dx in shifts], dtype=np.float64)
    return bool(np.all(errors <= atol))


# Part 5 ------------------------------------------------------------------------------------------


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1: the FFT layer (NumPy or CuPy, whichever x belongs to)."""
    return _fft_layer(x, weight, bias, stride, padding)


# Part 6 ------------------------------------------------------------------------------------------


def conv2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.1: im2col for dweight (one matrix product), col2im by scatter-add for dx."""
    H_out, W_out = _validate_layer(x, weight, None, stride, padding)
    stride, padding = int(stride), int(padding)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout has shape {dout.shape}, the layer's output has {(N, C_out, H_out, W_out)}")
    dtype = np.result_type(dout, x, weight)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    rows = (stride * np.arange(H_out)[:, None] + np.arange(kh)[None, :])[:, :, None, None]  # (H_out, kh, 1, 1)
    cols = (stride * np.arange(W_out)[:, None] + np.arange(kw)[None, :])[None, None, :, :]  # (1, 1, W_out, kw)
    fields = xp[:, :, rows, cols]  # (N, C_in, H_out, kh, W_out, kw)
    columns = fields.transpose(1, 3, 5, 0, 2, 4).reshape(C_in * kh * kw, N * H_out * W_out)
    grads = dout.transpose(1, 0, 2, 3).reshape(C_out, N * H_out * W_out)
    dweight = (grads @ columns.T).reshape(C_out, C_in, kh, kw)
    dcolumns = weight.reshape(C_out, C_in * kh * kw).T @ grads  # (C_in*kh*kw, N*H_out*W_out)
    dfields = dcolumns.reshape(C_in, kh, kw, N, H_out, W_out).transpose(3, 0, 4, 1, 5, 2)
    dxp = np.zeros(xp.shape, dtype=dtype)
    np.add.at(dxp, (slice(None), slice(None), rows, cols), dfields)
    dx = dxp[:, :, padding : padding + H, padding : padding + W]
    return np.ascontiguousarray(dx), dweight.astype(dtype), dout.sum(axis=(0, 2, 3)).astype(dtype)


def locally_connected2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.2: per-position products (no sum over positions), scatter-add for dx."""
    rows, cols = _local_indices(x, weight, None, stride)
    H_out, W_out, C_out, _, _, _ = weight.shape
    if dout.shape != (x.shape[0], C_out, H_out, W_out):
        raise ValueError(f"dout has shape {dout.shape}, the layer's output has {(x.shape[0], C_out, H_out, W_out)}")
    dtype = np.result_type(dout, x, weight)
    index = (slice(None), slice(None), rows[:, :, None, None], cols[None, None, :, :])
    fields = x[index]  # (N, C_in, H_out, kh, W_out, kw)
    dweight = np.einsum("noij,ncimjq->ijocmq", dout, fields)
    dfields = np.einsum("noij,ijocmq->ncimjq", dout, weight)
    dx = np.zeros(x.shape, dtype=dtype)
    np.add.at(dx, index, dfields)
    return dx, dweight.astype(dtype), np.moveaxis(dout.sum(axis=0), 0, -1).astype(dtype)
