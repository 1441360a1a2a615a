"""A correct submission that keeps float32 as float32 and is written with einsum and strided views.

The working dtype is ``np.result_type`` of the array arguments: float32 inputs are computed and
returned in float32, anything involving float64 in float64. Receptive fields are read-only views
(``as_strided`` or ``sliding_window_view``), never copies, and every contraction is an ``einsum``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view


def _work_dtype(*arrays: Any) -> np.dtype:
    """The common floating dtype of the arrays given (``None`` entries ignored)."""
    dtype = np.result_type(*[a for a in arrays if a is not None])
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _pair_of(value: Any) -> tuple[int, int]:
    if np.ndim(value) == 0:
        return int(value), int(value)
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"expected one integer or two, got {value!r}")
    return values[0], values[1]


def _windows(x: np.ndarray, kh: int, kw: int, stride: int = 1) -> np.ndarray:
    """Read-only view ``(..., H_out, W_out, kh, kw)`` of the last two axes of ``x`` (valid positions)."""
    *lead, H, W = x.shape
    H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
    *lead_strides, sr, sc = x.strides
    return as_strided(
        x,
        shape=(*lead, H_out, W_out, kh, kw),
        strides=(*lead_strides, sr * stride, sc * stride, sr, sc),
        writeable=False,
    )


def _layer_checks(x: np.ndarray, weight: np.ndarray, bias: Any, stride: Any, padding: Any) -> tuple[int, int]:
    if x.ndim != 4:
        raise ValueError(f"x: expected (N, C_in, H, W), got {x.ndim}-D shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight: expected (C_out, C_in, kh, kw), got {weight.ndim}-D shape {weight.shape}")
    C_out, C_in, kh, kw = weight.shape
    if x.shape[1] != C_in:
        raise ValueError(f"x has {x.shape[1]} input channels, weight is built for {C_in}")
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"bias: expected shape ({C_out},), got {bias.shape}")
    if not float(stride).is_integer() or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if not float(padding).is_integer() or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    Hp, Wp = x.shape[2] + 2 * int(padding), x.shape[3] + 2 * int(padding)
    if kh > Hp or kw > Wp:
        raise ValueError(f"kernel {kh}x{kw} does not fit in the padded input {Hp}x{Wp}")
    return (Hp - kh) // int(stride) + 1, (Wp - kw) // int(stride) + 1


# Part 1 ------------------------------------------------------------------------------------------


def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Task 1.1: einsum over an as_strided window view."""
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"conv2d wants 2-D image and kernel, got {image.shape} and {kernel.shape}")
    kh, kw = kernel.shape
    if kh > image.shape[0] or kw > image.shape[1]:
        raise ValueError(f"kernel {kernel.shape} does not fit inside image {image.shape}")
    dtype = _work_dtype(image, kernel)
    image, kernel = image.astype(dtype, copy=False), kernel.astype(dtype, copy=False)
    return np.einsum("ijmn,mn->ij", _windows(image, kh, kw), kernel)


def conv2d_layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 1.2: sliding_window_view of the padded input, strided, contracted with einsum."""
    _layer_checks(x, weight, bias, stride, padding)
    stride, padding = int(stride), int(padding)
    dtype = _work_dtype(x, weight, bias)
    _, _, kh, kw = weight.shape
    padded = np.pad(x.astype(dtype, copy=False), [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    fields = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("ncijmq,ocmq->noij", fields, weight.astype(dtype, copy=False), optimize=True)
    if bias is not None:
        out = out + bias.astype(dtype, copy=False)[:, None, None]
    return out.astype(dtype, copy=False)


# Part 2 ------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Task 2.1."""
    limits = (("size", size, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0))
    for name, value, low in limits:
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} should be an int, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} should be >= {low}, got {value}")
    if kernel_size > size + 2 * padding:
        raise ValueError(f"the kernel ({kernel_size}) is longer than the padded input ({size + 2 * padding})")
    return int((size + 2 * padding - kernel_size) // stride) + 1


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2."""
    return int(np.int64(in_features) * out_features + (out_features if bias else 0))


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True) -> int:
    """Task 2.3."""
    shape = (out_channels, in_channels, *_pair_of(kernel_size))
    return int(np.prod(shape, dtype=np.int64)) + (int(out_channels) if bias else 0)


def locally_connected2d_params(
    input_size: int | tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    bias: bool = True,
) -> int:
    """Task 2.4: the size of the weight array of Task 3.1, plus the bias array's."""
    (H, W), (kh, kw) = _pair_of(input_size), _pair_of(kernel_size)
    H_out, W_out = conv_output_size(H, kh, stride), conv_output_size(W, kw, stride)
    weights = np.prod((H_out, W_out, out_channels, in_channels, kh, kw), dtype=np.int64)
    biases = np.prod((H_out, W_out, out_channels), dtype=np.int64) if bias else 0
    return int(weights + biases)


def network_summary(
    layers: Sequence[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], int]]:
    """Task 2.5."""
    current = tuple(int(d) for d in input_shape)
    table: list[tuple[tuple[int, ...], int]] = []
    for k, spec in enumerate(layers):
        kind = spec.get("type")
        try:
            match kind:
                case "conv2d" | "locally_connected2d" | "maxpool2d" | "avgpool2d":
                    if len(current) != 3:
                        raise ValueError(f"{kind} needs a (C, H, W) input, not {current}")
                    channels, height, width = current
                    kh, kw = _pair_of(spec["kernel_size"])
                    if kind == "conv2d":
                        s, p = spec.get("stride", 1), spec.get("padding", 0)
                        current = (
                            int(spec["out_channels"]),
                            conv_output_size(height, kh, s, p),
                            conv_output_size(width, kw, s, p),
                        )
                        count = conv2d_params(channels, spec["out_channels"], (kh, kw), spec.get("bias", True))
                    elif kind == "locally_connected2d":
                        s = spec.get("stride", 1)
                        current = (
                            int(spec["out_channels"]),
                            conv_output_size(height, kh, s),
                            conv_output_size(width, kw, s),
                        )
                        count = locally_connected2d_params(
                            (height, width), channels, spec["out_channels"], (kh, kw), s, spec.get("bias", True)
                        )
                    else:
                        sh, sw = _pair_of(spec.get("stride", spec["kernel_size"]))
                        current = (channels, conv_output_size(height, kh, sh), conv_output_size(width, kw, sw))
                        count = 0
                case "flatten":
                    current, count = (int(np.prod(current, dtype=np.int64)),), 0
                case "relu":
                    count = 0
                case "dense":
                    if len(current) != 1:
                        raise ValueError(f"dense needs a flat (F,) input, not {current}: flatten first")
                    count = dense_params(current[0], spec["out_features"], spec.get("bias", True))
                    current = (int(spec["out_features"]),)
                case _:
                    raise ValueError(f"unknown layer type {kind!r}")
        except KeyError as key:
            raise ValueError(f"layer {k} ({kind}): missing option {key}") from None
        except ValueError as error:
            raise ValueError(f"layer {k} ({kind}): {error}") from None
        table.append((current, int(count)))
    return table


# Part 3 ------------------------------------------------------------------------------------------


def _local_checks(x: np.ndarray, weight: np.ndarray, bias: Any, stride: Any) -> None:
    if x.ndim != 4:
        raise ValueError(f"x: expected (N, C_in, H, W), got shape {x.shape}")
    if weight.ndim != 6:
        raise ValueError(f"weight: expected (H_out, W_out, C_out, C_in, kh, kw), got shape {weight.shape}")
    if not float(stride).is_integer() or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    H_out, W_out, C_out, C_in, kh, kw = weight.shape
    _, C, H, W = x.shape
    if C != C_in:
        raise ValueError(f"x has {C} channels, weight is built for {C_in}")
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} does not fit in the input {H}x{W}")
    positions = ((H - kh) // int(stride) + 1, (W - kw) // int(stride) + 1)
    if (H_out, W_out) != positions:
        raise ValueError(f"weight has {H_out}x{W_out} positions, the input gives {positions[0]}x{positions[1]}")
    if bias is not None and bias.shape != (H_out, W_out, C_out):
        raise ValueError(f"bias: expected shape {(H_out, W_out, C_out)}, got {bias.shape}")


def locally_connected2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """Task 3.1: one einsum, no sum over the position indices (i, j)."""
    _local_checks(x, weight, bias, stride)
    dtype = _work_dtype(x, weight, bias)
    kh, kw = weight.shape[-2:]
    fields = _windows(x.astype(dtype, copy=False), kh, kw, int(stride))  # (N, C, H_out, W_out, kh, kw)
    out = np.einsum("ncijmq,ijocmq->noij", fields, weight.astype(dtype, copy=False), optimize=True)
    if bias is not None:
        out = out + np.einsum("ijo->oij", bias.astype(dtype, copy=False))
    return out.astype(dtype, copy=False)


def conv_as_locally_connected(
    weight: np.ndarray, bias: np.ndarray | None, output_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Task 3.2: a zero-stride view repeating the bank, then copied into a new array."""
    H_out, W_out = _pair_of(output_size)

    def repeat(a: np.ndarray) -> np.ndarray:
        return as_strided(a, shape=(H_out, W_out, *a.shape), strides=(0, 0, *a.strides), writeable=False).copy()

    return repeat(weight), (None if bias is None else repeat(bias))


# Part 4 ------------------------------------------------------------------------------------------


def shift2d(x: np.ndarray, dy: int, dx: int, circular: bool = False) -> np.ndarray:
    """Task 4.1: wrap with np.take(mode='wrap'), or cut a window out of a zero-padded copy."""
    if x.ndim < 2:
        raise ValueError(f"shift2d needs (..., H, W), got shape {x.shape}")
    H, W = x.shape[-2:]
    if circular:
        rows = np.take(x, np.arange(H) - dy, axis=-2, mode="wrap")
        return np.take(rows, np.arange(W) - dx, axis=-1, mode="wrap")
    dy, dx = max(-H, min(H, dy)), max(-W, min(W, dx))
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(H, H), (W, W)])
    return padded[..., H - dy : 2 * H - dy, W - dx : 2 * W - dx].copy()


def circular_conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Task 4.2: wrap-pad by half the kernel on each side, then a valid cross-correlation."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"expected x (N, C_in, H, W) and weight (C_out, C_in, kh, kw), got {x.shape}, {weight.shape}")
    C_out, C_in, kh, kw = weight.shape
    if x.shape[1] != C_in:
        raise ValueError(f"x has {x.shape[1]} input channels, weight is built for {C_in}")
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"bias: expected shape ({C_out},), got {bias.shape}")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"circular_conv2d needs odd kernel sizes, got {kh}x{kw}")
    dtype = _work_dtype(x, weight, bias)
    wrapped = np.pad(x.astype(dtype, copy=False), [(0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)], mode="wrap")
    out = np.einsum("ncijmq,ocmq->noij", _windows(wrapped, kh, kw), weight.astype(dtype, copy=False), optimize=True)
    if bias is not None:
        out = out + bias.astype(dtype, copy=False)[:, None, None]
    return out.astype(dtype, copy=False)


def equivariance_error(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int) -> float:
    """Task 4.3."""
    y = layer(x)
    if tuple(y.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"the layer changes the spatial size: {x.shape[-2:]} -> {y.shape[-2:]}")
    difference = layer(shift2d(x, dy, dx, circular=True)) - shift2d(y, dy, dx, circular=True)
    return float(np.max(np.abs(difference)))


def is_shift_equivariant(
    layer: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    shifts: Sequence[tuple[int, int]],
    atol: float = 1e-8,
) -> bool:
    """Task 4.4."""
    if tuple(layer(x).shape[-2:]) != tuple(x.shape[-2:]):
        return False
    for dy, dx in shifts:
        if not equivariance_error(layer, x, dy, dx) <= atol:
            return False
    return True


# Part 5 ------------------------------------------------------------------------------------------


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1: as_strided im2col (a view, no copy) contracted by tensordot (one BLAS call)."""
    lib = np
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy as lib  # type: ignore[no-redef]
    H_out, W_out = _layer_checks(x, weight, bias, stride, padding)
    stride, padding = int(stride), int(padding)
    dtype = lib.result_type(*[a for a in (x, weight, bias) if a is not None])
    x = x.astype(dtype, copy=False)
    if padding:
        x = lib.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    N, C_in, _, _ = x.shape
    C_out, _, kh, kw = weight.shape
    sn, sc, sh, sw = x.strides
    fields = lib.lib.stride_tricks.as_strided(
        x, shape=(N, H_out, W_out, C_in, kh, kw), strides=(sn, sh * stride, sw * stride, sc, sh, sw)
    )
    out = lib.tensordot(
        fields, weight.astype(dtype, copy=False), axes=([3, 4, 5], [1, 2, 3])
    )  # (N, H_out, W_out, C_out)
    out = lib.moveaxis(out, 3, 1)
    if bias is not None:
        out = out + bias.astype(dtype, copy=False)[:, None, None]
    return lib.ascontiguousarray(out)


# Part 6 ------------------------------------------------------------------------------------------


def conv2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.1: dweight by einsum over the windows; dx as a full correlation of the dilated dout
    with the flipped kernel (the transposed convolution)."""
    H_out, W_out = _layer_checks(x, weight, None, stride, padding)
    stride, padding = int(stride), int(padding)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = weight.shape
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout: expected the output shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    dtype = _work_dtype(dout, x, weight)
    g, w = dout.astype(dtype, copy=False), weight.astype(dtype, copy=False)
    padded = np.pad(x.astype(dtype, copy=False), [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    Hp, Wp = padded.shape[2:]
    fields = _windows(padded, kh, kw, stride)  # (N, C_in, H_out, W_out, kh, kw)
    dweight = np.einsum("noij,ncijmq->ocmq", g, fields, optimize=True)
    # dilate: dout[i, j] sits at (i*s, j*s); then pad so a valid correlation returns Hp x Wp
    Ld, Wd = (H_out - 1) * stride + 1, (W_out - 1) * stride + 1
    spread = np.zeros((N, C_out, Hp + kh - 1, Wp + kw - 1), dtype=dtype)
    spread[:, :, kh - 1 : kh - 1 + Ld : stride, kw - 1 : kw - 1 + Wd : stride] = g
    dpadded = np.einsum("noyxmq,ocmq->ncyx", _windows(spread, kh, kw), w[:, :, ::-1, ::-1], optimize=True)
    dx = dpadded[:, :, padding : padding + H, padding : padding + W]
    return np.ascontiguousarray(dx, dtype=dtype), dweight.astype(dtype, copy=False), g.sum(axis=(0, 2, 3))


def locally_connected2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.2: dweight keeps the position indices; dx adds each window's share back, offset by offset."""
    _local_checks(x, weight, None, stride)
    stride = int(stride)
    H_out, W_out, C_out, _, kh, kw = weight.shape
    if dout.shape != (x.shape[0], C_out, H_out, W_out):
        raise ValueError(f"dout: expected the output shape {(x.shape[0], C_out, H_out, W_out)}, got {dout.shape}")
    dtype = _work_dtype(dout, x, weight)
    g, w = dout.astype(dtype, copy=False), weight.astype(dtype, copy=False)
    dweight = np.einsum("noij,ncijmq->ijocmq", g, _windows(x.astype(dtype, copy=False), kh, kw, stride), optimize=True)
    shares = np.einsum("noij,ijocmq->ncijmq", g, w, optimize=True)  # what each window sends back
    dx = np.zeros(x.shape, dtype=dtype)
    for m in range(kh):
        for q in range(kw):
            dx[:, :, m : m + (H_out - 1) * stride + 1 : stride, q : q + (W_out - 1) * stride + 1 : stride] += shares[
                ..., m, q
            ]
    return dx, dweight.astype(dtype, copy=False), np.einsum("noij->ijo", g)
