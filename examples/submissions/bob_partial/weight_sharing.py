"""Weight sharing in convolutional networks: your solutions.

Implement every function whose body raises NotImplementedError; the message names the task.
weight_sharing.ipynb explains each task with figures and worked examples (it holds the same
functions: hand in either file). Check your work with

    pytest test_public.py            # public examples, in your own Python
    wsgrade check weight_sharing.py  # the grader's public tests, in its sandbox

Do not rename functions or their arguments: the grader calls them by these names.
Generated from the reference by `wsgrade release`; do not edit the copy in the course repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _check_conv_args(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int
) -> tuple[int, int, int, int]:
    """Validate the arguments of a convolutional layer; return ``(N, C_in, H_out, W_out)``.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: shape ``(C_out,)`` or ``None``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        The batch size, input channels and output height and width.

    Raises:
        ValueError: describing the first problem found.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C_in, H, W); got {x.ndim} dimensions {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (C_out, C_in, kh, kw); got {weight.ndim} dimensions {weight.shape}")
    N, C_in, H, W = x.shape
    C_out, C_w, kh, kw = weight.shape
    if C_w != C_in:
        raise ValueError(f"weight expects {C_w} input channels but x has {C_in}")
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},) to match weight, got {bias.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    if kh > H + 2 * padding or kw > W + 2 * padding:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {H + 2 * padding}x{W + 2 * padding}")
    return N, C_in, (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or the pair itself.

    Args:
        value: an int or a pair of ints.

    Returns:
        A pair of ints.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair (a, b), got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _lc_windows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int) -> np.ndarray:
    """Validate a locally-connected layer's arguments and return the input's receptive fields.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: shape ``(H_out, W_out, C_out, C_in, kh, kw)``.
        bias: shape ``(H_out, W_out, C_out)`` or ``None``.
        stride: ``>= 1``.

    Returns:
        A read-only view of shape ``(N, C_in, H_out, W_out, kh, kw)``.

    Raises:
        ValueError: describing the first problem found.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C_in, H, W); got {x.shape}")
    if weight.ndim != 6:
        raise ValueError(f"weight must have shape (H_out, W_out, C_out, C_in, kh, kw); got {weight.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    _, C_in, H, W = x.shape
    H_out, W_out, C_out, C_w, kh, kw = weight.shape
    if C_w != C_in:
        raise ValueError(f"weight expects {C_w} input channels but x has {C_in}")
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} does not fit in the input {H}x{W}")
    expected = ((H - kh) // stride + 1, (W - kw) // stride + 1)
    if (H_out, W_out) != expected:
        raise ValueError(
            f"weight has {H_out}x{W_out} positions but a {H}x{W} input with a {kh}x{kw} kernel and "
            f"stride {stride} has {expected[0]}x{expected[1]}"
        )
    if bias is not None and bias.shape != (H_out, W_out, C_out):
        raise ValueError(f"bias must have shape {(H_out, W_out, C_out)}, got {bias.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return windows[:, :, ::stride, ::stride]


# ------------------------------------------------------------------------------------------------
# Part 1 — Convolution, the way deep learning defines it
# ------------------------------------------------------------------------------------------------


def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Task 1.1: 2-D cross-correlation of one image with one kernel ('valid' positions only).

    ``out[i, j] = sum_m sum_n kernel[m, n] * image[i + m, j + n]`` (no kernel flip).

    Args:
        image: the input, shape ``(H, W)``.
        kernel: the filter, shape ``(kh, kw)`` with ``kh <= H`` and ``kw <= W``.

    Returns:
        The feature map, shape ``(H - kh + 1, W - kw + 1)``.

    Raises:
        ValueError: if ``image`` or ``kernel`` is not 2-D, or the kernel does not fit in the image.
    """
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"conv2d needs a 2-D image and a 2-D kernel, got shapes {image.shape} and {kernel.shape}")
    H, W = image.shape
    kh, kw = kernel.shape
    if kh > H or kw > W:
        raise ValueError(f"kernel of shape {kernel.shape} does not fit in an image of shape {image.shape}")
    H_out, W_out = H - kh + 1, W - kw + 1
    out = np.zeros((H_out, W_out), dtype=np.result_type(image, kernel))
    # One term of the double sum at a time, for every output position at once:
    # kernel[m, n] multiplies the image window whose top-left corner is (m, n).
    for m in range(kh):
        for n in range(kw):
            out += kernel[m, n] * image[m : m + H_out, n : n + W_out]
    return out


def conv2d_layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 1.2: a convolutional layer (multi-channel cross-correlation with bias, stride, padding).

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: one bias per output channel, shape ``(C_out,)``, or ``None`` for no bias.
        stride: step between kernel placements, the same along both axes; ``>= 1``.
        padding: zeros added on all four sides of each image; ``>= 0``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H + 2 * padding - kh) // stride + 1`` (likewise ``W_out``).

    Raises:
        ValueError: for a wrong number of dimensions, mismatched channels or bias, ``stride < 1``,
            ``padding < 0``, or a kernel larger than the padded input.
    """
    N, _, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
    C_out, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))
    for m in range(kh):
        for q in range(kw):
            # x_pad[n, c, i*s + m, j*s + q] for all (n, c, i, j) at once.
            window = xp[:, :, m : m + stride * (H_out - 1) + 1 : stride, q : q + stride * (W_out - 1) + 1 : stride]
            out += np.einsum("ncij,oc->noij", window, weight[:, :, m, q])
    if bias is not None:
        out += bias[None, :, None, None]
    return out


# ------------------------------------------------------------------------------------------------
# Part 2 — Counting parameters
# ------------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Task 2.1: output length of a convolution or pooling along one axis.

    Args:
        size: input length, ``>= 1``.
        kernel_size: kernel length, ``>= 1``.
        stride: step, ``>= 1``.
        padding: zeros added at each end, ``>= 0``.

    Returns:
        ``(size + 2 * padding - kernel_size) // stride + 1``.

    Raises:
        ValueError: if an argument is out of range or the kernel does not fit (result < 1).
    """
    for name, value, low in (
        ("size", size, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if size + 2 * padding < kernel_size:
        raise ValueError(
            f"a kernel of size {kernel_size} does not fit in an input of size {size} with padding {padding}"
        )
    return int((size + 2 * padding - kernel_size) // stride + 1)


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2: number of parameters of a fully-connected (dense) layer.

    Args:
        in_features: inputs per example.
        out_features: outputs per example.
        bias: whether the layer has one bias per output.

    Returns:
        ``in_features * out_features`` weights, plus ``out_features`` biases if ``bias``.
    """
    return in_features * out_features + (out_features if bias else 0)


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True) -> int:
    """Task 2.3: number of parameters of a 2-D convolutional layer (weights shared over positions).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``, the number of filters.
        kernel_size: ``k`` for a square ``k x k`` kernel, or a pair ``(kh, kw)``.
        bias: whether each filter has a bias.

    Returns:
        ``C_out * C_in * kh * kw``, plus ``C_out`` if ``bias``.
    """
    kh, kw = _pair(kernel_size)
    return out_channels * in_channels * kh * kw + (out_channels if bias else 0)


def locally_connected2d_params(
    input_size: int | tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    bias: bool = True,
) -> int:
    """Task 2.4: number of parameters of a locally-connected layer (no weight sharing).

    One filter bank per output position, 'valid' positions only, and one bias per output position
    and channel (as Keras' ``LocallyConnected2D``).

    Args:
        input_size: ``H`` for a square input, or ``(H, W)``.
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: step between positions, ``>= 1``.
        bias: whether there are biases.

    Returns:
        ``H_out * W_out * C_out * C_in * kh * kw``, plus ``H_out * W_out * C_out`` if ``bias``.

    Raises:
        ValueError: if the kernel does not fit in the input or an argument is out of range.
    """
    H, W = _pair(input_size)
    kh, kw = _pair(kernel_size)
    positions = conv_output_size(H, kh, stride) * conv_output_size(W, kw, stride)
    return positions * out_channels * (in_channels * kh * kw + (1 if bias else 0))


def network_summary(
    layers: Sequence[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], int]]:
    """Task 2.5: output shape and parameter count of every layer of a sequential network.

    Each layer is a dict with a ``"type"`` and its options:

    * ``conv2d``: ``out_channels``, ``kernel_size`` (int or pair), ``stride=1``, ``padding=0``, ``bias=True``
    * ``locally_connected2d``: ``out_channels``, ``kernel_size``, ``stride=1``, ``bias=True``
    * ``maxpool2d`` / ``avgpool2d``: ``kernel_size`` (int), ``stride=kernel_size``; no parameters
    * ``flatten``: ``(C, H, W) -> (C * H * W,)``; ``relu``: shape unchanged; both no parameters
    * ``dense``: ``out_features``, ``bias=True``; needs a flat input ``(F,)``

    Args:
        layers: the layers, first to last.
        input_shape: the shape of one input example, ``(C, H, W)``.

    Returns:
        One ``(output_shape, params)`` pair per layer, ``output_shape`` a tuple of ints.

    Raises:
        ValueError: for an unknown layer type, a missing option, or a shape the layer cannot take.
    """
    shape = tuple(int(s) for s in input_shape)
    summary = []
    for index, layer in enumerate(layers):
        kind = layer.get("type")
        try:
            if kind in ("conv2d", "locally_connected2d", "maxpool2d", "avgpool2d"):
                if len(shape) != 3:
                    raise ValueError(f"needs an image input (C, H, W), got {shape}")
                C, H, W = shape
                kh, kw = _pair(layer["kernel_size"])
                if kind == "conv2d":
                    s, p = layer.get("stride", 1), layer.get("padding", 0)
                    shape = (layer["out_channels"], conv_output_size(H, kh, s, p), conv_output_size(W, kw, s, p))
                    params = conv2d_params(C, layer["out_channels"], (kh, kw), layer.get("bias", True))
                elif kind == "locally_connected2d":
                    s = layer.get("stride", 1)
                    shape = (layer["out_channels"], conv_output_size(H, kh, s), conv_output_size(W, kw, s))
                    params = locally_connected2d_params(
                        (H, W), C, layer["out_channels"], (kh, kw), s, layer.get("bias", True)
                    )
                else:
                    s = layer.get("stride", layer["kernel_size"])
                    shape = (C, conv_output_size(H, kh, s), conv_output_size(W, kw, s))
                    params = 0
            elif kind == "flatten":
                shape, params = (int(np.prod(shape)),), 0
            elif kind == "relu":
                params = 0
            elif kind == "dense":
                if len(shape) != 1:
                    raise ValueError(f"needs a flat input (F,), got {shape}; add a 'flatten' layer first")
                params = dense_params(shape[0], layer["out_features"], layer.get("bias", True))
                shape = (layer["out_features"],)
            else:
                raise ValueError(f"unknown layer type {kind!r}")
        except KeyError as missing:
            raise ValueError(f"layer {index} ({kind}) is missing the option {missing}") from None
        except ValueError as problem:
            raise ValueError(f"layer {index} ({kind}): {problem}") from None
        summary.append((tuple(int(s) for s in shape), int(params)))
    return summary


# ------------------------------------------------------------------------------------------------
# Part 3 — Locally-connected layers: the same wiring, no sharing
# ------------------------------------------------------------------------------------------------


def locally_connected2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """Task 3.1: a locally-connected layer — a convolution whose filters differ at every position.

    ``out[n, o, i, j] = sum_{c,m,q} weight[i, j, o, c, m, q] * x[n, c, i*stride + m, j*stride + q] + bias[i, j, o]``.
    No padding.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: one filter bank per output position, shape ``(H_out, W_out, C_out, C_in, kh, kw)`` with
            ``H_out = (H - kh) // stride + 1`` and ``W_out = (W - kw) // stride + 1``.
        bias: shape ``(H_out, W_out, C_out)``, or ``None``.
        stride: step between positions, ``>= 1``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)``.

    Raises:
        ValueError: if weight's positions do not match the input, or channels or bias mismatch.
    """
    windows = _lc_windows(x, weight, bias, stride)  # (N, C_in, H_out, W_out, kh, kw)
    out = np.einsum("ncijmq,ijocmq->noij", windows, weight)
    if bias is not None:
        out = out + bias.transpose(2, 0, 1)[None]
    return out


def conv_as_locally_connected(
    weight: np.ndarray, bias: np.ndarray | None, output_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Task 3.2: the locally-connected layer whose filters are all tied to one conv filter bank.

    Args:
        weight: conv filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: conv biases, shape ``(C_out,)``, or ``None``.
        output_size: ``H_out`` for a square output, or ``(H_out, W_out)``.

    Returns:
        ``(lc_weight, lc_bias)``: ``lc_weight`` of shape ``(H_out, W_out, C_out, C_in, kh, kw)`` with
        ``lc_weight[i, j] == weight`` everywhere, and ``lc_bias`` of shape ``(H_out, W_out, C_out)``
        (``None`` when ``bias`` is ``None``). Both are new, writeable arrays.
    """
    H_out, W_out = _pair(output_size)
    lc_weight = np.broadcast_to(weight, (H_out, W_out) + weight.shape).copy()
    lc_bias = None if bias is None else np.broadcast_to(bias, (H_out, W_out) + bias.shape).copy()
    return lc_weight, lc_bias


# ------------------------------------------------------------------------------------------------
# Part 4 — Shift tests: translation equivariance
# ------------------------------------------------------------------------------------------------


def shift2d(x: np.ndarray, dy: int, dx: int, circular: bool = False) -> np.ndarray:
    """Task 4.1: shift the content of the last two axes by ``dy`` rows down and ``dx`` columns right.

    Args:
        x: an array with at least two dimensions, shape ``(..., H, W)``.
        dy: rows to move down (negative: up). Any integer.
        dx: columns to move right (negative: left). Any integer.
        circular: if True, content that leaves one side comes back on the other (as ``np.roll``);
            otherwise the vacated cells are 0.

    Returns:
        A new array with the same shape and dtype as ``x``.

    Raises:
        ValueError: if ``x`` has fewer than two dimensions.
    """
    raise NotImplementedError('Task 4.1: shift2d is not implemented yet (replace this line with your code)')


def circular_conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Task 4.2: 'same'-size convolution layer with wrap-around (circular) padding.

    ``out[n, o, i, j] = sum_{c,m,q} weight[o, c, m, q] * x[n, c, (i + m - kh//2) % H, (j + q - kw//2) % W] + bias[o]``

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)`` with odd ``kh`` and ``kw``.
        bias: shape ``(C_out,)``, or ``None``.

    Returns:
        Output batch, shape ``(N, C_out, H, W)``.

    Raises:
        ValueError: for even kernel sizes, a wrong number of dimensions, or mismatched channels or bias.
    """
    raise NotImplementedError('Task 4.2: circular_conv2d is not implemented yet (replace this line with your code)')


def equivariance_error(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int) -> float:
    """Task 4.3: how far ``layer`` is from commuting with a circular shift by ``(dy, dx)``.

    Args:
        layer: a function from an array ``(..., H, W)`` to an array ``(..., H, W)``.
        x: the input, shape ``(..., H, W)``.
        dy: rows to shift down.
        dx: columns to shift right.

    Returns:
        ``max |layer(shift2d(x, dy, dx, circular=True)) - shift2d(layer(x), dy, dx, circular=True)|``.

    Raises:
        ValueError: if ``layer`` changes the spatial size ``(H, W)``.
    """
    raise NotImplementedError('Task 4.3: equivariance_error is not implemented yet (replace this line with your code)')


def is_shift_equivariant(
    layer: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    shifts: Sequence[tuple[int, int]],
    atol: float = 1e-8,
) -> bool:
    """Task 4.4: whether ``layer`` commutes with every circular shift in ``shifts``, on input ``x``.

    Args:
        layer: a function from an array ``(..., H, W)`` to an array.
        x: the input, shape ``(..., H, W)``.
        shifts: the ``(dy, dx)`` pairs to try.
        atol: the largest equivariance error still counted as equivariant.

    Returns:
        True iff ``equivariance_error(layer, x, dy, dx) <= atol`` for every pair; False for a layer
        that changes the spatial size.
    """
    raise NotImplementedError('Task 4.4: is_shift_equivariant is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 5 — The performance task: a fast convolution, on the CPU or a GPU
# ------------------------------------------------------------------------------------------------


def _array_module(x: Any) -> Any:
    """Return ``cupy`` for a CuPy array and ``numpy`` otherwise.

    Args:
        x: an array.

    Returns:
        The array library ``x`` belongs to.
    """
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy  # only imported when a CuPy array is passed in

        return cupy
    return np


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1: ``conv2d_layer``, vectorised (im2col + matrix product); CuPy in, CuPy out.

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
    raise NotImplementedError('Task 5.1: conv2d_fast is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 6 — Gradients: why a shared weight collects a *sum*
# ------------------------------------------------------------------------------------------------


def conv2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.1: gradients of ``sum(dout * conv2d_layer(x, weight, bias, stride, padding))``.

    Args:
        dout: gradient with respect to the layer's output, shape ``(N, C_out, H_out, W_out)``.
        x: the layer's input, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and ``(C_out,)``.

    Raises:
        ValueError: if ``dout``'s shape is not the layer's output shape, or as ``conv2d_layer``.
    """
    raise NotImplementedError('Task 6.1: conv2d_backward is not implemented yet (replace this line with your code)')


def locally_connected2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.2: gradients of ``sum(dout * locally_connected2d(x, weight, bias, stride))``.

    Args:
        dout: gradient with respect to the output, shape ``(N, C_out, H_out, W_out)``.
        x: the layer's input, shape ``(N, C_in, H, W)``.
        weight: shape ``(H_out, W_out, C_out, C_in, kh, kw)``.
        stride: ``>= 1``.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and ``(H_out, W_out, C_out)``.

    Raises:
        ValueError: if ``dout``'s shape is not the layer's output shape, or as ``locally_connected2d``.
    """
    raise NotImplementedError('Task 6.2: locally_connected2d_backward is not implemented yet (replace this line with your code)')
