"""A correct submission written the way a beginner would: explicit Python loops over output pixels.

Every convolution-like function visits each output position in nested ``for`` loops and adds up
the products of the window under the kernel. Only ``conv2d_fast`` is vectorised (the task asks for
it): it gathers every receptive field with one fancy-indexing step (im2col) and does one matrix
product. Numbers are accumulated in a different order from the reference, so results agree up to
rounding only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _is_whole(value: Any) -> bool:
    """True for an int-like value (a NumPy integer counts, a bool does not)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return False


def _two(value: Any) -> tuple[int, int]:
    """An int k becomes (k, k); a pair stays a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError("a size must be a single integer or a pair of integers, got " + repr(value))
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _check_stride_padding(stride: Any, padding: Any) -> None:
    if not (_is_whole(stride) or (isinstance(stride, float) and stride.is_integer())) or stride < 1:
        raise ValueError("stride must be a whole number of at least 1, got " + repr(stride))
    if not (_is_whole(padding) or (isinstance(padding, float) and padding.is_integer())) or padding < 0:
        raise ValueError("padding must be a whole number of at least 0, got " + repr(padding))


def _check_layer(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int) -> None:
    if x.ndim != 4:
        raise ValueError("x must be 4-D (N, C_in, H, W), got shape " + str(x.shape))
    if weight.ndim != 4:
        raise ValueError("weight must be 4-D (C_out, C_in, kh, kw), got shape " + str(weight.shape))
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but weight has {weight.shape[1]} input channels")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {bias.shape}")
    _check_stride_padding(stride, padding)
    if weight.shape[2] > x.shape[2] + 2 * padding or weight.shape[3] > x.shape[3] + 2 * padding:
        raise ValueError("the kernel is larger than the padded input")


def _zero_pad(x: np.ndarray, padding: int) -> np.ndarray:
    """A new array with `padding` zeros around the last two axes (loops, no np.pad)."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    out[n, c, i + padding, j + padding] = x[n, c, i, j]
    return out


# Part 1 ------------------------------------------------------------------------------------------


def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Task 1.1: valid 2-D cross-correlation, one scalar product at a time."""
    if image.ndim != 2:
        raise ValueError("image must be 2-D, got shape " + str(image.shape))
    if kernel.ndim != 2:
        raise ValueError("kernel must be 2-D, got shape " + str(kernel.shape))
    H, W = image.shape
    kh, kw = kernel.shape
    if kh > H or kw > W:
        raise ValueError(f"a {kh}x{kw} kernel does not fit in a {H}x{W} image")
    out = np.zeros((H - kh + 1, W - kw + 1), dtype=np.result_type(image, kernel))
    for i in range(H - kh + 1):
        for j in range(W - kw + 1):
            total = 0.0
            for m in range(kh):
                for n in range(kw):
                    total = total + kernel[m, n] * image[i + m, j + n]
            out[i, j] = total
    return out


def conv2d_layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 1.2: a convolutional layer, one output pixel at a time."""
    _check_layer(x, weight, bias, stride, padding)
    stride, padding = int(stride), int(padding)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    H_out = (H + 2 * padding - kh) // stride + 1
    W_out = (W + 2 * padding - kw) // stride + 1
    xp = _zero_pad(x, padding)
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    out = np.zeros((N, C_out, H_out, W_out), dtype=dtype)
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    value = np.sum(window * weight[o])
                    if bias is not None:
                        value = value + bias[o]
                    out[n, o, i, j] = value
    return out


# Part 2 ------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Task 2.1: output length along one axis."""
    if not _is_whole(size) or size < 1:
        raise ValueError("size must be an integer >= 1, got " + repr(size))
    if not _is_whole(kernel_size) or kernel_size < 1:
        raise ValueError("kernel_size must be an integer >= 1, got " + repr(kernel_size))
    if not _is_whole(stride) or stride < 1:
        raise ValueError("stride must be an integer >= 1, got " + repr(stride))
    if not _is_whole(padding) or padding < 0:
        raise ValueError("padding must be an integer >= 0, got " + repr(padding))
    room = size + 2 * padding - kernel_size
    if room < 0:
        raise ValueError(f"kernel {kernel_size} does not fit in size {size} with padding {padding}")
    return int(room // stride + 1)


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2."""
    total = in_features * out_features
    if bias:
        total = total + out_features
    return int(total)


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True) -> int:
    """Task 2.3."""
    kh, kw = _two(kernel_size)
    per_filter = in_channels * kh * kw
    if bias:
        per_filter += 1
    return int(out_channels * per_filter)


def locally_connected2d_params(
    input_size: int | tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    bias: bool = True,
) -> int:
    """Task 2.4."""
    H, W = _two(input_size)
    kh, kw = _two(kernel_size)
    H_out = conv_output_size(H, kh, stride)
    W_out = conv_output_size(W, kw, stride)
    positions = H_out * W_out
    return int(positions * conv2d_params(in_channels, out_channels, (kh, kw), bias))


def network_summary(
    layers: Sequence[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], int]]:
    """Task 2.5."""
    shape = tuple(int(v) for v in input_shape)
    rows = []
    for number, layer in enumerate(layers):
        kind = layer.get("type")
        if kind not in ("conv2d", "locally_connected2d", "maxpool2d", "avgpool2d", "flatten", "relu", "dense"):
            raise ValueError(f"layer {number}: unknown layer type {kind!r}")
        try:
            if kind == "relu":
                params = 0
            elif kind == "flatten":
                size = 1
                for s in shape:
                    size *= s
                shape = (size,)
                params = 0
            elif kind == "dense":
                if len(shape) != 1:
                    raise ValueError(f"layer {number}: dense needs a flat input, got shape {shape}")
                out_features = int(layer["out_features"])
                params = dense_params(shape[0], out_features, layer.get("bias", True))
                shape = (out_features,)
            else:
                if len(shape) != 3:
                    raise ValueError(f"layer {number}: {kind} needs an input (C, H, W), got shape {shape}")
                C, H, W = shape
                kh, kw = _two(layer["kernel_size"])
                if kind == "conv2d":
                    stride, padding = layer.get("stride", 1), layer.get("padding", 0)
                    out_channels = int(layer["out_channels"])
                    shape = (
                        out_channels,
                        conv_output_size(H, kh, stride, padding),
                        conv_output_size(W, kw, stride, padding),
                    )
                    params = conv2d_params(C, out_channels, (kh, kw), layer.get("bias", True))
                elif kind == "locally_connected2d":
                    stride = layer.get("stride", 1)
                    out_channels = int(layer["out_channels"])
                    shape = (out_channels, conv_output_size(H, kh, stride), conv_output_size(W, kw, stride))
                    params = locally_connected2d_params(
                        (H, W), C, out_channels, (kh, kw), stride, layer.get("bias", True)
                    )
                else:
                    sh, sw = _two(layer.get("stride", layer["kernel_size"]))
                    shape = (C, conv_output_size(H, kh, sh), conv_output_size(W, kw, sw))
                    params = 0
        except KeyError as missing:
            raise ValueError(f"layer {number} ({kind}) needs the option {missing}") from None
        rows.append((tuple(int(s) for s in shape), int(params)))
    return rows


# Part 3 ------------------------------------------------------------------------------------------


def _check_local(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int) -> None:
    if x.ndim != 4:
        raise ValueError("x must be 4-D (N, C_in, H, W), got shape " + str(x.shape))
    if weight.ndim != 6:
        raise ValueError("weight must be 6-D (H_out, W_out, C_out, C_in, kh, kw), got shape " + str(weight.shape))
    _check_stride_padding(stride, 0)
    stride = int(stride)
    N, C_in, H, W = x.shape
    H_out, W_out, C_out, C_w, kh, kw = weight.shape
    if C_w != C_in:
        raise ValueError(f"x has {C_in} channels but weight has {C_w} input channels")
    if kh > H or kw > W:
        raise ValueError(f"a {kh}x{kw} kernel does not fit in a {H}x{W} input")
    if H_out != (H - kh) // stride + 1 or W_out != (W - kw) // stride + 1:
        raise ValueError(f"weight has {H_out}x{W_out} positions, which does not match the input {H}x{W}")
    if bias is not None and bias.shape != (H_out, W_out, C_out):
        raise ValueError(f"bias must have shape {(H_out, W_out, C_out)}, got {bias.shape}")


def locally_connected2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """Task 3.1: a separate filter bank per output position, one pixel at a time."""
    _check_local(x, weight, bias, stride)
    stride = int(stride)
    N = x.shape[0]
    H_out, W_out, C_out, _, kh, kw = weight.shape
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    out = np.zeros((N, C_out, H_out, W_out), dtype=dtype)
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    value = np.sum(window * weight[i, j, o])
                    if bias is not None:
                        value = value + bias[i, j, o]
                    out[n, o, i, j] = value
    return out


def conv_as_locally_connected(
    weight: np.ndarray, bias: np.ndarray | None, output_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Task 3.2: copy the filter bank (and bias) to every position."""
    H_out, W_out = _two(output_size)
    lc_weight = np.zeros((H_out, W_out) + weight.shape, dtype=weight.dtype)
    lc_bias = None if bias is None else np.zeros((H_out, W_out) + bias.shape, dtype=bias.dtype)
    for i in range(H_out):
        for j in range(W_out):
            lc_weight[i, j] = weight
            if lc_bias is not None:
                lc_bias[i, j] = bias
    return lc_weight, lc_bias


# Part 4 ------------------------------------------------------------------------------------------


def shift2d(x: np.ndarray, dy: int, dx: int, circular: bool = False) -> np.ndarray:
    """Task 4.1: move content dy rows down and dx columns right, cell by cell."""
    if x.ndim < 2:
        raise ValueError("shift2d needs at least 2 dimensions, got shape " + str(x.shape))
    H, W = x.shape[-2], x.shape[-1]
    out = np.zeros_like(x)
    for i in range(H):
        for j in range(W):
            ti, tj = i + dy, j + dx
            if circular:
                out[..., ti % H, tj % W] = x[..., i, j]
            elif 0 <= ti < H and 0 <= tj < W:
                out[..., ti, tj] = x[..., i, j]
    return out


def circular_conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Task 4.2: 'same' convolution with wrap-around, one output pixel at a time."""
    if x.ndim != 4:
        raise ValueError("x must be 4-D (N, C_in, H, W), got shape " + str(x.shape))
    if weight.ndim != 4:
        raise ValueError("weight must be 4-D (C_out, C_in, kh, kw), got shape " + str(weight.shape))
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but weight has {weight.shape[1]} input channels")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {bias.shape}")
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"circular_conv2d needs odd kernel sizes, got {kh}x{kw}")
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    out = np.zeros((N, C_out, H, W), dtype=dtype)
    for n in range(N):
        for o in range(C_out):
            for i in range(H):
                for j in range(W):
                    rows = [(i + m - kh // 2) % H for m in range(kh)]
                    cols = [(j + q - kw // 2) % W for q in range(kw)]
                    window = x[n][:, rows][:, :, cols]
                    value = np.sum(window * weight[o])
                    if bias is not None:
                        value = value + bias[o]
                    out[n, o, i, j] = value
    return out


def equivariance_error(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int) -> float:
    """Task 4.3."""
    plain = layer(x)
    if plain.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"the layer maps size {x.shape[-2:]} to {plain.shape[-2:]}")
    moved_then_layer = layer(shift2d(x, dy, dx, circular=True))
    layer_then_moved = shift2d(plain, dy, dx, circular=True)
    worst = 0.0
    for a, b in zip(np.ravel(moved_then_layer), np.ravel(layer_then_moved), strict=True):
        worst = max(worst, abs(float(a) - float(b)))
    return float(worst)


def is_shift_equivariant(
    layer: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    shifts: Sequence[tuple[int, int]],
    atol: float = 1e-8,
) -> bool:
    """Task 4.4."""
    if layer(x).shape[-2:] != x.shape[-2:]:
        return False
    for dy, dx in shifts:
        if equivariance_error(layer, x, dy, dx) > atol:
            return False
    return True


# Part 5 ------------------------------------------------------------------------------------------


def _library_of(array: Any) -> Any:
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1: im2col by fancy indexing, then one matrix product."""
    lib = _library_of(x)
    _check_layer(x, weight, bias, stride, padding)
    stride, padding = int(stride), int(padding)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    H_out = (H + 2 * padding - kh) // stride + 1
    W_out = (W + 2 * padding - kw) // stride + 1
    if padding:
        x = lib.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    rows = (lib.arange(H_out) * stride)[:, None] + lib.arange(kh)[None, :]  # (H_out, kh)
    cols = (lib.arange(W_out) * stride)[:, None] + lib.arange(kw)[None, :]  # (W_out, kw)
    # patches[n, c, i, m, j, q] = x_pad[n, c, i*s + m, j*s + q]
    patches = x[:, :, rows[:, :, None, None], cols[None, None, :, :]]
    columns = patches.transpose(0, 2, 4, 1, 3, 5).reshape(N * H_out * W_out, C_in * kh * kw)
    out = columns @ weight.reshape(C_out, C_in * kh * kw).T
    out = out.reshape(N, H_out, W_out, C_out).transpose(0, 3, 1, 2)
    if bias is not None:
        out = out + bias[None, :, None, None]
    return lib.ascontiguousarray(out)


# Part 6 ------------------------------------------------------------------------------------------


def conv2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.1: walk over every output pixel and hand its gradient back to what produced it."""
    _check_layer(x, weight, None, stride, padding)
    stride, padding = int(stride), int(padding)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    H_out = (H + 2 * padding - kh) // stride + 1
    W_out = (W + 2 * padding - kw) // stride + 1
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout should have shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    xp = _zero_pad(x, padding)
    dtype = np.result_type(dout, x, weight)
    dxp = np.zeros(xp.shape, dtype=dtype)
    dweight = np.zeros(weight.shape, dtype=dtype)
    dbias = np.zeros(C_out, dtype=dtype)
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    g = dout[n, o, i, j]
                    r, c = i * stride, j * stride
                    dweight[o] += g * xp[n, :, r : r + kh, c : c + kw]
                    dxp[n, :, r : r + kh, c : c + kw] += g * weight[o]
                    dbias[o] += g
    dx = np.zeros(x.shape, dtype=dtype)
    for i in range(H):
        for j in range(W):
            dx[:, :, i, j] = dxp[:, :, i + padding, j + padding]
    return dx, dweight, dbias


def locally_connected2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.2: the same walk, but every position owns its weights."""
    _check_local(x, weight, None, stride)
    stride = int(stride)
    N = x.shape[0]
    H_out, W_out, C_out, _, kh, kw = weight.shape
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout should have shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    dtype = np.result_type(dout, x, weight)
    dx = np.zeros(x.shape, dtype=dtype)
    dweight = np.zeros(weight.shape, dtype=dtype)
    dbias = np.zeros((H_out, W_out, C_out), dtype=dtype)
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    g = dout[n, o, i, j]
                    r, c = i * stride, j * stride
                    dweight[i, j, o] += g * x[n, :, r : r + kh, c : c + kw]
                    dx[n, :, r : r + kh, c : c + kw] += g * weight[i, j, o]
                    dbias[i, j, o] += g
    return dx, dweight, dbias
